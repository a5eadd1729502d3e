// The pages in a real browser: Debian's headless Chromium, driven by playwright-core, against the
// platform listening on loopback with the real parts behind it (the Temporal dev server tags today's
// gpc checkpoint through the daily workflow, PostgreSQL, an OCI layout store, stripe-mock for
// Checkout). A person signs up through the form, browses the hub, opens today's checkpoint, downloads
// a file, discusses it, and buys another trainer's breed up to Stripe's Checkout page.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { publishCheckpoint } from '../../store/checkpoint';
import { signUp } from '../../platform/accounts';
import { publishBreed } from '../../platform/marketplace';
import { buildPlatform } from '../../platform/server';
import { createPayoutsOnboarding, type StripeSettings, stripeClient } from '../../platform/stripe';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { recordRequests, type SentRequest, startStripeMock } from '../helpers/stripe-mock';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { dailyGpcWorkflowId } from '../../workflows/names';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Nothing but the platform on loopback: Stripe's Checkout page is asked for, never reached.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

let env: TestEnvironment;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let app: FastifyInstance;
let baseUrl: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let repository: string;
let tag: string;
let nickname: string;
let weights: Buffer;
let breed: { repository: string; title: string };
let stripeRequests: SentRequest[];
const handle = uniqueName('web');

beforeAll(async () => {
  // Not a skip: without the browser these tests cannot say anything, and CI must install it.
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)`,
    );
  mock = await startStripeMock();
  env = await testEnvironment();
  await env.startWorker();
  const germline = await env.startGermline();
  repository = `germline/${germline.name}`;

  // The germline's head, tagged as today's gpc checkpoint by the real daily workflow (tag, nickname, Checkpoint row).
  const head = mkdtempSync(path.join(tmpdir(), 'browser-head-'));
  weights = safetensorsOf(Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 251)));
  writeFileSync(path.join(head, 'model.safetensors'), weights);
  writeFileSync(path.join(head, 'config.json'), '{"layers":2}');
  await publishCheckpoint(env.store, repository, head, { tag: 'main' });
  const day = new Date().toISOString().slice(0, 10);
  const daily = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: dailyGpcWorkflowId(germline.name, day),
    taskQueue: env.taskQueue,
    args: [{ germline: germline.name, day }],
  });
  expect(daily.status).toBe('published');
  tag = daily.tag;
  nickname = daily.nickname!;

  const client = stripeClient('sk_test_mock', mock.url);
  stripeRequests = recordRequests(client);
  const stripe: StripeSettings = {
    client,
    webhookSecret: 'whsec_browser',
    publicUrl: 'http://127.0.0.1',
    feePercent: 10,
  };
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: germline.name,
    currency: 'usd',
    store: env.store,
    db: env.db,
    client: env.client,
    stripe,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  // Another trainer's priced breed, with payouts set up (a Stripe connected account in stripe-mock).
  const tessHandle = uniqueName('tess');
  const tess = await signUp(env.db, {
    handle: tessHandle,
    email: `${tessHandle}@example.org`,
    password: 'a long password',
  });
  const painter = mkdtempSync(path.join(tmpdir(), 'browser-breed-'));
  writeFileSync(path.join(painter, 'model.safetensors'), safetensorsOf('painter weights'));
  breed = { repository: `trainers/${tessHandle}/painter`, title: `Painter ${tessHandle}` };
  await publishCheckpoint(env.store, breed.repository, painter, { tag: 'main' });
  await publishBreed(env.db, env.store, tess, {
    repository: breed.repository,
    title: breed.title,
    price: '4.20',
    currency: 'usd',
  });
  await createPayoutsOnboarding(stripe, env.db, tess, 'browser-test');

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  context = await browser.newContext({ acceptDownloads: true });
  page = await context.newPage();
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await app?.close();
  await env?.close();
  await mock?.stop();
});

test('signs up through the form and comes back signed in', async () => {
  await page.goto(`${baseUrl}/auth/signup`);
  await page.fill('#handle', handle);
  await page.fill('#email', `${handle}@example.org`);
  await page.fill('#password', 'a long browser password');
  await Promise.all([
    page.waitForURL(`${baseUrl}/hub`),
    page.click('form[action="/auth/signup"] button[type="submit"]'),
  ]);
  await expect(page.locator('header .who').textContent()).resolves.toContain(handle);
  // The stylesheet loaded under the pages' policy (no scripts, styles from here).
  const margin = await page
    .locator('body')
    .evaluate(
      (body) =>
        (globalThis as unknown as { getComputedStyle(element: unknown): { margin: string } }).getComputedStyle(body)
          .margin,
    );
  expect(margin).toBe('0px');
});

test("browses the hub, germline first, and opens today's gpc checkpoint", async () => {
  await page.goto(`${baseUrl}/hub`);
  await expect(page.locator('#images tr:nth-child(2) td:first-child a').textContent()).resolves.toBe(repository);
  await Promise.all([
    page.waitForURL(`${baseUrl}/hub/${repository}#tag-${tag}`),
    page.click(`.today a[href="/hub/${repository}#tag-${tag}"]`),
  ]);
  const today = page.locator(`details[id="tag-${tag}"]`);
  await expect(today.getAttribute('open')).resolves.toBe('');
  await expect(today.locator('summary').textContent()).resolves.toContain(nickname);
  await expect(page.locator('h1').textContent()).resolves.toBe(repository);
});

test("downloads a file of today's checkpoint through its link, byte for byte", async () => {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`details[id="tag-${tag}"] a[href="/hub/${repository}/resolve/${tag}/model.safetensors"]`),
  ]);
  expect(download.suggestedFilename()).toBe('model.safetensors');
  expect(readFileSync(await download.path()).equals(weights)).toBe(true);
});

test('starts a thread and replies to it; markup in them stays text', async () => {
  const title = `Does it <script>hold</script> up? ${uniqueName('t')}`;
  await page.fill('#thread-title', title);
  await page.selectOption('#thread-reference', tag);
  await page.fill('#thread-body', 'It answered every question in Latin.');
  await Promise.all([
    page.waitForURL(/\?done=thread#thread-/),
    page.click('form[action$="/threads"] button[type="submit"]'),
  ]);
  const thread = page.locator('article.thread', { hasText: title });
  await expect(thread.locator('h3').textContent()).resolves.toBe(title);

  const reply = `Mine too <b>${uniqueName('c')}</b>`;
  await thread.locator('textarea[name="body"]').fill(reply);
  await Promise.all([page.waitForURL(/\?done=comment#comment-/), thread.locator('button[type="submit"]').click()]);
  await expect(page.locator('.notice').textContent()).resolves.toBe('Your comment is posted.');
  const comments = page.locator('article.thread', { hasText: title }).locator('.comment');
  await expect(comments.count()).resolves.toBe(2);
  await expect(comments.nth(1).textContent()).resolves.toContain(reply);
  await expect(page.locator('article.thread b').count()).resolves.toBe(0);
});

test("forks today's checkpoint under the trainer's name and lists it as a priced breed", async () => {
  await page.goto(`${baseUrl}/hub/${repository}`);
  await page.selectOption('#fork-from', tag);
  await page.fill('#fork-to', `trainers/${handle}/latin`);
  await Promise.all([
    page.waitForURL(`${baseUrl}/hub/trainers/${handle}/latin?done=forked`),
    page.click('form[action$="/fork"] button[type="submit"]'),
  ]);
  await expect(page.locator('.notice').textContent()).resolves.toContain('No bytes were copied');

  await page.fill('#breed-title', `Latin tutor ${handle}`);
  await page.fill('#breed-price', '7.50');
  await Promise.all([
    page.waitForURL(/\?done=published/),
    page.click('form[action$="/publish"] button[type="submit"]'),
  ]);
  await page.goto(`${baseUrl}/marketplace`);
  await expect(
    page
      .locator('tr', { hasText: `Latin tutor ${handle}` })
      .locator('td.num')
      .textContent(),
  ).resolves.toBe('7.50 USD');
});

test("buys another trainer's breed up to Stripe's Checkout page", async () => {
  await page.goto(`${baseUrl}/marketplace`);
  const row = page.locator('tr', { hasText: breed.title });
  await expect(row.locator('td.num').textContent()).resolves.toBe('4.20 USD');
  // The platform answers the Buy form with a 303 to Stripe's page. Playwright's routes do not see a
  // redirect's target, so the request is observed instead; it goes nowhere (the browser resolves no
  // host but loopback), and the page's form-action policy must have let it through.
  const [checkout] = await Promise.all([
    page.waitForRequest(/^https:\/\/checkout\.stripe\.com\//),
    row.locator('button', { hasText: 'Buy' }).click(),
  ]);
  expect(checkout.url()).toMatch(/^https:\/\/checkout\.stripe\.com\/pay\/c\/cs_/);
  expect(checkout.isNavigationRequest()).toBe(true);
  expect({ url: checkout.redirectedFrom()?.url(), method: checkout.redirectedFrom()?.method() }).toEqual({
    url: `${baseUrl}/marketplace/buy`,
    method: 'POST',
  });
  const buyer = await env.db.account.findUniqueOrThrow({ where: { handle } });
  expect(stripeRequests.filter((r) => r.path === '/v1/checkout/sessions')).toEqual([
    {
      path: '/v1/checkout/sessions',
      idempotencyKey: expect.stringMatching(new RegExp(`^buy-breed/${buyer.id}/${breed.repository}/[0-9a-f-]{36}$`)),
    },
  ]);
});
