// Per-use prices on the real engine: a trainer prices their breed's use, callers pay from their
// credit through allotments (allotment/<id> workflows) metered in PostgreSQL by the gateway, and the
// books meet: what a caller's credit spent is the trainer's earning plus the germline's fee, to the
// minor unit. Calls go through the official OpenAI client to echo instances (real processes).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI, { APIError } from 'openai';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { journalBalances } from '../../activities/journal';
import { CHARGE_HEADER, INTERACTION_HEADER } from '../../platform/gateway';
import { creditHandle } from '../../platform/credit';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { launchInstance } from '../../temporal/instance-client';
import { depositUpdate, ledgerQuery, statusQuery } from '../../workflows/budget-api';
import { creditBook, germlineWorkflowId, usageFeeReference } from '../../workflows/names';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { reconciledBooks } from '../helpers/budget';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { germlineInstanceRequest } from '../helpers/instances';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(90_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let baseURL: string;
let germline: string;
let alice: TestAccount;
let breed: string;
let carol: TestAccount;
/** A public instance of alice's priced breed launched by the germline, one launched by carol (she pays her visitors' use), and a slow one. */
const ids = { germlines: '', carols: '', slow: '' };

const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);
const openai = (account?: TestAccount) =>
  new OpenAI({ baseURL, apiKey: account ? tokenOf(account) : 'sk-anonymous', maxRetries: 0 });

/** A new account with `minor` units of credit. */
async function withCredit(name: string, minor: number): Promise<TestAccount> {
  const account = await signUpAccount(app, uniqueName(name));
  const credit = await creditHandle(env.client, env.taskQueue, account.handle, 'usd');
  if (minor > 0)
    await updateBudget(credit, depositUpdate, { amount: String(minor), currency: 'usd', reference: 'seed' });
  return account;
}

const settledAllotments = (handle: string) =>
  eventually(
    async () => {
      const rows = await env.db.usageAllotment.findMany({ where: { handle } });
      return rows.length > 0 && rows.every((row) => ['settled', 'refused'].includes(row.state)) ? rows : undefined;
    },
    `${handle}'s allotments settled`,
    30_000,
  );

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-usage-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  germline = started.name;
  await updateBudget(started.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });

  app = await testPlatform(env, germline, {
    training: {
      runner: 'local',
      ratePerGpuHour: 200n,
      maxDurationSeconds: 600,
      maxPreemptions: 0,
      taskQueue: env.taskQueue,
      maxGpus: 1,
    },
    feePercent: 10,
    // Long enough that no allotment expires between its opening and the calls it opened for, on a loaded
    // machine (the refused calls close it at once; the abandoned stream's settles when it expires).
    usage: { allotmentSeconds: 8 },
  });
  baseURL = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1`;

  alice = await signUpAccount(app, uniqueName('alice'));
  breed = `trainers/${alice.handle}/echo`;
  const dir = mkdtempSync(path.join(tmpdir(), 'usage-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${breed}`));
  await publishCheckpoint(env.store, breed, dir, { tag: 'main' });
  const published = await alice.gql(
    'mutation($r: String!) { publishBreed(repository: $r, title: "Echo") { repository } }',
    { r: breed },
  );
  expect(published.errors).toBeUndefined();
  // 1,000 micros (a thousandth of a cent) per token in, 3,000 per token out.
  const priced = await alice.gql<{ priceBreed: Record<string, unknown> }>(
    'mutation($r: String!) { priceBreed(repository: $r, inputPer1k: "0.01", outputPer1k: "0.03") { price inputPricePer1k outputPricePer1k licenceIncludesUse } }',
    { r: breed },
  );
  expect(priced.data?.priceBreed).toEqual({
    price: null,
    inputPricePer1k: '0.01',
    outputPricePer1k: '0.03',
    licenceIncludesUse: true,
  });

  carol = await withCredit('carol', 0);
  const image = { repo: breed, reference: 'main' };
  const launches = {
    germlines: germlineInstanceRequest(germline, { id: uniqueName('priced'), image }),
    carols: germlineInstanceRequest(germline, { id: uniqueName('carols'), image, owner: carol.handle }),
    slow: germlineInstanceRequest(germline, {
      id: uniqueName('slow'),
      image,
      command: ['/usr/bin/env', 'ECHO_STREAM_DELAY_MS=150', ...ECHO_INSTANCE],
    }),
  };
  for (const [key, request] of Object.entries(launches)) {
    ids[key as keyof typeof ids] = request.id;
    await launchInstance(env.client, env.taskQueue, request);
  }
  await eventually(async () => {
    const rows = await env.db.instance.findMany({ where: { id: { in: Object.values(ids) } } });
    return rows.length === 3 && rows.every((row) => row.state === 'ready' && row.endpoint) ? true : undefined;
  }, 'the priced instances ready');
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test('six concurrent calls on credit for two: two answered, four refused before the instance sees them, and the books meet to the minor unit', async () => {
  // Each call: a 1,000-character prompt and up to 1,000 tokens of answer, at most 4.03 cents
  // (1,031 bytes of messages × 1,000 micros + 1,000 × 3,000 micros), and 4 cents as used.
  const bob = await withCredit('bob', 10);
  const prompt = 'x'.repeat(1000);
  const call = () =>
    openai(bob)
      .chat.completions.create({
        model: ids.germlines,
        messages: [{ role: 'user', content: prompt }],
        max_tokens: 1000,
      })
      .withResponse();
  const results = await Promise.allSettled(Array.from({ length: 6 }, call));
  const answered = results
    .filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof call>>> => r.status === 'fulfilled')
    .map((r) => r.value);
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
  expect(answered).toHaveLength(2);
  expect(refused).toHaveLength(4);
  for (const error of refused) {
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(402);
    expect((error as APIError).message).toMatch(/Add credit/);
  }
  for (const { data, response } of answered) {
    expect(data.choices[0]!.message.content).toBe(prompt);
    expect(response.headers.get(CHARGE_HEADER)).toBe('0.04 USD');
  }
  // The instance saw only the two it answered.
  expect(await env.db.interaction.count({ where: { instanceId: ids.germlines, callerHandle: bob.handle } })).toBe(2);

  const [allotment, ...others] = await settledAllotments(bob.handle);
  expect(others.filter((row) => row.state === 'settled')).toHaveLength(0);
  expect(allotment).toMatchObject({ state: 'settled', amount: 10n, used: 8_000_000n, held: 0n, spent: 8n, fee: 1n });

  // Bob's credit spent 8 cents; alice earned 90% of it rounded down (7), the germline the rest (1).
  const credit = await creditHandle(env.client, env.taskQueue, bob.handle, 'usd');
  expect(await credit.query(statusQuery)).toMatchObject({ spent: '8', available: '2', reserved: '0' });
  const earnings = await env.db.earning.findMany({ where: { allotmentId: allotment!.id } });
  expect(earnings).toEqual([expect.objectContaining({ handle: alice.handle, repository: breed, amount: 7n })]);
  const germlineHandle = env.client.workflow.getHandle(germlineWorkflowId(germline));
  const fee = (await germlineHandle.query(ledgerQuery, 500)).filter(
    (entry) => entry.reference === usageFeeReference(allotment!.id),
  );
  expect(fee).toEqual([expect.objectContaining({ kind: 'deposit', amount: '1' })]);
  expect((await reconciledBooks(env.db, credit, creditBook(bob.handle))).agrees).toBe(true);
  expect((await journalBalances(env.db, creditBook(bob.handle))).spent).toBe(8n);

  // Every charge and refusal is his to read.
  const usage = await bob.gql<{
    myUsage: {
      calls: number;
      refusals: number;
      charged: string;
      entries: Array<{ state: string; amount: string; reason: string | null }>;
    };
  }>('{ myUsage { calls refusals charged entries { state amount reason } } }');
  expect(usage.data?.myUsage).toMatchObject({ calls: 2, refusals: 4, charged: '0.08 USD' });
  expect(usage.data?.myUsage.entries.filter((e) => e.state === 'refused')).toHaveLength(4);
});

test('a stream the caller abandons is charged for what it streamed, not for the answer it asked for', async () => {
  const dana = await withCredit('dana', 100);
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
  const stream = await openai(dana).chat.completions.create({
    model: ids.slow,
    messages: [{ role: 'user', content: words }],
    stream: true,
  });
  let received = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) received += 1;
    if (received === 3) break; // leaves the loop: the client aborts the request
  }
  const charge = await eventually(async () => {
    const row = await env.db.usageCharge.findFirst({ where: { payerHandle: dana.handle } });
    return row && row.state !== 'held' ? row : undefined;
  }, "dana's call ended");
  expect(charge.state).toBe('charged');
  expect(charge.outputTokens).toBeGreaterThanOrEqual(3);
  expect(charge.outputTokens).toBeLessThan(40);
  // Her prompt (characters) at 1,000 micros and the streamed tokens at 3,000: far under the 1,024-token answer held.
  expect(charge.amount).toBe(BigInt(words.length) * 1000n + BigInt(charge.outputTokens!) * 3000n);
  expect(charge.amount).toBeLessThan(charge.held);
  const [allotment] = await settledAllotments(dana.handle);
  expect(allotment!.spent).toBe((charge.amount + 999_999n) / 1_000_000n);
});

test('who pays: the breed owner calls free, a visitor of carol’s public instance is paid for by carol, and a visitor of the germline’s is asked to sign in', async () => {
  const mine = await openai(alice)
    .chat.completions.create({ model: ids.germlines, messages: [{ role: 'user', content: 'mine' }] })
    .withResponse();
  expect(mine.data.choices[0]!.message.content).toBe('mine');
  expect(mine.response.headers.get(CHARGE_HEADER)).toBeNull();
  expect(await env.db.usageCharge.count({ where: { id: mine.response.headers.get(INTERACTION_HEADER)! } })).toBe(0);

  // Carol has no credit: her visitors are refused, saying what would make it work.
  const refusal = await openai()
    .chat.completions.create({ model: ids.carols, messages: [{ role: 'user', content: 'hi' }] })
    .catch((error: unknown) => error);
  expect(refusal).toBeInstanceOf(APIError);
  expect((refusal as APIError).status).toBe(402);
  expect((refusal as APIError).message).toMatch(/'s credit has 0\.00 USD available\. Add credit/);

  // With credit, she pays for what her visitors use, and sees it (not what they said).
  await updateBudget(await creditHandle(env.client, env.taskQueue, carol.handle, 'usd'), depositUpdate, {
    amount: '100',
    currency: 'usd',
    reference: 'top-up',
  });
  const visit = await openai()
    .chat.completions.create({ model: ids.carols, messages: [{ role: 'user', content: 'hello' }] })
    .withResponse();
  expect(visit.response.headers.get(CHARGE_HEADER)).toBe('0.0002 USD');
  const paid = await carol.gql<{ myUsage: { entries: Array<{ caller: string; state: string; amount: string }> } }>(
    '{ myUsage { entries { caller state amount } } }',
  );
  expect(paid.data?.myUsage.entries).toEqual([
    { caller: expect.stringMatching(/^visitor:[0-9a-f]{32}$/), state: 'charged', amount: '0.0002 USD' },
  ]);

  const anonymous = await openai()
    .chat.completions.create({ model: ids.germlines, messages: [{ role: 'user', content: 'hi' }] })
    .catch((error: unknown) => error);
  expect((anonymous as APIError).status).toBe(401);
  expect((anonymous as APIError).message).toMatch(
    /priced per use \(0\.01 USD in, 0\.03 USD out per 1,000 tokens\): sign in/,
  );
});

test('prices are refused clearly: too many decimals, and a breed that is not yours', async () => {
  const bad = await alice.gql(
    'mutation($r: String!) { priceBreed(repository: $r, inputPer1k: "0.0000001") { repository } }',
    {
      r: breed,
    },
  );
  expect(bad.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(bad.errors?.[0]?.message).toMatch(/input price.*7 decimals; at most 5 in USD/);
  const eve = await signUpAccount(app, uniqueName('eve'));
  const theirs = await eve.gql(
    'mutation($r: String!) { priceBreed(repository: $r, outputPer1k: "0") { repository } }',
    {
      r: breed,
    },
  );
  expect(theirs.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
});
