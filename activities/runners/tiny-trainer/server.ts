// The tiny server: a hosted instance (the instance contract in ../types.ts) for checkpoints of the
// tiny trainer. It serves the OpenAI-compatible chat completions API with node:http alone, so the
// hosted-instance path runs end to end on any CPU, without vLLM or a GPU.
//   COMPUTATRUM_MODEL_DIR=<checkpoint folder> COMPUTATRUM_MODEL_NAME=tiny PORT=8000 \
//     node --require tsx/cjs activities/runners/tiny-trainer/server.ts
// What it does with a chat request:
// - prompt: every message's text, in order, each followed by a blank line (chatPrompt in
//   sampling.ts); characters outside the model's vocabulary are skipped and not counted;
// - tokens are characters: prompt_tokens are the prompt characters the model saw, completion_tokens
//   the characters it sampled (a stop sequence it sampled counts, though it is not returned);
// - temperature (default 1; 0: greedy), top_p (default 1), seed (the same seed and request give the
//   same text, streamed or not), max_completion_tokens or else max_tokens (default 256), stop (a
//   string or a list: the answer ends before the first one), n = 1 only;
// - a request beyond COMPUTATRUM_MAX_CONCURRENCY (default 4) generating at once is answered 429;
// - SIGTERM or SIGINT: it stops listening, lets requests in flight finish for SHUTDOWN_GRACE_MS, ends
//   those still running as if they had reached max_tokens (finish_reason 'length', a well-formed
//   answer or stream), and exits 0.
import { randomInt, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { readSafetensorsSync } from '../../../store/safetensors';
import { INSTANCE_ENV } from '../types';
import { listCheckpoints, loadModel, MODEL_FILE, MODEL_FORMAT, TrainerInputError } from './checkpoints';
import type { Architecture } from './model';
import { type ChatMessageText, characters, chatPrompt, Sampler, StopSequences, TinyLanguageModel } from './sampling';

/** The tiny server's own settings, beside the instance contract's INSTANCE_ENV. */
export const TINY_SERVER_ENV = {
  /** Requests generating at once; one more is answered 429. */
  maxConcurrency: 'COMPUTATRUM_MAX_CONCURRENCY',
  /** The address to listen on: 127.0.0.1 unless set (0.0.0.0 in a container). */
  host: 'HOST',
} as const;

export const DEFAULT_MAX_CONCURRENCY = 4;
export const DEFAULT_MAX_TOKENS = 256;
/** The most characters one answer may ask for: the model has no context limit, this bounds the work. */
export const MAX_TOKENS_LIMIT = 1_000_000;
const DEFAULT_PORT = 8000;
const DEFAULT_MODEL_NAME = 'computatrum-tiny';
/** Characters per streamed chunk, and between two yields of the event loop. */
const CHUNK_CHARACTERS = 4;
/** How long requests in flight may still run after SIGTERM (the contract allows a few seconds). */
export const SHUTDOWN_GRACE_MS = 3000;
/** After the grace, how long cut answers get to reach their clients before connections are closed. */
const SHUTDOWN_FLUSH_MS = 1000;
const MAX_BODY_BYTES = 1 << 20;
const MAX_STOP_SEQUENCES = 16;

const log = (line: string): void => {
  process.stdout.write(`tiny-server: ${line}\n`);
};

/** A request the API refuses, answered with OpenAI's error JSON. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const invalid = (param: string | null, message: string, code = 'invalid_value'): ApiError =>
  new ApiError(400, 'invalid_request_error', code, message, param);

export interface LoadedTinyModel {
  model: TinyLanguageModel;
  /** The model.safetensors read. */
  file: string;
  /** The training step it was saved at, from its metadata. */
  step?: number;
}

/**
 * Loads a tiny trainer checkpoint: `dir` holds a checkpoint folder's files (model.safetensors,
 * optimizer.safetensors, metrics.json: what the trainer saves and training publishes), or, for
 * convenience, a trainer's output folder, whose newest checkpoint-* folder is used.
 */
export function loadTinyModel(dir: string): LoadedTinyModel {
  let file = path.join(dir, MODEL_FILE);
  if (!existsSync(file)) {
    const newest = listCheckpoints(dir).at(-1);
    if (!newest) {
      throw new TrainerInputError(`${dir} holds neither ${MODEL_FILE} nor checkpoint-* folders: nothing to serve`);
    }
    file = path.join(dir, newest.name, MODEL_FILE);
  }
  let metadata: Record<string, string>;
  try {
    ({ metadata } = readSafetensorsSync(file));
  } catch (error) {
    throw new TrainerInputError(`${file} cannot be read: ${(error as Error).message}`);
  }
  if (metadata.format !== MODEL_FORMAT) {
    throw new TrainerInputError(
      `${file} is not a tiny trainer checkpoint (format ${metadata.format ?? 'missing'}, expected ${MODEL_FORMAT})`,
    );
  }
  let vocab: unknown;
  try {
    vocab = JSON.parse(metadata.vocab ?? '');
  } catch {
    vocab = undefined;
  }
  if (
    !Array.isArray(vocab) ||
    vocab.length === 0 ||
    !vocab.every((entry) => typeof entry === 'string' && characters(entry).length === 1)
  ) {
    throw new TrainerInputError(`${file}: its metadata has no vocabulary (a JSON list of characters)`);
  }
  const dimension = (name: 'context' | 'embed' | 'hidden'): number => {
    const value = Number(metadata[name]);
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TrainerInputError(`${file}: metadata ${name}=${metadata[name]} is not a positive integer`);
    }
    return value;
  };
  const architecture: Architecture = {
    vocab: vocab.length,
    context: dimension('context'),
    embed: dimension('embed'),
    hidden: dimension('hidden'),
  };
  const { parameters } = loadModel(file, architecture, vocab as string[], 'model');
  const step = Number(metadata.step);
  return {
    model: new TinyLanguageModel(architecture, parameters, vocab as string[]),
    file,
    ...(Number.isSafeInteger(step) ? { step } : {}),
  };
}

export interface ChatRequest {
  stream: boolean;
  includeUsage: boolean;
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stops: string[];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const absent = (value: unknown): value is undefined | null => value === undefined || value === null;

function messageText(message: unknown, index: number): ChatMessageText {
  const param = `messages[${index}]`;
  if (!isObject(message) || typeof message.role !== 'string') {
    throw invalid(param, `${param} must be an object with a string role`);
  }
  const { content } = message;
  if (absent(content)) return { role: message.role, text: '' };
  if (typeof content === 'string') return { role: message.role, text: content };
  if (!Array.isArray(content))
    throw invalid(`${param}.content`, `${param}.content must be a string or a list of parts`);
  const texts = content.map((part: unknown, partIndex) => {
    if (isObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
    throw invalid(
      `${param}.content[${partIndex}]`,
      `${param}.content[${partIndex}]: only text parts are understood by this model`,
    );
  });
  return { role: message.role, text: texts.join('\n') };
}

function integerParam(body: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const value = body[name];
  if (absent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function numberParam(
  body: Record<string, unknown>,
  name: string,
  fallback: number,
  ok: (n: number) => boolean,
  range: string,
): number {
  const value = body[name];
  if (absent(value)) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
    throw invalid(name, `${name} must be a number ${range}`);
  }
  return value;
}

/** Validates a chat completions request body for `modelName`: throws ApiError (400, or 404 for another model). */
export function parseChatRequest(body: unknown, modelName: string, model: TinyLanguageModel): ChatRequest {
  if (!isObject(body)) throw invalid(null, 'the request body must be a JSON object', 'invalid_body');
  if (typeof body.model !== 'string') throw invalid('model', 'model is required', 'missing_required_parameter');
  if (body.model !== modelName) {
    throw new ApiError(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model \`${body.model}\` does not exist: this instance serves \`${modelName}\``,
      'model',
    );
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw invalid('messages', 'messages must be a non-empty list', 'missing_required_parameter');
  }
  const prompt = chatPrompt(body.messages.map(messageText));
  if ((integerParam(body, 'n', 1, 1) ?? 1) !== 1) throw invalid('n', 'n must be 1');
  const maxTokens =
    integerParam(body, 'max_completion_tokens', 1, MAX_TOKENS_LIMIT) ??
    integerParam(body, 'max_tokens', 1, MAX_TOKENS_LIMIT) ??
    DEFAULT_MAX_TOKENS;
  const seed = body.seed;
  if (!absent(seed) && (typeof seed !== 'number' || !Number.isSafeInteger(seed))) {
    throw invalid('seed', 'seed must be an integer');
  }
  const stop = body.stop;
  let stops: string[];
  if (absent(stop)) stops = [];
  else if (typeof stop === 'string') stops = [stop];
  else if (
    Array.isArray(stop) &&
    stop.length <= MAX_STOP_SEQUENCES &&
    stop.every((entry): entry is string => typeof entry === 'string')
  ) {
    stops = stop;
  } else {
    throw invalid('stop', `stop must be a string or a list of at most ${MAX_STOP_SEQUENCES} strings`);
  }
  if (!absent(body.stream) && typeof body.stream !== 'boolean') throw invalid('stream', 'stream must be a boolean');
  const streamOptions = body.stream_options;
  if (!absent(streamOptions) && !isObject(streamOptions)) {
    throw invalid('stream_options', 'stream_options must be an object');
  }
  return {
    stream: body.stream === true,
    includeUsage: body.stream === true && isObject(streamOptions) && streamOptions.include_usage === true,
    promptIds: model.encode(prompt),
    maxTokens,
    temperature: numberParam(body, 'temperature', 1, (t) => t >= 0 && t <= 2, 'from 0 to 2'),
    topP: numberParam(body, 'top_p', 1, (p) => p > 0 && p <= 1, 'above 0 and at most 1'),
    // The generator is 32-bit: any integer seed is folded into it, so every seed is reproducible.
    seed: absent(seed) ? randomInt(2 ** 32) : Number(BigInt.asUintN(32, BigInt(seed as number))),
    stops,
  };
}

export interface Generation {
  content: string;
  /** Characters sampled (a stop sequence the model wrote counts, though it is cut from the content). */
  completionTokens: number;
  finishReason: 'stop' | 'length';
  /** The client went away: generation stopped, nothing more is to be sent. */
  disconnected: boolean;
}

/**
 * Samples an answer, yielding the event loop every few characters so requests interleave; `onText`
 * gets each piece that can be sent (never the start of a possible stop sequence). Stops at once when
 * `disconnected` aborts; when `cut` aborts (shutdown), ends as if max_tokens were reached.
 */
export async function generate(
  model: TinyLanguageModel,
  request: ChatRequest,
  signals: { disconnected: AbortSignal; cut: AbortSignal },
  onText: (text: string) => Promise<void> = async () => {},
): Promise<Generation> {
  const sampler = new Sampler(model, request.promptIds, request);
  const stops = new StopSequences(request.stops);
  const sent: string[] = [];
  // Only the characters not sent yet are kept apart: a stop sequence can only start among them.
  let pending = '';
  let sampled = 0;
  let finishReason: Generation['finishReason'] = 'length';
  while (sampled < request.maxTokens && !signals.cut.aborted) {
    pending += sampler.next();
    sampled++;
    const stopAt = stops.find(pending);
    if (stopAt >= 0) {
      pending = pending.slice(0, stopAt);
      finishReason = 'stop';
      break;
    }
    if (sampled % CHUNK_CHARACTERS === 0) {
      const settled = stops.settled(pending);
      if (settled > 0) {
        const text = pending.slice(0, settled);
        pending = pending.slice(settled);
        sent.push(text);
        await onText(text);
      }
      await yieldToEventLoop();
      if (signals.disconnected.aborted) {
        return { content: sent.join(''), completionTokens: sampled, finishReason, disconnected: true };
      }
    }
  }
  if (pending) {
    sent.push(pending);
    await onText(pending);
  }
  return {
    content: sent.join(''),
    completionTokens: sampled,
    finishReason,
    disconnected: signals.disconnected.aborted,
  };
}

/** Resolves when `res` can take more data, or once any of the signals aborts (its client or the server gives up). */
function writable(res: http.ServerResponse, signals: AbortSignal[]): Promise<void> {
  if (!res.writableNeedDrain || signals.some((signal) => signal.aborted)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      for (const signal of signals) signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    for (const signal of signals) signal.addEventListener('abort', done);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendError(res: http.ServerResponse, error: ApiError, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(
    res,
    error.status,
    { error: { message: error.message, type: error.type, param: error.param, code: error.code } },
    headers,
  );
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (part: Buffer) => {
      size += part.length;
      if (size > MAX_BODY_BYTES) {
        reject(
          new ApiError(413, 'invalid_request_error', 'request_too_large', `the body exceeds ${MAX_BODY_BYTES} bytes`),
        );
        // The rest is read and dropped, so the 413 can still be sent on this connection.
        req.removeAllListeners('data');
        req.resume();
      } else parts.push(part);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
    // A client gone before its body was complete (after 'end', this changes nothing).
    req.on('close', () => reject(new Error('the client closed the connection before its request was complete')));
  });
}

export interface TinyServerOptions {
  model: TinyLanguageModel;
  modelName: string;
  /** 0: any free port (see TinyServer.port). */
  port: number;
  host?: string;
  maxConcurrency?: number;
  shutdownGraceMs?: number;
}

export interface TinyServer {
  port: number;
  /** Chat completions generating now. */
  inFlight(): number;
  /** Stops listening, lets requests in flight finish (the grace), cuts the rest, closes every connection. */
  shutdown(): Promise<void>;
}

/** Starts serving; resolves once listening, so /v1/models answers 200 from then on. */
export async function startTinyServer(options: TinyServerOptions): Promise<TinyServer> {
  const { model, modelName } = options;
  const maxConcurrency = options.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const shutdownGraceMs = options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
  const created = Math.floor(Date.now() / 1000);
  const modelObject = { id: modelName, object: 'model', created, owned_by: 'computatrum' };
  /** Aborted when the shutdown grace is over: answers still generating end as if at max_tokens. */
  const cut = new AbortController();
  let draining = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  async function complete(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const disconnected = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) disconnected.abort();
    });
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (error) {
      throw error instanceof ApiError
        ? error
        : invalid(null, `the request body is not JSON: ${(error as Error).message}`, 'invalid_json');
    }
    const request = parseChatRequest(body, modelName, model);
    if (inFlight >= maxConcurrency) {
      throw new ApiError(
        429,
        'rate_limit_error',
        'too_many_concurrent_requests',
        `this instance is generating ${inFlight} answers, its limit (${TINY_SERVER_ENV.maxConcurrency}=${maxConcurrency}): retry shortly`,
      );
    }
    inFlight++;
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const signals = { disconnected: disconnected.signal, cut: cut.signal };
    const usage = (generation: Generation) => ({
      prompt_tokens: request.promptIds.length,
      completion_tokens: generation.completionTokens,
      total_tokens: request.promptIds.length + generation.completionTokens,
    });
    let generation: Generation;
    try {
      if (!request.stream) {
        generation = await generate(model, request, signals);
        if (!generation.disconnected) {
          sendJson(res, 200, {
            id,
            object: 'chat.completion',
            created: Math.floor(Date.now() / 1000),
            model: modelName,
            choices: [
              {
                index: 0,
                message: { role: 'assistant', content: generation.content, refusal: null },
                logprobs: null,
                finish_reason: generation.finishReason,
              },
            ],
            usage: usage(generation),
          });
        }
      } else {
        const chunkCreated = Math.floor(Date.now() / 1000);
        const send = (choices: unknown[], extra: Record<string, unknown> = {}): void => {
          if (disconnected.signal.aborted) return;
          const chunk = {
            id,
            object: 'chat.completion.chunk',
            created: chunkCreated,
            model: modelName,
            choices,
            ...(request.includeUsage ? { usage: null } : {}),
            ...extra,
          };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        };
        const delta = (content: Record<string, unknown>, finishReason: string | null = null) => [
          { index: 0, delta: content, logprobs: null, finish_reason: finishReason },
        ];
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        send(delta({ role: 'assistant', content: '' }));
        generation = await generate(model, request, signals, async (text) => {
          send(delta({ content: text }));
          // A client that reads slowly holds generation back instead of filling this process's memory.
          await writable(res, [disconnected.signal, cut.signal]);
        });
        if (!generation.disconnected) {
          send(delta({}, generation.finishReason));
          if (request.includeUsage) send([], { usage: usage(generation) });
          res.end('data: [DONE]\n\n');
        }
      }
    } finally {
      inFlight--;
      if (inFlight === 0) onIdle?.();
    }
    log(
      `${id}: ${request.stream ? 'streamed' : 'answered'} ${generation.completionTokens} characters after ` +
        `${request.promptIds.length} prompt characters, ` +
        (generation.disconnected
          ? 'stopped: client disconnected'
          : `finish_reason ${generation.finishReason}${cut.signal.aborted ? ' (cut short by shutdown)' : ''}`),
    );
  }

  function route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://instance');
    const closing = draining ? { connection: 'close' } : {};
    const handle = async (): Promise<void> => {
      if (draining) throw new ApiError(503, 'server_error', 'shutting_down', 'this instance is shutting down');
      if (url.pathname === '/v1/models' || url.pathname.startsWith('/v1/models/')) {
        if (req.method !== 'GET') throw new ApiError(405, 'invalid_request_error', 'method_not_allowed', 'use GET');
        if (url.pathname === '/v1/models') return sendJson(res, 200, { object: 'list', data: [modelObject] });
        const asked = decodeURIComponent(url.pathname.slice('/v1/models/'.length));
        if (asked === modelName) return sendJson(res, 200, modelObject);
        throw new ApiError(404, 'invalid_request_error', 'model_not_found', `The model \`${asked}\` does not exist`);
      }
      if (url.pathname === '/v1/chat/completions') {
        if (req.method !== 'POST') throw new ApiError(405, 'invalid_request_error', 'method_not_allowed', 'use POST');
        return complete(req, res);
      }
      throw new ApiError(404, 'invalid_request_error', 'not_found', `no route ${req.method} ${url.pathname}`);
    };
    handle().catch((error: unknown) => {
      if (error instanceof ApiError) {
        sendError(res, error, { ...closing, ...(error.status === 429 ? { 'retry-after': '1' } : {}) });
      } else {
        log(`${req.method} ${url.pathname} failed: ${(error as Error)?.stack ?? String(error)}`);
        sendError(res, new ApiError(500, 'server_error', 'internal_error', 'the instance failed on this request'));
      }
    });
  }

  const server = http.createServer(route);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });

  const idle = (): Promise<void> =>
    inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (onIdle = resolve));
  const within = (promise: Promise<void>, ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      void promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  let shuttingDown: Promise<void> | undefined;

  return {
    port: (server.address() as AddressInfo).port,
    inFlight: () => inFlight,
    shutdown: () =>
      (shuttingDown ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await within(idle(), shutdownGraceMs);
        if (inFlight > 0) {
          log(`still generating after ${shutdownGraceMs} ms: ${inFlight} answers, ended now`);
          cut.abort();
          await within(idle(), SHUTDOWN_FLUSH_MS);
        }
        server.closeAllConnections();
        await closed;
      })()),
  };
}

function environmentInteger(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number) {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new TrainerInputError(`${name}=${text}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** Runs the tiny server as the instance contract asks; resolves with the exit code. */
export async function serve(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.length > 0) {
    throw new TrainerInputError(`unexpected arguments ${argv.join(' ')}: the server is configured by its environment`);
  }
  const modelDir = env[INSTANCE_ENV.modelDir];
  if (!modelDir) throw new TrainerInputError(`${INSTANCE_ENV.modelDir} is not set: the server needs a checkpoint`);
  const modelName = env[INSTANCE_ENV.modelName] || DEFAULT_MODEL_NAME;
  const port = environmentInteger(env, INSTANCE_ENV.port, DEFAULT_PORT, 0, 65535);
  const maxConcurrency = environmentInteger(
    env,
    TINY_SERVER_ENV.maxConcurrency,
    DEFAULT_MAX_CONCURRENCY,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const host = env[TINY_SERVER_ENV.host] || '127.0.0.1';
  const loaded = loadTinyModel(modelDir);
  const server = await startTinyServer({ model: loaded.model, modelName, port, host, maxConcurrency });
  const instance = env[INSTANCE_ENV.instanceId] ? ` (instance ${env[INSTANCE_ENV.instanceId]})` : '';
  log(
    `serving ${modelName} from ${loaded.file}${loaded.step === undefined ? '' : ` (step ${loaded.step})`}${instance} ` +
      `on http://${host}:${server.port}/v1, answering at most ${maxConcurrency} requests at once`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log(`${signal}: no new requests; answers in flight (${server.inFlight()}) get ${SHUTDOWN_GRACE_MS} ms to finish`);
  await server.shutdown();
  log('stopped');
  return 0;
}

if (require.main === module) {
  serve(process.argv.slice(2)).then(
    (code) => {
      process.exit(code);
    },
    (error: unknown) => {
      const input = error instanceof TrainerInputError;
      process.stderr.write(
        `tiny-server: ${input ? (error as Error).message : ((error as Error)?.stack ?? String(error))}\n`,
      );
      process.exit(input ? 2 : 1);
    },
  );
}
