// Sponsored free use on the real engine: an organisation funds sponsor/<name> through Stripe Checkout
// (stripe-mock, webhooks signed as Stripe signs them), its grant gives each eligible personal account
// a daily allowance, and a person's priced calls are paid grant → own credit → refused with what
// would make them work. The sponsor sees totals, never what was said; an expired grant pays nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import OpenAI, { APIError } from 'openai';
import type Stripe from 'stripe';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { CHARGE_HEADER, INTERACTION_HEADER } from '../../platform/gateway';
import { creditHandle } from '../../platform/credit';
import { SPONSOR_KIND, stripeClient } from '../../platform/stripe';
import { payOutEarnings } from '../../platform/payouts';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { launchInstance } from '../../temporal/instance-client';
import { depositUpdate } from '../../workflows/budget-api';
import { sponsorBook, sponsorWorkflowId } from '../../workflows/names';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { reconciledBooks } from '../helpers/budget';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { germlineInstanceRequest } from '../helpers/instances';
import { testPlatform, testStripe } from '../helpers/platform';
import {
  deliverWebhook,
  paidCheckoutEvent,
  recordRequests,
  type SentRequest,
  startStripeMock,
} from '../helpers/stripe-mock';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];
const WEBHOOK_SECRET = 'whsec_test_sponsors';

jest.setTimeout(90_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let stripe: Stripe;
let app: FastifyInstance;
let baseURL: string;
let instance: string;
let acme: TestAccount;
let sponsor: string;
/** The grant's people are at this domain, theirs alone: other suites' accounts (at example.org) never use it. */
let domain: string;
/** The metering's clock: moved forward to pass a grant's expiry. */
let clockOffsetMs = 0;
let alice: TestAccount;
let breed: string;
let sent: SentRequest[];

const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);
/** A 1,000-character prompt answered in full: 4 cents as used, at most 4.03 cents held. */
const call = (account: TestAccount) =>
  new OpenAI({ baseURL, apiKey: tokenOf(account), maxRetries: 0 }).chat.completions
    .create({ model: instance, messages: [{ role: 'user', content: 'y'.repeat(1000) }], max_tokens: 1000 })
    .withResponse();

beforeAll(async () => {
  mock = await startStripeMock();
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-sponsors-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  stripe = stripeClient('sk_test_mock', mock.url);
  sent = recordRequests(stripe);
  app = await testPlatform(env, germline.name, {
    stripe: testStripe(stripe, WEBHOOK_SECRET),
    training: {
      runner: 'local',
      ratePerGpuHour: 200n,
      maxDurationSeconds: 600,
      maxPreemptions: 0,
      taskQueue: env.taskQueue,
      maxGpus: 1,
    },
    usage: { allotmentSeconds: 2, cacheMs: 0, clock: () => new Date(Date.now() + clockOffsetMs) },
  });
  baseURL = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1`;

  // Alice's breed at 1,000 micros a token in and 3,000 out, served by the germline's public instance.
  alice = await signUpAccount(app, uniqueName('alice'));
  breed = `trainers/${alice.handle}/echo`;
  const dir = mkdtempSync(path.join(tmpdir(), 'sponsors-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${breed}`));
  await publishCheckpoint(env.store, breed, dir, { tag: 'main' });
  await alice.gql('mutation($r: String!) { publishBreed(repository: $r, title: "Echo") { repository } }', { r: breed });
  const priced = await alice.gql(
    'mutation($r: String!) { priceBreed(repository: $r, inputPer1k: "0.01", outputPer1k: "0.03") { repository } }',
    { r: breed },
  );
  expect(priced.errors).toBeUndefined();
  const request = germlineInstanceRequest(germline.name, {
    id: uniqueName('sponsored'),
    image: { repo: breed, reference: 'main' },
  });
  instance = request.id;
  await launchInstance(env.client, env.taskQueue, request);
  await eventually(async () => {
    const row = await env.db.instance.findUnique({ where: { id: instance } });
    return row?.state === 'ready' && row.endpoint ? true : undefined;
  }, 'the priced instance ready');

  acme = await signUpAccount(app, uniqueName('acme'));
  sponsor = uniqueName('acme');
  domain = `${sponsor}.example.org`;
  const created = await acme.gql('mutation($n: String!) { createSponsor(name: $n, title: "Acme Corp") { name } }', {
    n: sponsor,
  });
  expect(created.errors).toBeUndefined();
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
  await mock?.stop();
});

test("a sponsor's Checkout funds its grant once, however often Stripe delivers the event", async () => {
  const checkout = await acme.gql<{ fundSponsor: { id: string; url: string } }>(
    'mutation($n: String!) { fundSponsor(name: $n, amount: "10.00", requestId: "r1") { id url } }',
    { n: sponsor },
  );
  expect(checkout.data?.fundSponsor.id).toMatch(/^cs_/);
  const event = `evt_${uniqueName('sponsor').replace(/-/g, '')}`;
  const body = paidCheckoutEvent(event, 1000, { kind: SPONSOR_KIND, sponsor });
  for (let i = 0; i < 3; i++) expect((await deliverWebhook(app, stripe, WEBHOOK_SECRET, body)).statusCode).toBe(200);
  const report = await acme.gql<{ sponsor: { fund: { deposited: string; available: string } } }>(
    'query($n: String!) { sponsor(name: $n) { fund { deposited available } } }',
    { n: sponsor },
  );
  expect(report.data?.sponsor.fund).toEqual({ deposited: '1000', available: '1000' });

  // Someone else's sponsor is not theirs to read, fund or change.
  const stranger = await signUpAccount(app, uniqueName('eve'));
  const denied = await stranger.gql(
    'mutation($n: String!) { setSponsorGrant(name: $n, dailyAllowance: "100") { name } }',
    {
      n: sponsor,
    },
  );
  expect(denied.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
});

test('a person is paid for by the grant until today’s allowance is spent, then by their credit, then refused saying why', async () => {
  const granted = await acme.gql<{ setSponsorGrant: Record<string, unknown> }>(
    'mutation($n: String!, $d: String!) { setSponsorGrant(name: $n, dailyAllowance: "0.05", eligibleDomain: $d) { dailyAllowance eligibleDomain expiresAt } }',
    { n: sponsor, d: domain.toUpperCase() },
  );
  expect(granted.data?.setSponsorGrant).toEqual({
    dailyAllowance: '5',
    eligibleDomain: domain,
    expiresAt: null,
  });
  expect(
    (await acme.gql<{ sponsors: Array<{ name: string }> }>('{ sponsors { name } }')).data?.sponsors,
  ).toContainEqual({
    name: sponsor,
  });

  const pat = await signUpAccount(app, uniqueName('pat'), undefined, domain);
  await updateBudget(await creditHandle(env.client, env.taskQueue, pat.handle, 'usd'), depositUpdate, {
    amount: '10',
    currency: 'usd',
    reference: 'seed',
  });
  const first = await call(pat);
  const second = await call(pat);
  const third = await call(pat);
  expect([first, second, third].map((c) => c.response.headers.get(CHARGE_HEADER))).toEqual([
    '0.04 USD',
    '0.04 USD',
    '0.04 USD',
  ]);
  const payers = await Promise.all(
    [first, second, third].map(
      async (c) =>
        (await env.db.usageCharge.findUniqueOrThrow({ where: { id: c.response.headers.get(INTERACTION_HEADER)! } }))
          .sponsor,
    ),
  );
  // The grant's 5 cents cover one call's 4.03 held; her 10 cents cover two more.
  expect(payers).toEqual([sponsor, null, null]);

  const refused = await call(pat).catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(APIError);
  expect((refused as APIError).status).toBe(402);
  expect((refused as APIError).message).toMatch(/Acme Corp's grant has 0\.01 USD of its 0\.05 USD a day left today/);
  expect((refused as APIError).message).toMatch(new RegExp(`${pat.handle}'s credit has 0\\.0\\d USD available`));
  expect((refused as APIError).message).toMatch(/Add credit/);

  // The sponsor sees what its grant paid for: one call of one person, 4 cents; never the prompt.
  const report = await eventually(async () => {
    const answer = await acme.gql<{
      sponsor: {
        calls: number;
        people: number;
        paid: string;
        byDay: unknown[];
        fund: { spent: string; reserved: string };
      };
    }>(
      'query($n: String!) { sponsor(name: $n) { calls people paid byDay { day calls people paid } fund { spent reserved } } }',
      {
        n: sponsor,
      },
    );
    return answer.data?.sponsor.fund.reserved === '0' ? answer.data.sponsor : undefined;
  }, "the sponsor's allotment settled");
  expect(report).toMatchObject({ calls: 1, people: 1, paid: '0.04 USD', fund: { spent: '4', reserved: '0' } });
  expect(JSON.stringify(report)).not.toContain('yyyy');
  const fund = env.client.workflow.getHandle(sponsorWorkflowId(sponsor));
  expect((await reconciledBooks(env.db, fund, sponsorBook(sponsor))).agrees).toBe(true);

  // Her usage says who paid.
  const usage = await pat.gql<{ myUsage: { entries: Array<{ state: string; sponsor: string | null }> } }>(
    '{ myUsage { entries { state sponsor } } }',
  );
  expect(
    usage.data?.myUsage.entries
      .filter((e) => e.state === 'charged')
      .map((e) => e.sponsor)
      .sort(),
  ).toEqual([sponsor, null, null].sort());
});

test('an expired grant pays for nothing, and one for another domain not for this person', async () => {
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  const set = await acme.gql(
    'mutation($n: String!, $e: String!, $d: String!) { setSponsorGrant(name: $n, dailyAllowance: "1.00", eligibleDomain: $d, expiresAt: $e) { name } }',
    {
      n: sponsor,
      e: expires,
      d: domain,
    },
  );
  expect(set.errors).toBeUndefined();
  const sam = await signUpAccount(app, uniqueName('sam'), undefined, domain);
  await updateBudget(await creditHandle(env.client, env.taskQueue, sam.handle, 'usd'), depositUpdate, {
    amount: '100',
    currency: 'usd',
    reference: 'seed',
  });
  const sponsorOf = async (c: Awaited<ReturnType<typeof call>>) =>
    (await env.db.usageCharge.findUniqueOrThrow({ where: { id: c.response.headers.get(INTERACTION_HEADER)! } }))
      .sponsor;
  expect(await sponsorOf(await call(sam))).toBe(sponsor);

  clockOffsetMs = 2 * 3_600_000; // two hours on: past the grant's end
  try {
    expect(await sponsorOf(await call(sam))).toBeNull();
  } finally {
    clockOffsetMs = 0;
  }

  await acme.gql('mutation($n: String!) { setSponsorGrant(name: $n, eligibleDomain: "other.org") { name } }', {
    n: sponsor,
  });
  expect(await sponsorOf(await call(sam))).toBeNull();

  const past = await acme.gql('mutation($n: String!) { setSponsorGrant(name: $n, expiresAt: "2020-01-01") { name } }', {
    n: sponsor,
  });
  expect(past.errors?.[0]?.message).toMatch(/expiresAt is in the past/);
  const huge = await acme.gql(
    'mutation($n: String!) { setSponsorGrant(name: $n, dailyAllowance: "20000000000.00") { name } }',
    {
      n: sponsor,
    },
  );
  expect(huge.errors?.[0]?.message).toMatch(/the daily allowance is at most 10,000,000,000\.00 USD a person/);
});

test('the pages: /sponsors lists open grants and lets its manager set one by form; /usage shows who paid; the marketplace shows use prices', async () => {
  const csrf = 'a'.repeat(43);
  const form = (account: TestAccount, url: string, fields: Record<string, string>) =>
    app.inject({
      method: 'POST',
      url,
      headers: {
        cookie: `${account.cookie.cookie}; computatrum_csrf=${csrf}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: new URLSearchParams({ ...fields, _csrf: csrf }).toString(),
    });

  const set = await form(acme, '/sponsors/grant', {
    name: sponsor,
    dailyAllowance: '0.75',
    eligibleDomain: domain,
    expiresAt: '',
  });
  expect(set.statusCode).toBe(200);
  expect(set.body).toContain(`Acme Corp: 0.75 USD a day for each person at ${domain}.`);
  const refused = await form(acme, '/sponsors/grant', { name: sponsor, dailyAllowance: '-3' });
  expect(refused.statusCode).toBe(400);
  expect(refused.body).toContain('is negative');
  const forged = await app.inject({
    method: 'POST',
    url: '/sponsors/grant',
    headers: { cookie: acme.cookie.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: `name=${sponsor}&dailyAllowance=99`,
  });
  expect(forged.statusCode).toBe(403);

  const open = await app.inject({ method: 'GET', url: '/sponsors' });
  expect(open.body).toContain(`<td>Acme Corp</td><td>0.75 USD a day for each person at ${domain}</td>`);
  const managed = await app.inject({ method: 'GET', url: '/sponsors', headers: acme.cookie });
  expect(managed.body).toMatch(/the grant paid\s+\d+\.\d+ USD for \d+ calls of \d+ people/);

  const visitor = await signUpAccount(app, uniqueName('vic'), undefined, domain);
  await call(visitor);
  const usage = await app.inject({ method: 'GET', url: '/usage', headers: visitor.cookie });
  expect(usage.body).toContain('1 priced calls charged');
  expect(usage.body).toContain(`${sponsor}’s grant`);

  const market = await app.inject({ method: 'GET', url: '/marketplace' });
  expect(market.body).toContain('0.01 USD in, 0.03 USD out');
});

test("the trainer's earnings are paid out once, by a Stripe transfer keyed by its payout, whenever payouts run", async () => {
  const earned = await eventually(async () => {
    const charges = await env.db.usageCharge.findMany({ where: { repository: breed, allotmentId: { not: null } } });
    const open = await env.db.usageAllotment.count({
      where: { id: { in: charges.map((c) => c.allotmentId!) }, state: { notIn: ['settled', 'refused'] } },
    });
    if (charges.length === 0 || open > 0) return undefined;
    const sum = await env.db.earning.aggregate({ where: { handle: alice.handle }, _sum: { amount: true } });
    return sum._sum.amount ?? undefined;
  }, "alice's earnings booked");
  expect(earned).toBeGreaterThan(0n);

  const settings = testStripe(stripe, WEBHOOK_SECRET);
  // Not onboarded yet: her earnings wait.
  expect(
    (await payOutEarnings(settings, env.db, 'usd', { minimum: 1n })).filter((p) => p.handle === alice.handle),
  ).toEqual([]);
  expect((await alice.gql('mutation { onboardPayouts(requestId: "setup") }')).errors).toBeUndefined();

  const [paid] = (await payOutEarnings(settings, env.db, 'usd', { minimum: 1n })).filter(
    (p) => p.handle === alice.handle,
  );
  expect(paid).toMatchObject({ amount: earned, state: 'paid', transferId: expect.stringMatching(/^tr_/) });
  expect(sent.filter((r) => r.path === '/v1/transfers' && r.idempotencyKey === `payout/${paid!.id}`)).toHaveLength(1);
  expect(await env.db.earning.count({ where: { handle: alice.handle, payoutId: null } })).toBe(0);
  // A second run has nothing of hers to pay.
  expect(
    (await payOutEarnings(settings, env.db, 'usd', { minimum: 1n })).filter((p) => p.handle === alice.handle),
  ).toEqual([]);
  expect(await env.db.payout.count({ where: { handle: alice.handle } })).toBe(1);
  const usage = await alice.gql<{ myUsage: { earned: string; earnedUnpaid: string } }>(
    '{ myUsage { earned earnedUnpaid } }',
  );
  expect(usage.data?.myUsage).toEqual({ earned: earned!.toString(), earnedUnpaid: '0' });
});
