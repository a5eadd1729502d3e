// Stripe against stripe-mock (its real API surface, started here) and webhooks signed as Stripe
// signs them: an operator's funding Checkout Session carries an idempotency key from our ids; a paid
// session's event credits the germline once however often it is delivered; a bad signature is a
// 400 that records nothing.
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type Stripe from 'stripe';
import { setRole } from '../../platform/accounts';
import { buildPlatform } from '../../platform/server';
import { FUNDING_KIND, stripeClient } from '../../platform/stripe';
import { statusQuery } from '../../workflows/germline-api';
import { startStripeMock } from '../helpers/stripe-mock';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const WEBHOOK_SECRET = 'whsec_test_computatrum';

let env: TestEnvironment;
let app: FastifyInstance;
let stripe: Stripe;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
const sent: Array<{ path: string; idempotencyKey?: string }> = [];

beforeAll(async () => {
  mock = await startStripeMock();
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  stripe = stripeClient('sk_test_mock', mock.url);
  stripe.on('request', (request: { path: string; idempotency_key?: string }) => sent.push({ path: request.path, ...(request.idempotency_key ? { idempotencyKey: request.idempotency_key } : {}) }));
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: germline.name,
    currency: 'usd',
    store: env.store,
    db: env.db,
    client: env.client,
    stripe: { client: stripe, webhookSecret: WEBHOOK_SECRET, publicUrl: 'http://127.0.0.1:8080' },
  });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
  await mock?.stop();
});

function paidSessionEvent(id: string, amount: number, metadata: Record<string, string> = { kind: FUNDING_KIND, germline: germline.name }): string {
  return JSON.stringify({
    id,
    object: 'event',
    type: 'checkout.session.completed',
    api_version: '2025-01-01',
    created: 1_764_000_000,
    data: { object: { id: `cs_${id}`, object: 'checkout.session', amount_total: amount, currency: 'usd', payment_status: 'paid', metadata } },
  });
}

function deliver(payload: string, signature = stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET })) {
  return app.inject({ method: 'POST', url: '/stripe/webhook', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, payload });
}

test('an operator starts a funding Checkout Session; its request to Stripe carries an idempotency key from our ids', async () => {
  const handle = uniqueName('op');
  const signup = await app.inject({ method: 'POST', url: '/auth/signup', payload: { handle, email: `${handle}@example.org`, password: 'operator password' } });
  await setRole(env.db, handle, 'operator');
  const cookie = `computatrum_session=${signup.cookies.find((c) => c.name === 'computatrum_session')!.value}`;
  const response = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json', cookie },
    payload: { query: 'mutation { fundGermline(amount: "25.00", requestId: "req-1") { id url } }' },
  });
  expect(response.json()).toEqual({ data: { fundGermline: { id: expect.stringMatching(/^cs_/), url: expect.any(String) } } });
  expect(sent.filter((r) => r.path === '/v1/checkout/sessions')).toEqual([{ path: '/v1/checkout/sessions', idempotencyKey: `${FUNDING_KIND}/${germline.name}/req-1` }]);

  const tooMuch = await app.inject({ method: 'POST', url: '/api/graphql', headers: { 'content-type': 'application/json', cookie }, payload: { query: 'mutation { fundGermline(amount: "1000000.00", requestId: "req-2") { id } }' } });
  expect(tooMuch.json().errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' }, message: 'a Checkout payment is from 0.01 USD to 999,999.99 USD' });
});

test('a paid funding session credits the germline once, however often and however concurrently Stripe delivers it', async () => {
  const before = BigInt((await germline.handle.query(statusQuery)).deposited);
  const id = `evt_${uniqueName('paid').replace(/-/g, '')}`;
  const payload = paidSessionEvent(id, 1250);
  const answers = await Promise.all(Array.from({ length: 10 }, () => deliver(payload)));
  expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(200));
  expect(BigInt((await germline.handle.query(statusQuery)).deposited)).toBe(before + 1250n);
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toMatchObject({ type: 'checkout.session.completed', outcome: `deposited 12.50 USD into germline/${germline.name}` });
  // Delivered again a day later: still one credit.
  expect((await deliver(payload)).json()).toEqual({ received: true, duplicate: true });
  expect(BigInt((await germline.handle.query(statusQuery)).deposited)).toBe(before + 1250n);
});

test('a bad signature is a 400 and nothing is recorded or credited', async () => {
  const before = (await germline.handle.query(statusQuery)).deposited;
  const id = `evt_${uniqueName('forged').replace(/-/g, '')}`;
  const payload = paidSessionEvent(id, 99_00);
  const forged = await deliver(payload, stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_someone_else' }));
  expect(forged.statusCode).toBe(400);
  expect(forged.json()).toMatchObject({ code: 'BAD_SIGNATURE' });
  // The right signature on different bytes is just as bad.
  const tampered = await deliver(payload.replace('9900', '990000'), stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }));
  expect(tampered.statusCode).toBe(400);
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toBeNull();
  expect((await germline.handle.query(statusQuery)).deposited).toBe(before);
});

test('events that are not a paid funding of this germline are acknowledged and recorded as ignored', async () => {
  const id = `evt_${uniqueName('other').replace(/-/g, '')}`;
  expect((await deliver(paidSessionEvent(id, 500, { kind: FUNDING_KIND, germline: 'someone-else' }))).statusCode).toBe(200);
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toMatchObject({ outcome: 'ignored: not a funding of this germline' });
});
