// Stripe against stripe-mock (its real API surface, started here) and webhooks signed as Stripe
// signs them: an operator's funding Checkout Session carries an idempotency key from our ids; a paid
// session's event credits the germline once however often it is delivered; a bad signature is a
// 400 that records nothing; a paid breed is sold as a destination charge and downloaded only once bought.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import { publishCheckpoint } from '../../store/checkpoint';
import { pullCheckpoint } from '../../store/pull';
import { setRole } from '../../platform/accounts';
import { FUNDING_KIND, stripeClient } from '../../platform/stripe';
import {
  deliverWebhook,
  paidCheckoutEvent,
  recordRequests,
  type SentRequest,
  startStripeMock,
} from '../helpers/stripe-mock';
import { signUpAccount } from '../helpers/accounts';
import { testPlatform, testStripe } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { statusQuery } from '../../workflows/budget-api';

const WEBHOOK_SECRET = 'whsec_test_computatrum';

let env: TestEnvironment;
let app: FastifyInstance;
let stripe: Stripe;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
let sent: SentRequest[];

beforeAll(async () => {
  mock = await startStripeMock();
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  stripe = stripeClient('sk_test_mock', mock.url);
  sent = recordRequests(stripe);
  app = await testPlatform(env, germline.name, { stripe: testStripe(stripe, WEBHOOK_SECRET) });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
  await mock?.stop();
});

const paidSessionEvent = (
  id: string,
  amount: number,
  metadata: Record<string, string> = { kind: FUNDING_KIND, germline: germline.name },
) => paidCheckoutEvent(id, amount, metadata);
const deliver = (payload: string, signature?: string) =>
  deliverWebhook(app, stripe, WEBHOOK_SECRET, payload, signature);

test('an operator starts a funding Checkout Session; its request to Stripe carries an idempotency key from our ids', async () => {
  const handle = uniqueName('op');
  const signup = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { handle, email: `${handle}@example.org`, password: 'operator password' },
  });
  await setRole(env.db, handle, 'operator');
  const cookie = `computatrum_session=${signup.cookies.find((c) => c.name === 'computatrum_session')!.value}`;
  const response = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json', cookie },
    payload: { query: 'mutation { fundGermline(amount: "25.00", requestId: "req-1") { id url } }' },
  });
  expect(response.json()).toEqual({
    data: { fundGermline: { id: expect.stringMatching(/^cs_/), url: expect.any(String) } },
  });
  expect(sent.filter((r) => r.path === '/v1/checkout/sessions')).toEqual([
    { path: '/v1/checkout/sessions', idempotencyKey: `${FUNDING_KIND}/${germline.name}/req-1` },
  ]);

  const tooMuch = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json', cookie },
    payload: { query: 'mutation { fundGermline(amount: "1000000.00", requestId: "req-2") { id } }' },
  });
  expect(tooMuch.json().errors[0]).toMatchObject({
    extensions: { code: 'BAD_USER_INPUT' },
    message: 'a Checkout payment is from 0.01 USD to 999,999.99 USD',
  });
});

test('a paid funding session credits the germline once, however often and however concurrently Stripe delivers it', async () => {
  const before = BigInt((await germline.handle.query(statusQuery)).deposited);
  const id = `evt_${uniqueName('paid').replace(/-/g, '')}`;
  const payload = paidSessionEvent(id, 1250);
  const answers = await Promise.all(Array.from({ length: 10 }, () => deliver(payload)));
  expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(200));
  expect(BigInt((await germline.handle.query(statusQuery)).deposited)).toBe(before + 1250n);
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toMatchObject({
    type: 'checkout.session.completed',
    outcome: `deposited 12.50 USD into germline/${germline.name}`,
  });
  // Delivered again a day later: still one credit.
  expect((await deliver(payload)).json()).toEqual({ received: true, duplicate: true });
  expect(BigInt((await germline.handle.query(statusQuery)).deposited)).toBe(before + 1250n);
});

test('a bad signature is a 400 and nothing is recorded or credited', async () => {
  const before = (await germline.handle.query(statusQuery)).deposited;
  const id = `evt_${uniqueName('forged').replace(/-/g, '')}`;
  const payload = paidSessionEvent(id, 99_00);
  const forged = await deliver(
    payload,
    stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_someone_else' }),
  );
  expect(forged.statusCode).toBe(400);
  expect(forged.json()).toMatchObject({ code: 'BAD_SIGNATURE' });
  // The right signature on different bytes is just as bad.
  const tampered = await deliver(
    payload.replace('9900', '990000'),
    stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }),
  );
  expect(tampered.statusCode).toBe(400);
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toBeNull();
  expect((await germline.handle.query(statusQuery)).deposited).toBe(before);
});

test('events that are not a paid funding of this germline are acknowledged and recorded as ignored', async () => {
  const id = `evt_${uniqueName('other').replace(/-/g, '')}`;
  expect((await deliver(paidSessionEvent(id, 500, { kind: FUNDING_KIND, germline: 'someone-else' }))).statusCode).toBe(
    200,
  );
  expect(await env.db.stripeEvent.findUnique({ where: { id } })).toMatchObject({
    outcome: 'ignored: not a funding of this germline',
  });
});

describe('the marketplace: a paid breed', () => {
  const person = (handle: string) => signUpAccount(app, handle);

  test('is listed by its trainer, sold through Checkout as a destination charge with the fee, and downloadable only once bought; the fee funds the germline', async () => {
    const tess = await person(uniqueName('tess'));
    const bert = await person(uniqueName('bert'));
    const repository = `trainers/${tess.handle}/painter`;
    const dir = mkdtempSync(path.join(tmpdir(), 'breed-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('painter weights'));
    const published = await publishCheckpoint(env.store, repository, dir, { tag: 'main' });

    const listed = await tess.gql(
      `mutation { publishBreed(repository: "${repository}", title: "Painter", price: "9.99") { repository price owner } }`,
    );
    expect(listed).toEqual({ data: { publishBreed: { repository, price: '999', owner: tess.handle } } });
    expect(
      (await bert.gql(`mutation { publishBreed(repository: "${repository}", title: "Mine now") { repository } }`))
        .errors?.[0]?.extensions?.code,
    ).toBe('FORBIDDEN');

    // No payouts yet: it cannot be sold. Onboarding makes the connected account once.
    expect(
      (await bert.gql(`mutation { buyBreed(repository: "${repository}", requestId: "b1") { id } }`)).errors?.[0]
        ?.message,
    ).toBe(`${tess.handle} has not set up payouts yet, so ${repository} cannot be sold`);
    const onboarding = await tess.gql('mutation { onboardPayouts(requestId: "o1") }');
    expect(onboarding.data?.onboardPayouts).toEqual(expect.any(String));
    expect((await env.db.account.findUnique({ where: { id: tess.id } }))?.stripeAccountId).toMatch(/^acct_/);
    expect(
      sent.filter((r) => r.path === '/v1/accounts' || r.path === '/v1/account_links').map((r) => r.idempotencyKey),
    ).toEqual([`connect-account/${tess.id}`, `account-link/${tess.id}/o1`]);

    // Not bought: the public is asked to sign in, bert is refused, the trainer downloads her own.
    const manifestUrl = `/v2/${repository}/manifests/main`;
    const anonymous = await app.inject({ method: 'GET', url: manifestUrl });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json()).toEqual({
      errors: [
        {
          code: 'UNAUTHORIZED',
          message: `${repository} is a paid breed: sign in (an API token) to download what you bought`,
        },
      ],
    });
    expect((await app.inject({ method: 'GET', url: manifestUrl, headers: bert.token })).statusCode).toBe(403);
    expect(
      (
        await app.inject({
          method: 'GET',
          url: `/hub/${repository}/resolve/main/model.safetensors`,
          headers: bert.token,
        })
      ).statusCode,
    ).toBe(403);
    expect((await app.inject({ method: 'GET', url: manifestUrl, headers: tess.token })).statusCode).toBe(200);

    const checkout = await bert.gql(
      `mutation { buyBreed(repository: "${repository}", requestId: "b2") { id url amount fee } }`,
    );
    expect(checkout.data?.buyBreed).toMatchObject({ id: expect.stringMatching(/^cs_/), amount: '999', fee: '99' });
    expect(sent.at(-1)).toEqual({
      path: '/v1/checkout/sessions',
      idempotencyKey: `buy-breed/${bert.id}/${repository}/b2`,
    });

    // Stripe reports the payment: bert may download, and the 0.99 fee is deposited in the germline.
    const before = BigInt((await germline.handle.query(statusQuery)).deposited);
    const event = `evt_${uniqueName('sale').replace(/-/g, '')}`;
    const paid = await deliver(
      paidSessionEvent(event, 999, { kind: 'buy-breed', repository, buyer: bert.id, fee: '99' }),
    );
    expect(paid.statusCode).toBe(200);
    expect(BigInt((await germline.handle.query(statusQuery)).deposited)).toBe(before + 99n);
    expect(await env.db.stripeEvent.findUnique({ where: { id: event } })).toMatchObject({
      outcome: `granted ${repository} to ${bert.id}; fee 0.99 USD deposited into germline/${germline.name}`,
    });
    const manifest = await app.inject({ method: 'GET', url: manifestUrl, headers: bert.token });
    expect(manifest.statusCode).toBe(200);
    expect(manifest.headers['docker-content-digest']).toBe(published.digest);
    const file = await app.inject({
      method: 'GET',
      url: `/hub/${repository}/resolve/main/model.safetensors`,
      headers: bert.token,
    });
    expect(file.rawPayload.equals(safetensorsOf('painter weights'))).toBe(true);

    // `computatrum pull`'s code over a socket: refused without the token, whole with it.
    await app.listen({ host: '127.0.0.1', port: 0 });
    const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const into = mkdtempSync(path.join(tmpdir(), 'bought-'));
    await expect(pullCheckpoint({ baseUrl, repo: repository, reference: 'main', dir: into })).rejects.toThrow(
      `${baseUrl} refused access to ${repository}: ${repository} is a paid breed: sign in (an API token) to download what you bought`,
    );
    const pulled = await pullCheckpoint({
      baseUrl,
      repo: repository,
      reference: 'main',
      dir: into,
      headers: bert.token,
    });
    expect(pulled.digest).toBe(published.digest);
    expect(readFileSync(path.join(into, 'model.safetensors')).equals(safetensorsOf('painter weights'))).toBe(true);
  });
});
