// A tiny instance meeting the instance contract (activities/runners/types.ts), for tests: it serves
// the OpenAI-compatible API on 127.0.0.1:$PORT and answers every chat with the last user message.
// Plain Node (no TypeScript, no dependencies) so any runner can start it as `node echo-instance.js`.
//
// - GET /v1/models: the one model, COMPUTATRUM_MODEL_NAME (200 = ready; 503 until then).
// - POST /v1/chat/completions: a chat.completion echoing the last user message, or with `stream: true`
//   server-sent chat.completion.chunk events ending `data: [DONE]`, and a usage chunk when
//   `stream_options.include_usage`. Usage counts characters as tokens; max_tokens (or
//   max_completion_tokens) cuts the echo to that many characters with finish_reason 'length'.
//   Errors have OpenAI's shape `{error: {message, type, param, code}}`. A client that disconnects
//   mid-stream stops the stream.
// - SIGTERM/SIGINT: stops accepting, lets in-flight requests finish (at most 5 s), exits 0.
//
// Test knobs (environment):
// - ECHO_READY_AFTER_MS: answer 503 (not ready) for this long after start;
// - ECHO_FAIL=1: print an error and exit 1 at once;
// - ECHO_STREAM_DELAY_MS: pause between streamed chunks (to have a request in flight);
// - ECHO_MAX_IN_FLIGHT: chat requests beyond this many at once are answered 429 (the contract's busy);
// - ECHO_DEBUG=1: GET /debug/env answers the environment's names, the contract's values, cwd and pid
//   (what a runner passed, without printing secret values).
'use strict';
const http = require('node:http');

const CONTRACT = ['COMPUTATRUM_MODEL_DIR', 'COMPUTATRUM_MODEL_NAME', 'COMPUTATRUM_INSTANCE_ID', 'COMPUTATRUM_GPUS'];
const model = process.env.COMPUTATRUM_MODEL_NAME || 'echo';
const port = Number(process.env.PORT);
const readyAt = Date.now() + Number(process.env.ECHO_READY_AFTER_MS || 0);
const streamDelayMs = Number(process.env.ECHO_STREAM_DELAY_MS || 0);
const maxInFlight = Number(process.env.ECHO_MAX_IN_FLIGHT || Infinity);
let inFlight = 0;
const created = Math.floor(Date.now() / 1000);
let served = 0;

if (process.env.ECHO_FAIL === '1') {
  console.error('echo-instance: failing on purpose (ECHO_FAIL=1)');
  process.exit(1);
}
if (!Number.isInteger(port) || port <= 0) {
  console.error(`echo-instance: PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res, status, message, type, code = null, param = null, headers = {}) {
  const text = JSON.stringify({ error: { message, type, param, code } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A message's text: content is a string or an array of parts ({type: 'text', text}). */
function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content
      .filter((part) => part && part.type === 'text' && typeof part.text === 'string')
      .map((part) => part.text)
      .join('');
  return '';
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function chatCompletions(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return sendError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error');
  }
  if (!body || typeof body !== 'object' || !Array.isArray(body.messages) || body.messages.length === 0)
    return sendError(res, 400, "'messages' must be a non-empty array.", 'invalid_request_error', null, 'messages');
  if (body.model !== undefined && body.model !== model)
    return sendError(
      res,
      404,
      `The model \`${body.model}\` does not exist.`,
      'invalid_request_error',
      'model_not_found',
      'model',
    );

  const lastUser = [...body.messages].reverse().find((message) => message && message.role === 'user');
  const full = lastUser ? textOf(lastUser.content) : '';
  const limit = body.max_completion_tokens ?? body.max_tokens;
  const cut = Number.isInteger(limit) && limit >= 0 && limit < full.length;
  const reply = cut ? full.slice(0, limit) : full;
  const finishReason = cut ? 'length' : 'stop';
  const promptTokens = body.messages.reduce((sum, message) => sum + textOf(message && message.content).length, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: reply.length,
    total_tokens: promptTokens + reply.length,
  };
  const id = `chatcmpl-echo-${process.pid}-${++served}`;
  const now = Math.floor(Date.now() / 1000);

  if (!body.stream) {
    return sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created: now,
      model,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: reply, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage,
    });
  }

  let gone = false;
  res.on('close', () => (gone = !res.writableEnded));
  const includeUsage = Boolean(body.stream_options && body.stream_options.include_usage);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (choices, extra = {}) =>
    res.write(
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created: now,
        model,
        system_fingerprint: null,
        choices,
        ...(includeUsage ? { usage: null } : {}),
        ...extra,
      })}\n\n`,
    );
  const delta = (value, finish = null) => [{ index: 0, delta: value, logprobs: null, finish_reason: finish }];
  send(delta({ role: 'assistant', content: '' }));
  // One chunk per word (with its following spaces), as a tokenizer would cut it roughly.
  for (const piece of reply.match(/\S+\s*|\s+/g) || []) {
    if (streamDelayMs) await sleep(streamDelayMs);
    if (gone) return; // the client went away: stop generating
    send(delta({ content: piece }));
  }
  send(delta({}, finishReason));
  if (includeUsage) send([], { usage });
  res.end('data: [DONE]\n\n');
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const ready = Date.now() >= readyAt;
  if (req.method === 'GET' && url.pathname === '/debug/env' && process.env.ECHO_DEBUG === '1')
    return sendJson(res, 200, {
      keys: Object.keys(process.env).sort(),
      contract: Object.fromEntries(CONTRACT.map((name) => [name, process.env[name] ?? null])),
      port,
      cwd: process.cwd(),
      pid: process.pid,
    });
  if (!ready) return sendError(res, 503, 'The model is still loading.', 'service_unavailable');
  if (req.method === 'GET' && url.pathname === '/v1/models')
    return sendJson(res, 200, {
      object: 'list',
      data: [{ id: model, object: 'model', created, owned_by: 'computatrum' }],
    });
  if (req.method === 'POST' && url.pathname === '/v1/chat/completions') {
    if (inFlight >= maxInFlight)
      return sendError(
        res,
        429,
        `This instance is answering ${inFlight} requests, its limit: retry shortly.`,
        'rate_limit_error',
        'too_many_concurrent_requests',
        null,
        { 'retry-after': '1' },
      );
    inFlight++;
    return chatCompletions(req, res)
      .catch((error) => {
        if (res.headersSent) res.destroy(error);
        else sendError(res, 500, String(error), 'server_error');
      })
      .finally(() => inFlight--);
  }
  sendError(res, 404, `Unknown request URL: ${req.method} ${url.pathname}.`, 'invalid_request_error', 'unknown_url');
});

server.listen(port, '127.0.0.1', () => {
  console.log(`echo-instance pid=${process.pid} serving ${model} on http://127.0.0.1:${port}`);
});

function shutdown(signal) {
  console.log(`echo-instance: ${signal}, finishing in-flight requests`);
  server.close(() => process.exit(0));
  // close() ends the connections idle now; keep-alive ones that go idle later (a request finishing)
  // would hold it open, so they are ended as they do.
  server.closeIdleConnections();
  setInterval(() => server.closeIdleConnections(), 20).unref();
  // In-flight requests get a moment, not forever (the contract: finish briefly, then exit).
  setTimeout(() => process.exit(0), 5_000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
