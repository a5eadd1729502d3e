// The gateway (/v1) through the official OpenAI client, on the real engine: a platform listening on a
// real port, a worker, and echo instances (test/helpers/echo-instance.js) launched through the
// instance workflow and the local runner. Who may use which instance, streaming, routing by image,
// waking a sleeping instance, and the interaction stored for each exchange.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI, { AuthenticationError, NotFoundError, PermissionDeniedError, RateLimitError } from 'openai';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { INTERACTION_HEADER } from '../../platform/gateway';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { depositUpdate } from '../../workflows/budget-api';
import { type InstanceRequest, instanceStatusQuery, stopInstanceUpdate } from '../../workflows/instance-api';
import { germlineInstanceRequest } from '../helpers/instances';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(60_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let baseURL: string;
let germline: string;
let digest: string;
let alice: TestAccount;
let bob: TestAccount;
/**
 * A public instance of `main`, one private to alice, one public that sleeps after 1 s, one stopped,
 * and a slow one (public, of `slow`: 2.5 s to load, 100 ms between streamed words, one request at a
 * time, sleeps after 1 s).
 */
const ids = { pub: '', priv: '', sleepy: '', stopped: '', slow: '' };

const openai = (apiKey = 'sk-not-a-computatrum-token') => new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);
const stateOf = (id: string) => instanceHandle(env.client, id).query(instanceStatusQuery);
const reach = (id: string, state: string) =>
  eventually(
    async () => ((await stateOf(id)).state === state ? true : undefined),
    `instance ${id} to be ${state}`,
    30_000,
  );

const request = (overrides: Partial<InstanceRequest> = {}): InstanceRequest =>
  germlineInstanceRequest(germline, { id: uniqueName('gw'), ...overrides });

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-gateway-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  germline = started.name;
  await updateBudget(started.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  const dir = mkdtempSync(path.join(tmpdir(), 'gateway-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline}`));
  digest = (await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'main' })).digest;
  await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'sleepy' });
  await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'slow' });

  app = await testPlatform(env, germline);
  baseURL = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1`;
  alice = await signUpAccount(app, uniqueName('alice'));
  bob = await signUpAccount(app, uniqueName('bob'));

  const launches = {
    pub: request({}),
    priv: request({ visibility: 'private', owner: alice.handle }),
    sleepy: request({ image: { repo: `germline/${germline}`, reference: 'sleepy' }, idleTimeoutSeconds: 1 }),
    stopped: request({}),
    slow: request({
      image: { repo: `germline/${germline}`, reference: 'slow' },
      idleTimeoutSeconds: 1,
      command: [
        '/usr/bin/env',
        'ECHO_READY_AFTER_MS=2500',
        'ECHO_STREAM_DELAY_MS=100',
        'ECHO_MAX_IN_FLIGHT=1',
        ...ECHO_INSTANCE,
      ],
    }),
  };
  for (const [key, input] of Object.entries(launches)) {
    ids[key as keyof typeof ids] = input.id;
    await launchInstance(env.client, env.taskQueue, input);
  }
  await Promise.all([reach(ids.pub, 'ready'), reach(ids.priv, 'ready'), reach(ids.stopped, 'ready')]);
  await instanceHandle(env.client, ids.stopped).executeUpdate(stopInstanceUpdate, {
    args: [{ by: 'op', reason: 'done testing' }],
  });
  // The platform reads the rows the workflow records.
  await eventually(async () => {
    const rows = await env.db.instance.findMany({ where: { id: { in: [ids.pub, ids.priv] } } });
    return rows.length === 2 && rows.every((row) => row.state === 'ready' && row.endpoint) ? true : undefined;
  }, 'the ready instances recorded');
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test('a chat with a public instance, anonymously: the echo, its usage, and the interaction stored', async () => {
  const before = Date.now();
  const { data, response } = await openai()
    .chat.completions.create({ model: ids.pub, messages: [{ role: 'user', content: 'hello there' }], temperature: 0 })
    .withResponse();
  expect(data.choices[0]!.message.content).toBe('hello there');
  expect(data.choices[0]!.finish_reason).toBe('stop');
  expect(data.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 11, total_tokens: 22 });
  const interactionId = response.headers.get(INTERACTION_HEADER);
  expect(interactionId).toMatch(/^[0-9a-f-]{36}$/);

  const row = await env.db.interaction.findUniqueOrThrow({ where: { id: interactionId! } });
  expect(row).toMatchObject({ instanceId: ids.pub, digest, completion: 'hello there', callerHandle: null });
  expect(row.visitorId).toMatch(/^[0-9a-f]{32}$/);
  expect(row.visitorId).not.toContain('127.0.0.1');
  expect(row.request).toMatchObject({ messages: [{ role: 'user', content: 'hello there' }], temperature: 0 });
  expect(row.usage).toMatchObject({ total_tokens: 22 });
  const instance = await env.db.instance.findUniqueOrThrow({ where: { id: ids.pub } });
  expect(instance.lastRequestAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
});

test('a streamed chat: the chunks as they come, the finish, the usage, and the interaction stored at its end', async () => {
  const { data: stream, response } = await openai(tokenOf(bob))
    .chat.completions.create({
      model: ids.pub,
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  const interactionId = response.headers.get(INTERACTION_HEADER)!;
  expect(interactionId).toBeTruthy();
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  expect(text).toBe('one two three');
  expect(chunks).toBeGreaterThanOrEqual(5);
  expect(finish).toBe('stop');
  expect(usage).toMatchObject({ completion_tokens: 13 });
  const row = await eventually(
    () => env.db.interaction.findUnique({ where: { id: interactionId } }).then((r) => r ?? undefined),
    'the streamed interaction',
  );
  expect(row).toMatchObject({ instanceId: ids.pub, completion: 'one two three', callerHandle: bob.handle });
  expect(row.visitorId).toBeNull();
  expect(row.usage).toMatchObject({ completion_tokens: 13 });
});

test('an image reference is routed to an instance of it the caller may use: public for others, her own for alice', async () => {
  const messages = [{ role: 'user' as const, content: 'routed' }];
  const anonymous = await openai()
    .chat.completions.create({ model: `germline/${germline}:main`, messages })
    .withResponse();
  expect(anonymous.data.choices[0]!.message.content).toBe('routed');
  const served = await env.db.interaction.findUniqueOrThrow({
    where: { id: anonymous.response.headers.get(INTERACTION_HEADER)! },
  });
  expect(served.instanceId).toBe(ids.pub);

  const byDigest = await openai().chat.completions.create({ model: `germline/${germline}@${digest}`, messages });
  expect(byDigest.choices[0]!.message.content).toBe('routed');

  const own = await openai(tokenOf(alice))
    .chat.completions.create({ model: `germline/${germline}:main`, messages })
    .withResponse();
  const hers = await env.db.interaction.findUniqueOrThrow({
    where: { id: own.response.headers.get(INTERACTION_HEADER)! },
  });
  expect(hers.instanceId).toBe(ids.priv);
});

test('an unknown model, an image without an instance and a stopped instance are not found, saying why', async () => {
  const messages = [{ role: 'user' as const, content: 'hi' }];
  const unknown = openai().chat.completions.create({ model: 'no-such-instance', messages });
  await expect(unknown).rejects.toBeInstanceOf(NotFoundError);
  await expect(unknown).rejects.toMatchObject({ code: 'model_not_found', param: 'model' });
  await expect(
    openai().chat.completions.create({ model: `germline/${germline}:nowhere`, messages }),
  ).rejects.toBeInstanceOf(NotFoundError);
  const stopped = openai().chat.completions.create({ model: ids.stopped, messages });
  await expect(stopped).rejects.toBeInstanceOf(NotFoundError);
  await expect(stopped).rejects.toThrow(`instance ${ids.stopped} has stopped: stopped by op: done testing`);
});

test('a private instance answers its owner only: anonymous 401, another account 403, a revoked-looking token 401', async () => {
  const messages = [{ role: 'user' as const, content: 'secret' }];
  await expect(openai().chat.completions.create({ model: ids.priv, messages })).rejects.toBeInstanceOf(
    AuthenticationError,
  );
  await expect(openai(tokenOf(bob)).chat.completions.create({ model: ids.priv, messages })).rejects.toBeInstanceOf(
    PermissionDeniedError,
  );
  const answer = await openai(tokenOf(alice)).chat.completions.create({ model: ids.priv, messages });
  expect(answer.choices[0]!.message.content).toBe('secret');
  // A token shaped like ours that is not known is refused even where the public may talk.
  const revoked = openai('ctr_unknown').chat.completions.create({ model: ids.pub, messages });
  await expect(revoked).rejects.toBeInstanceOf(AuthenticationError);
  await expect(revoked).rejects.toMatchObject({ code: 'invalid_api_key' });
});

test('a sleeping instance is woken by a request and answers, plain and streamed', async () => {
  await reach(ids.sleepy, 'sleeping');
  const messages = [{ role: 'user' as const, content: 'wake up' }];
  const answer = await openai().chat.completions.create({ model: ids.sleepy, messages });
  expect(answer.choices[0]!.message.content).toBe('wake up');

  await reach(ids.sleepy, 'sleeping');
  const stream = await openai().chat.completions.create({
    model: `germline/${germline}:sleepy`,
    messages,
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  expect(text).toBe('wake up');
});

test('a streaming request waiting for a slow wake is kept alive with SSE comments, then streams', async () => {
  await reach(ids.slow, 'sleeping');
  const response = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: ids.slow, messages: [{ role: 'user', content: 'slow and steady' }], stream: true }),
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
  expect(response.headers.get(INTERACTION_HEADER)).toBeTruthy();
  const body = await response.text();
  expect(body).toContain(`: waking ${ids.slow}\n\n`);
  expect(body).toContain('"content":"steady"');
  expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
});

test("a busy instance's 429 passes through; a client that goes away mid-stream ends the exchange, what was streamed stored", async () => {
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
  const { data: stream, response } = await openai()
    .chat.completions.create({ model: ids.slow, messages: [{ role: 'user', content: words }], stream: true })
    .withResponse();
  const interactionId = response.headers.get(INTERACTION_HEADER)!;
  let text = '';
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (text === 'w0 ') {
      // The instance takes one request at a time: its 429 and Retry-After pass through.
      const busy = await openai()
        .chat.completions.create({ model: ids.slow, messages: [{ role: 'user', content: 'me too' }] })
        .catch((error: unknown) => error);
      expect(busy).toBeInstanceOf(RateLimitError);
      expect((busy as RateLimitError).headers?.get('retry-after')).toBe('1');
    }
    if (text.startsWith('w0 w1 ')) break; // leaving the loop aborts the request
  }
  const row = await eventually(
    () => env.db.interaction.findUnique({ where: { id: interactionId } }).then((r) => r ?? undefined),
    'the aborted interaction',
  );
  expect(row.completion.startsWith('w0 w1')).toBe(true);
  expect(row.completion.length).toBeLessThan(words.length);
});

test('/v1/models lists the instances the caller may use', async () => {
  const listed = async (client: OpenAI) => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    return ids;
  };
  const anonymous = await listed(openai());
  expect(anonymous).toEqual(expect.arrayContaining([ids.pub, ids.sleepy]));
  expect(anonymous).not.toContain(ids.priv);
  expect(anonymous).not.toContain(ids.stopped);
  expect(await listed(openai(tokenOf(bob)))).not.toContain(ids.priv);
  expect(await listed(openai(tokenOf(alice)))).toEqual(expect.arrayContaining([ids.pub, ids.priv, ids.sleepy]));
  const own = await openai(tokenOf(alice)).models.retrieve(ids.priv);
  expect(own.owned_by).toBe(alice.handle);
  expect((await openai().models.retrieve(ids.pub)).owned_by).toBe('computatrum');
});

test('the gateway is rate limited per caller, answering OpenAI-shaped 429s', async () => {
  const limited = await testPlatform(env, germline, { rateLimitPerMinute: 2 });
  try {
    const get = () => limited.inject({ method: 'GET', url: '/v1/models' });
    expect((await get()).statusCode).toBe(200);
    expect((await get()).statusCode).toBe(200);
    const refused = await get();
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
    expect(refused.json()).toMatchObject({
      error: { type: 'rate_limit_error', message: expect.stringMatching(/too many/) },
    });
    // Keyed by account: alice and bob, from the same address, each have their own.
    const as = (account: TestAccount) => limited.inject({ method: 'GET', url: '/v1/models', headers: account.token });
    expect((await as(alice)).statusCode).toBe(200);
    expect((await as(alice)).statusCode).toBe(200);
    expect((await as(alice)).statusCode).toBe(429);
    expect((await as(bob)).statusCode).toBe(200);
  } finally {
    await limited.close();
  }
});

test('anonymous visitors get fewer gateway requests a minute than accounts', async () => {
  const limited = await testPlatform(env, germline, { rateLimitPerMinute: 4, anonymousChatsPerMinute: 1 });
  try {
    const get = (headers: Record<string, string> = {}) => limited.inject({ method: 'GET', url: '/v1/models', headers });
    expect((await get()).statusCode).toBe(200);
    expect((await get()).statusCode).toBe(429);
    for (let i = 0; i < 4; i++) expect((await get(alice.token as Record<string, string>)).statusCode).toBe(200);
    expect((await get(alice.token as Record<string, string>)).statusCode).toBe(429);
  } finally {
    await limited.close();
  }
});
