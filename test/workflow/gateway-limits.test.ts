// Quotas at the gateway (/v1) per caller and image, on the real engine: platforms listening on real
// ports with small limits of their own, echo instances (test/helpers/echo-instance.js) launched
// through the instance workflow, and the official OpenAI client. OpenAI's x-ratelimit-* headers on
// plain and streamed answers, 429s that say which limit and when to retry, tokens counted as the worst
// case and corrected to what was used, days kept in PostgreSQL (another platform on the same database
// sees them), anonymous visitors apart from accounts, and a burst answered 200 or 429, never 500.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI, { RateLimitError } from 'openai';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { INTERACTION_HEADER } from '../../platform/gateway';
import type { GatewayLimits, QuotaLimits } from '../../platform/gateway-limits';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { launchInstance } from '../../temporal/instance-client';
import { depositUpdate } from '../../workflows/budget-api';
import { germlineInstanceRequest } from '../helpers/instances';
import { graphqlAs, signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(60_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let germline: string;
/** Two images: a public instance of each. */
let image: string;
let otherImage: string;
const ids = { one: '', other: '' };
const opened: FastifyInstance[] = [];

const NONE: QuotaLimits = { requestsPerMinute: 0, tokensPerMinute: 0, requestsPerDay: 0, tokensPerDay: 0 };
const limits = (account: Partial<QuotaLimits>, anonymous: Partial<QuotaLimits> = {}): GatewayLimits => ({
  account: { ...NONE, ...account },
  anonymous: { ...NONE, ...anonymous },
});

/** A platform of its own (the test's limits, a visitor salt of its own unless given), listening. */
async function platform(gatewayLimits: GatewayLimits, visitorSalt?: string) {
  const app = await testPlatform(env, germline, { gatewayLimits, ...(visitorSalt ? { visitorSalt } : {}) });
  opened.push(app);
  const baseURL = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1`;
  return { app, baseURL };
}

const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);
const openai = (baseURL: string, account?: TestAccount) =>
  new OpenAI({ baseURL, apiKey: account ? tokenOf(account) : 'anonymous', maxRetries: 0 });

type Message = { role: 'user'; content: string };
const ask = (content: string): Message[] => [{ role: 'user', content }];
/** A call's worst case as the gateway counts it: the messages' bytes and the longest answer. */
const worst = (messages: Message[], maxTokens = 1024) => Buffer.byteLength(JSON.stringify(messages)) + maxTokens;

/** A chat through fetch: the status, headers and body, whatever they are. */
async function post(baseURL: string, body: Record<string, unknown>, account?: TestAccount) {
  const response = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(account ? account.token : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Seconds of an OpenAI reset header: `120ms`, `1.5s`, `6m0s`, `5h12m3s`. */
function seconds(reset: string | null): number {
  const parts = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?$|^(\d+)ms$/.exec(reset ?? '');
  if (!parts || reset === '') throw new Error(`not a reset duration: ${reset}`);
  if (parts[4]) return Number(parts[4]) / 1000;
  return Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3] ?? 0);
}

const secondsToMidnight = () => {
  const now = new Date();
  return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
};

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-limits-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  germline = started.name;
  await updateBudget(started.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  image = `germline/${germline}`;
  otherImage = `germline/${germline}-other`;
  const dir = mkdtempSync(path.join(tmpdir(), 'limits-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline}`));
  await publishCheckpoint(env.store, image, dir, { tag: 'main' });
  await publishCheckpoint(env.store, otherImage, dir, { tag: 'main' });
  const one = germlineInstanceRequest(germline, { id: uniqueName('lim') });
  const other = germlineInstanceRequest(germline, {
    id: uniqueName('lim'),
    image: { repo: otherImage, reference: 'main' },
  });
  [ids.one, ids.other] = [one.id, other.id];
  await launchInstance(env.client, env.taskQueue, one);
  await launchInstance(env.client, env.taskQueue, other);
  await eventually(
    async () => {
      const rows = await env.db.instance.findMany({ where: { id: { in: [ids.one, ids.other] } } });
      return rows.length === 2 && rows.every((row) => row.state === 'ready' && row.endpoint) ? true : undefined;
    },
    'both instances ready',
    30_000,
  );
});

afterEach(async () => {
  for (const app of opened.splice(0)) await app.close();
});

afterAll(async () => {
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test("plain and streamed answers carry OpenAI's rate-limit headers: the worst case counted, then what was used", async () => {
  const { app, baseURL } = await platform(limits({ requestsPerMinute: 5, tokensPerMinute: 10_000 }));
  const alice = await signUpAccount(app, uniqueName('alice'));
  const client = openai(baseURL, alice);

  const first = ask('hello');
  const plain = await client.chat.completions
    .create({ model: ids.one, messages: first, max_tokens: 50 })
    .withResponse();
  expect(plain.data.choices[0]!.message.content).toBe('hello');
  const headers = plain.response.headers;
  expect(headers.get('x-ratelimit-limit-requests')).toBe('5');
  expect(headers.get('x-ratelimit-remaining-requests')).toBe('4');
  expect(headers.get('x-ratelimit-limit-tokens')).toBe('10000');
  expect(headers.get('x-ratelimit-remaining-tokens')).toBe(String(10_000 - worst(first, 50)));
  for (const reset of [headers.get('x-ratelimit-reset-requests'), headers.get('x-ratelimit-reset-tokens')]) {
    expect(seconds(reset)).toBeGreaterThan(50);
    expect(seconds(reset)).toBeLessThanOrEqual(60);
  }
  const usedFirst = plain.data.usage!.total_tokens;

  const second = ask('one two three');
  const { data: stream, response } = await client.chat.completions
    .create({ model: ids.one, messages: second, max_tokens: 50, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
  expect(response.headers.get(INTERACTION_HEADER)).toBeTruthy();
  expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('3');
  // The first call counts as what it used now, the streamed one as its worst case.
  expect(response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(10_000 - usedFirst - worst(second, 50)));
  let text = '';
  let usedSecond = 0;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usedSecond = chunk.usage.total_tokens;
  }
  expect(text).toBe('one two three');
  expect(usedSecond).toBeGreaterThan(0);

  const third = ask('no max_tokens: the default answer length is counted');
  const last = await client.chat.completions.create({ model: ids.one, messages: third }).withResponse();
  expect(last.response.headers.get('x-ratelimit-remaining-requests')).toBe('2');
  expect(last.response.headers.get('x-ratelimit-remaining-tokens')).toBe(
    String(10_000 - usedFirst - usedSecond - worst(third)),
  );
});

test('past its requests a minute a caller is answered 429 with Retry-After, the limit and image named; other images still answer', async () => {
  const { app, baseURL } = await platform(limits({ requestsPerMinute: 2 }));
  const bob = await signUpAccount(app, uniqueName('bob'));
  const client = openai(baseURL, bob);
  for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: ids.one, messages: ask(`call ${i}`) });

  const refused = await client.chat.completions
    .create({ model: ids.one, messages: ask('one too many') })
    .catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(RateLimitError);
  const error = refused as RateLimitError;
  expect(error.status).toBe(429);
  expect(error.type).toBe('rate_limit_error');
  expect(error.code).toBe('rate_limit_exceeded');
  expect(error.message).toContain(`rate limit reached for ${image}: 2 requests per minute, 2 used; try again in`);
  const retryAfter = Number(error.headers?.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(error.headers?.get('x-ratelimit-limit-requests')).toBe('2');
  expect(error.headers?.get('x-ratelimit-remaining-requests')).toBe('0');

  // A streamed call is refused the same way, before any event.
  const streamed = await client.chat.completions
    .create({ model: ids.one, messages: ask('streamed'), stream: true })
    .catch((e: unknown) => e);
  expect(streamed).toBeInstanceOf(RateLimitError);

  // The counters are per image: the other image has its own.
  const other = await client.chat.completions.create({ model: ids.other, messages: ask('elsewhere') }).withResponse();
  expect(other.data.choices[0]!.message.content).toBe('elsewhere');
  expect(other.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');

  // A flood of refusals is in bob's usage at most once a second, not once a call.
  const started = Date.now();
  for (let i = 0; i < 10; i++)
    expect((await post(baseURL, { model: ids.one, messages: ask('flood') }, bob)).status).toBe(429);
  const elapsed = Date.now() - started;
  const usage = await eventually(async () => {
    const answer = await graphqlAs<{ myUsage: { refusals: number; entries: Array<Record<string, string>> } }>(
      app,
      bob.token,
      '{ myUsage { refusals entries { state repository caller reason instance } } }',
    );
    return (answer.data?.myUsage.refusals ?? 0) >= 1 ? answer.data!.myUsage : undefined;
  }, "bob's refusals in his usage");
  expect(usage.refusals).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 2);
  expect(usage.entries[0]).toMatchObject({
    state: 'refused',
    repository: image,
    caller: `account:${bob.handle}`,
    instance: ids.one,
    reason: expect.stringContaining('2 requests per minute'),
  });
});

test('a call whose max_tokens does not fit the tokens left is refused; a smaller one passes; one over the limit never fits', async () => {
  const { app, baseURL } = await platform(limits({ tokensPerMinute: 1000 }));
  const carol = await signUpAccount(app, uniqueName('carol'));
  const client = openai(baseURL, carol);

  const long = ask('x'.repeat(300));
  expect(worst(long, 300)).toBeLessThanOrEqual(1000);
  const first = await client.chat.completions
    .create({ model: ids.one, messages: long, max_tokens: 300 })
    .withResponse();
  const used = first.data.usage!.total_tokens;
  expect(used).toBe(600);
  expect(first.response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(1000 - worst(long, 300)));

  const short = ask('hi');
  expect(worst(short, 500)).toBeGreaterThan(1000 - used);
  const tooMany = await client.chat.completions
    .create({ model: ids.one, messages: short, max_tokens: 500 })
    .catch((e: unknown) => e);
  expect(tooMany).toBeInstanceOf(RateLimitError);
  expect((tooMany as RateLimitError).message).toContain(
    `rate limit reached for ${image}: 1000 tokens per minute, ${used} used, and this call may use up to ${worst(short, 500)} tokens`,
  );
  expect((tooMany as RateLimitError).headers?.get('x-ratelimit-remaining-tokens')).toBe(String(1000 - used));
  expect(Number((tooMany as RateLimitError).headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);

  const fits = await client.chat.completions
    .create({ model: ids.one, messages: short, max_tokens: 100 })
    .withResponse();
  expect(fits.data.choices[0]!.message.content).toBe('hi');
  expect(fits.response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(1000 - used - worst(short, 100)));

  // More than the limit itself: no retry helps, and OpenAI's clients are told not to.
  const never = await post(baseURL, { model: ids.one, messages: short, max_tokens: 5000 }, carol);
  expect(never.status).toBe(429);
  expect(never.headers.get('x-should-retry')).toBe('false');
  expect(JSON.parse(never.text)).toMatchObject({
    error: {
      type: 'rate_limit_error',
      code: 'rate_limit_exceeded',
      message: expect.stringContaining(`more than the 1000 tokens per minute allowed for ${image}`),
    },
  });
});

test('days are counted in PostgreSQL: another platform on the same database sees them, and refuses until midnight UTC', async () => {
  const dayLimits = limits({ requestsPerDay: 3, tokensPerDay: 1_000_000 });
  const first = await platform(dayLimits);
  const dave = await signUpAccount(first.app, uniqueName('dave'));
  let used = 0;
  for (let i = 0; i < 2; i++) {
    const { data, response } = await openai(first.baseURL, dave)
      .chat.completions.create({ model: ids.one, messages: ask(`day ${i}`), max_tokens: 20 })
      .withResponse();
    used += data.usage!.total_tokens;
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(2 - i));
    const reset = seconds(response.headers.get('x-ratelimit-reset-requests'));
    expect(Math.abs(reset - secondsToMidnight())).toBeLessThan(60);
  }
  // Each call counted its worst case, then what it used.
  const day = new Date().toISOString().slice(0, 10);
  const key = { caller: `account:${dave.handle}`, repository: image, day };
  await eventually(async () => {
    const row = await env.db.gatewayUse.findUnique({ where: { caller_repository_day: key } });
    return row?.requests === 2 && Number(row.tokens) === used ? true : undefined;
  }, "dave's day in PostgreSQL");

  const second = await platform(dayLimits);
  const third = await openai(second.baseURL, dave)
    .chat.completions.create({ model: ids.one, messages: ask('day 2') })
    .withResponse();
  expect(third.response.headers.get('x-ratelimit-remaining-requests')).toBe('0');

  for (const { baseURL } of [second, first]) {
    const refused = await post(baseURL, { model: ids.one, messages: ask('day 3') }, dave);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.text).error.message).toContain(`rate limit reached for ${image}: 3 requests per day`);
    expect(Math.abs(Number(refused.headers.get('retry-after')) - secondsToMidnight())).toBeLessThan(60);
    expect(refused.headers.get('x-should-retry')).toBe('false');
  }
});

test('anonymous visitors have limits of their own, apart from accounts; operators are not limited', async () => {
  const { app, baseURL } = await platform(limits({ requestsPerMinute: 3 }, { requestsPerMinute: 1 }));
  const erin = await signUpAccount(app, uniqueName('erin'));
  const operator = await signUpAccount(app, uniqueName('op'), { db: env.db });

  const anonymous = await openai(baseURL)
    .chat.completions.create({ model: ids.one, messages: ask('anyone') })
    .withResponse();
  expect(anonymous.response.headers.get('x-ratelimit-limit-requests')).toBe('1');
  expect(anonymous.response.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  const refused = await openai(baseURL)
    .chat.completions.create({ model: ids.one, messages: ask('anyone again') })
    .catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(RateLimitError);
  expect((refused as RateLimitError).message).toMatch(/1 requests per minute, 1 used; .*sign in \(an API token\)/);

  for (let i = 0; i < 3; i++) {
    const { response } = await openai(baseURL, erin)
      .chat.completions.create({ model: ids.one, messages: ask(`erin ${i}`) })
      .withResponse();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe(String(2 - i));
  }
  for (let i = 0; i < 5; i++) {
    const answer = await post(baseURL, { model: ids.one, messages: ask(`operator ${i}`) }, operator);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-ratelimit-limit-requests')).toBeNull();
  }
});

test('a burst beyond the limits is answered 200 or 429, never 500, with exactly the limit admitted: a minute here, a day across replicas', async () => {
  const minute = await platform(limits({ requestsPerMinute: 5 }));
  const frank = await signUpAccount(minute.app, uniqueName('frank'));
  const burst = await Promise.all(
    Array.from({ length: 12 }, (_, i) => post(minute.baseURL, { model: ids.one, messages: ask(`burst ${i}`) }, frank)),
  );
  const statuses = burst.map((answer) => answer.status);
  expect(statuses.filter((status) => status === 200)).toHaveLength(5);
  expect(statuses.filter((status) => status === 429)).toHaveLength(7);

  // Two replicas on one database, one day's limit: the upserts admit exactly that many.
  const dayLimits = limits({ requestsPerDay: 4 });
  const replicas = [await platform(dayLimits), await platform(dayLimits)];
  const grace = await signUpAccount(replicas[0]!.app, uniqueName('grace'));
  const spread = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      post(replicas[i % 2]!.baseURL, { model: ids.one, messages: ask(`spread ${i}`) }, grace),
    ),
  );
  const spreadStatuses = spread.map((answer) => answer.status);
  expect(spreadStatuses.filter((status) => status === 200)).toHaveLength(4);
  expect(spreadStatuses.filter((status) => status === 429)).toHaveLength(8);
  const row = await env.db.gatewayUse.findUnique({
    where: {
      caller_repository_day: {
        caller: `account:${grace.handle}`,
        repository: image,
        day: new Date().toISOString().slice(0, 10),
      },
    },
  });
  expect(row?.requests).toBe(4);
});
