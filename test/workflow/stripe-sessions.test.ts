// Stripe webhooks built from the Checkout Sessions the platform really created: a recording proxy
// between the platform's Stripe client and stripe-mock keeps every request body as sent on the wire
// and every answer, and the events delivered to the webhook carry that session's id, amount and
// metadata, so what is checked is the platform's own request, not data the test made up.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import { publishCheckpoint } from '../../store/checkpoint';
import { entitlementId } from '../../platform/marketplace';
import { FUNDING_KIND, PURCHASE_KIND, stripeClient } from '../../platform/stripe';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { deliverWebhook, startStripeMock } from '../helpers/stripe-mock';
import { testPlatform, testStripe } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { statusQuery } from '../../workflows/budget-api';

const WEBHOOK_SECRET = 'whsec_test_sessions';
/** Not 10: a fee that must be computed, and rounded, from this setting. */
const FEE_PERCENT = 7;

/** One request the Stripe client sent, as stripe-mock received it, with stripe-mock's answer. */
interface Exchange {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  /** The form-encoded body, keys as Stripe writes them (`payment_intent_data[application_fee_amount]`). */
  form: URLSearchParams;
  status: number;
  answer: Record<string, any>;
}

/** A proxy in front of stripe-mock that records each exchange whole. */
async function recordingProxy(upstream: string) {
  const exchanges: Exchange[] = [];
  const server = http.createServer((request, response) => {
    const body: Buffer[] = [];
    request.on('data', (chunk: Buffer) => body.push(chunk));
    request.on('end', () => {
      const sent = Buffer.concat(body);
      const forward = http.request(
        `${upstream}${request.url}`,
        { method: request.method, headers: { ...request.headers, host: new URL(upstream).host } },
        (answer) => {
          const received: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => received.push(chunk));
          answer.on('end', () => {
            const text = Buffer.concat(received).toString('utf8');
            exchanges.push({
              method: request.method!,
              path: request.url!.split('?')[0]!,
              idempotencyKey: request.headers['idempotency-key'] as string | undefined,
              form: new URLSearchParams(sent.toString('utf8')),
              status: answer.statusCode!,
              answer: text ? (JSON.parse(text) as Record<string, any>) : {},
            });
            response.writeHead(answer.statusCode!, answer.headers).end(text);
          });
        },
      );
      forward.end(sent);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exchanges,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let env: TestEnvironment;
let app: FastifyInstance;
let stripe: Stripe;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;

beforeAll(async () => {
  mock = await startStripeMock();
  proxy = await recordingProxy(mock.url);
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  stripe = stripeClient('sk_test_mock', proxy.url);
  app = await testPlatform(env, germline.name, { stripe: testStripe(stripe, WEBHOOK_SECRET, FEE_PERCENT) });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
  await proxy?.close();
  await mock?.stop();
});

/** The one Checkout Session request made with this idempotency key, and stripe-mock's answer to it. */
function createdSession(idempotencyKey: string): Exchange {
  const matching = proxy.exchanges.filter(
    (e) => e.method === 'POST' && e.path === '/v1/checkout/sessions' && e.idempotencyKey === idempotencyKey,
  );
  expect(matching).toHaveLength(1);
  expect(matching[0]!.status).toBe(200);
  return matching[0]!;
}

/** The metadata of a form body: `metadata[kind]=…` as { kind: … }. */
function metadataOf(form: URLSearchParams): Record<string, string> {
  return Object.fromEntries(
    [...form]
      .filter(([key]) => key.startsWith('metadata['))
      .map(([key, value]) => [key.slice('metadata['.length, -1), value]),
  );
}

/**
 * The session as Stripe holds it once the customer is through Checkout: stripe-mock's answer (its id),
 * with the amount Stripe totals from the line items the platform sent, their currency and the metadata.
 */
function sessionOf(exchange: Exchange, paymentStatus: 'paid' | 'unpaid'): Record<string, unknown> {
  const lines = new Set(
    [...exchange.form.keys()]
      .map((key) => /^line_items\[(\d+)\]/.exec(key)?.[1])
      .filter((i): i is string => i !== undefined),
  );
  const amountTotal = [...lines].reduce(
    (sum, i) =>
      sum +
      Number(exchange.form.get(`line_items[${i}][price_data][unit_amount]`)) *
        Number(exchange.form.get(`line_items[${i}][quantity]`)),
    0,
  );
  return {
    ...exchange.answer,
    id: exchange.answer.id,
    object: 'checkout.session',
    mode: exchange.form.get('mode'),
    amount_total: amountTotal,
    currency: exchange.form.get('line_items[0][price_data][currency]'),
    metadata: metadataOf(exchange.form),
    status: 'complete',
    payment_status: paymentStatus,
  };
}

function sessionEvent(type: string, session: Record<string, unknown>): { id: string; payload: string } {
  const id = `evt_${uniqueName('s').replace(/-/g, '')}`;
  return {
    id,
    payload: JSON.stringify({
      id,
      object: 'event',
      type,
      api_version: '2025-01-01',
      created: 1_764_000_000,
      livemode: false,
      data: { object: session },
    }),
  };
}

const deliver = (payload: string) => deliverWebhook(app, stripe, WEBHOOK_SECRET, payload);
const deposited = async () => BigInt((await germline.handle.query(statusQuery)).deposited);

test("a funding session's paid event, built from the session the platform created, deposits that session's amount once", async () => {
  const operator = await signUpAccount(app, uniqueName('op'), { db: env.db });
  const requestId = uniqueName('fund');
  const answer = await operator.gql<{ fundGermline: { id: string } }>(
    `mutation { fundGermline(amount: "31.07", requestId: "${requestId}") { id } }`,
  );
  expect(answer.errors).toBeUndefined();
  const exchange = createdSession(`${FUNDING_KIND}/${germline.name}/${requestId}`);
  expect(answer.data?.fundGermline.id).toBe(exchange.answer.id);
  expect(exchange.form.get('mode')).toBe('payment');
  expect(metadataOf(exchange.form)).toEqual({ kind: FUNDING_KIND, germline: germline.name });
  const session = sessionOf(exchange, 'paid');
  expect(session).toMatchObject({ amount_total: 3107, currency: 'usd' });

  const before = await deposited();
  const event = sessionEvent('checkout.session.completed', session);
  expect((await deliver(event.payload)).statusCode).toBe(200);
  expect(await deposited()).toBe(before + 3107n);
  expect(await env.db.stripeEvent.findUnique({ where: { id: event.id } })).toMatchObject({
    outcome: `deposited 31.07 USD into germline/${germline.name}`,
  });
});

describe('a breed purchase', () => {
  let tess: TestAccount;
  let repository: string;
  let connectedAccount: string;
  const PRICE = 999; // 9.99 USD: 7% is 69.93, kept as 69 (a whole percentage, rounded down to the cent)

  beforeAll(async () => {
    tess = await signUpAccount(app, uniqueName('tess'));
    repository = `trainers/${tess.handle}/painter`;
    const dir = mkdtempSync(path.join(tmpdir(), 'sessions-breed-'));
    writeFileSync(path.join(dir, 'notes.txt'), 'painter weights');
    await publishCheckpoint(env.store, repository, dir, { tag: 'main' });
    expect(
      (
        await tess.gql(
          `mutation { publishBreed(repository: "${repository}", title: "Painter", price: "9.99") { price } }`,
        )
      ).data,
    ).toEqual({ publishBreed: { price: String(PRICE) } });
    expect((await tess.gql('mutation { onboardPayouts(requestId: "o1") }')).errors).toBeUndefined();
    // The connected account is the one Stripe answered the account creation with.
    const created = proxy.exchanges.filter(
      (e) => e.path === '/v1/accounts' && e.idempotencyKey === `connect-account/${tess.id}`,
    );
    expect(created).toHaveLength(1);
    connectedAccount = created[0]!.answer.id as string;
    expect(connectedAccount).toMatch(/^acct_/);
    expect((await env.db.account.findUniqueOrThrow({ where: { id: tess.id } })).stripeAccountId).toBe(connectedAccount);
  });

  async function checkout(buyer: TestAccount): Promise<Exchange> {
    const requestId = uniqueName('buy');
    const answer = await buyer.gql<{ buyBreed: { id: string; amount: string; fee: string } }>(
      `mutation { buyBreed(repository: "${repository}", requestId: "${requestId}") { id amount fee } }`,
    );
    expect(answer.errors).toBeUndefined();
    const exchange = createdSession(`${PURCHASE_KIND}/${buyer.id}/${repository}/${requestId}`);
    expect(answer.data?.buyBreed).toEqual({
      id: exchange.answer.id,
      amount: String(PRICE),
      fee: String(Math.floor((PRICE * FEE_PERCENT) / 100)),
    });
    return exchange;
  }

  const manifest = (buyer: TestAccount) =>
    app.inject({ method: 'GET', url: `/v2/${repository}/manifests/main`, headers: buyer.token });

  test("the session is a destination charge to the trainer's connected account with the platform fee; its paid event grants the breed and deposits the fee", async () => {
    const bert = await signUpAccount(app, uniqueName('bert'));
    const exchange = await checkout(bert);
    const fee = Math.floor((PRICE * FEE_PERCENT) / 100);
    expect(fee).toBe(69);
    expect(exchange.form.get('payment_intent_data[application_fee_amount]')).toBe(String(fee));
    expect(exchange.form.get('payment_intent_data[transfer_data][destination]')).toBe(connectedAccount);
    expect(exchange.form.get('line_items[0][price_data][unit_amount]')).toBe(String(PRICE));
    expect(exchange.form.get('line_items[0][quantity]')).toBe('1');
    expect(metadataOf(exchange.form)).toEqual({ kind: PURCHASE_KIND, repository, buyer: bert.id, fee: String(fee) });
    expect((await manifest(bert)).statusCode).toBe(403);

    const before = await deposited();
    const session = sessionOf(exchange, 'paid');
    const event = sessionEvent('checkout.session.completed', session);
    expect((await deliver(event.payload)).statusCode).toBe(200);
    expect(await env.db.stripeEvent.findUnique({ where: { id: event.id } })).toMatchObject({
      outcome: `granted ${repository} to ${bert.id}; fee 0.69 USD deposited into germline/${germline.name}`,
    });
    expect(await env.db.entitlement.findUnique({ where: { id: entitlementId(bert.id, repository) } })).toMatchObject({
      accountId: bert.id,
      repository,
      checkoutSessionId: exchange.answer.id,
      amount: BigInt(PRICE),
      fee: BigInt(fee),
    });
    expect(await deposited()).toBe(before + BigInt(fee));
    expect((await manifest(bert)).statusCode).toBe(200);
  });

  test('a completed session whose payment is still pending (unpaid) grants nothing until its payment succeeds', async () => {
    const cara = await signUpAccount(app, uniqueName('cara'));
    const exchange = await checkout(cara);
    const before = await deposited();
    const event = sessionEvent('checkout.session.completed', sessionOf(exchange, 'unpaid'));
    expect((await deliver(event.payload)).statusCode).toBe(200);
    expect(await env.db.stripeEvent.findUnique({ where: { id: event.id } })).toMatchObject({
      type: 'checkout.session.completed',
      outcome: 'ignored: the session is unpaid',
    });
    expect(await env.db.entitlement.findUnique({ where: { id: entitlementId(cara.id, repository) } })).toBeNull();
    expect(await deposited()).toBe(before);
    expect((await manifest(cara)).statusCode).toBe(403);
    // Delivered again: still nothing.
    expect((await deliver(event.payload)).json()).toEqual({ received: true, duplicate: true });
    expect(await env.db.entitlement.findUnique({ where: { id: entitlementId(cara.id, repository) } })).toBeNull();
    expect(await deposited()).toBe(before);

    // The payment clears later: Stripe's async_payment_succeeded grants the breed and books the fee, once.
    const succeeded = sessionEvent('checkout.session.async_payment_succeeded', sessionOf(exchange, 'paid'));
    expect((await deliver(succeeded.payload)).statusCode).toBe(200);
    expect((await deliver(succeeded.payload)).json()).toEqual({ received: true, duplicate: true });
    expect(await env.db.entitlement.findUnique({ where: { id: entitlementId(cara.id, repository) } })).toMatchObject({
      checkoutSessionId: exchange.answer.id,
    });
    expect(await deposited()).toBe(before + BigInt(Math.floor((PRICE * FEE_PERCENT) / 100)));
    expect((await manifest(cara)).statusCode).toBe(200);
  });
});
