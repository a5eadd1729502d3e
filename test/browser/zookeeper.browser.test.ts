// The zookeeper in a real browser: Debian's headless Chromium, driven by playwright-core, against the
// platform listening on loopback with the real parts behind it (the instance workflow with the local
// instance runner serving test/helpers/echo-instance.js, which echoes the last user message one word
// at a time with a pause between words, trainers' credit, PostgreSQL, an OCI layout store). An
// anonymous visitor talks to a public instance and watches the answer stream in through the chat
// page's script and the gateway (and is told why when the gateway refuses), then judges an answer
// (👎 with a correction, then 👍: one record, updated); a trainer launches an instance from an
// image's Run link and stops it.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { signUp } from '../../platform/accounts';
import { creditHandle } from '../../platform/credit';
import { launchAccountInstance, stopAccountInstance } from '../../platform/instances';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { depositUpdate } from '../../workflows/budget-api';
import type { TrainingSettings } from '../../platform/credit';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

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
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];
/** The echo instance pauses this long before each streamed word, so the answer visibly arrives in pieces. */
const STREAM_DELAY_MS = 250;
const ECHO_INSTANCE = [
  '/usr/bin/env',
  `ECHO_STREAM_DELAY_MS=${STREAM_DELAY_MS}`,
  process.execPath,
  path.join(__dirname, '..', 'helpers', 'echo-instance.js'),
];
const PASSWORD = 'a long browser password';

jest.setTimeout(120_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let baseUrl: string;
let browser: Browser;
let repository: string;
let image: string;
let trainer: string;
let shown: string;

async function withCredit(handle: string, amount: string) {
  await updateBudget(await creditHandle(env.client, env.taskQueue, handle, 'usd'), depositUpdate, {
    amount,
    currency: 'usd',
    reference: uniqueName('paid'),
  });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)`,
    );
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-zoo-browser-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const germline = await env.startGermline();
  repository = `germline/${germline.name}`;
  image = `${repository}:main`;
  const dir = mkdtempSync(path.join(tmpdir(), 'zoo-browser-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline.name}`));
  await publishCheckpoint(env.store, repository, dir, { tag: 'main' });
  const training: TrainingSettings = {
    taskQueue: env.taskQueue,
    ratePerGpuHour: 3600n,
    runner: 'local',
    maxDurationSeconds: 600,
    maxPreemptions: 0,
    maxGpus: 1,
  };
  app = await testPlatform(env, germline.name, { training });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  // A trainer with credit, and a public instance of theirs that anyone may talk to.
  trainer = uniqueName('zoo');
  const account = await signUp(env.db, { handle: trainer, email: `${trainer}@example.org`, password: PASSWORD });
  await withCredit(trainer, '5000');
  shown = (
    await launchAccountInstance(
      { client: env.client, db: env.db, store: env.store, currency: 'usd', settings: training },
      { role: 'trainer', account },
      { image, visibility: 'public', maxCost: 500n },
    )
  ).id;
  await eventually(
    async () => ((await env.db.instance.findUnique({ where: { id: shown } }))?.state === 'ready' ? true : undefined),
    `instance ${shown} to be ready`,
    30_000,
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test('an anonymous visitor picks the public instance, sends a message and watches the answer stream in', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const scriptErrors: string[] = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  // Every answer the page asked for succeeded (the browser's own favicon request aside).
  page.on('response', (response) => {
    if (response.status() >= 400 && new URL(response.url()).pathname !== '/favicon.ico')
      scriptErrors.push(`${response.status()} ${response.url()}`);
  });
  try {
    await page.goto(`${baseUrl}/zookeeper`);
    await Promise.all([
      page.waitForURL(`${baseUrl}/zookeeper/${shown}`),
      page.click(`#public-instances a[href="/zookeeper/${shown}"]`),
    ]);
    const message = 'one two three four five six';
    await page.fill('#message', message);
    // The form's own post would load another page: the script sends it from this one instead.
    const posted: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST') posted.push(new URL(request.url()).pathname);
    });
    await page.click('#chat-form button[type="submit"]');
    const answer = page.locator('#conversation li.message.assistant .content');
    const failure = page.locator('#chat-error');
    /** The answer shown so far; a failure the page shows ends the test at once, with its message. */
    const shownSoFar = async () => {
      if (await failure.isVisible()) return { error: await failure.textContent() };
      return { text: (await answer.count()) ? ((await answer.last().textContent()) ?? '') : '' };
    };
    // Words arrive one by one (a pause before each): part of the answer is shown before all of it.
    const partial = await eventually(
      async () => {
        const now = await shownSoFar();
        return 'error' in now || (now.text.length > 0 && now.text.trim() !== message) ? now : undefined;
      },
      'a part of the answer',
      15_000,
    );
    expect(partial).toEqual({ text: expect.any(String) });
    expect(message.startsWith((partial as { text: string }).text)).toBe(true);
    const whole = await eventually(
      async () => {
        const now = await shownSoFar();
        return 'error' in now || now.text.trim() === message ? now : undefined;
      },
      'the whole answer',
      15_000,
    );
    expect(whole).toEqual({ text: message });
    await expect(page.locator('#conversation li.message.user .content').last().textContent()).resolves.toBe(message);
    expect(page.url()).toBe(`${baseUrl}/zookeeper/${shown}`);
    expect(posted).toEqual(['/v1/chat/completions']);
    // The next turn (and "Save as recording") carries the conversation so far.
    const conversation = JSON.parse(await page.locator('#chat-form input[name="conversation"]').inputValue());
    expect(conversation).toEqual([
      { role: 'user', content: message },
      { role: 'assistant', content: message },
    ]);
    await expect(page.locator('#chat-error').isHidden()).resolves.toBe(true);
    expect(scriptErrors).toEqual([]);
  } finally {
    await context.close();
  }
});

test('an anonymous visitor judges an answer: 👎 with the answer it should have given, then 👍, one record updated', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const scriptErrors: string[] = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));
  try {
    await page.goto(`${baseUrl}/zookeeper/${shown}`);
    await expect(page.locator('#feedback-note').textContent()).resolves.toMatch(
      /feedback trains the next models[\s\S]*salted hash/,
    );
    await page.fill('#message', 'the cat sat on the');
    await page.click('#chat-form button[type="submit"]');
    // The buttons come once the whole answer is in, with the id the gateway gave the exchange.
    const answer = page.locator('#conversation li.message.assistant').last();
    const good = answer.getByRole('button', { name: 'Good answer' });
    const bad = answer.getByRole('button', { name: 'Bad answer' });
    await bad.waitFor();
    await expect(answer.locator('.content').textContent()).resolves.toBe('the cat sat on the');
    const interaction = await answer.getAttribute('data-interaction');
    expect(interaction).toMatch(/^[0-9a-f-]{36}$/);

    // 👎 opens the form with the cursor in it; Enter in the comment sends it.
    await bad.click();
    await expect(bad.getAttribute('aria-expanded')).resolves.toBe('true');
    const correction = answer.getByLabel('The answer it should have given');
    await correction.waitFor();
    await page.keyboard.type('mat.');
    await page.keyboard.press('Tab');
    await page.keyboard.type('it only echoed');
    await page.keyboard.press('Enter');
    await answer
      .locator('.notice[role="status"]', {
        hasText: 'Thanks: recorded as bad, with your correction and your comment.',
      })
      .waitFor();
    await expect(correction.isHidden()).resolves.toBe(true);
    await expect(bad.getAttribute('aria-pressed')).resolves.toBe('true');
    await expect(answer.locator('p.error').isHidden()).resolves.toBe(true);

    // The record is the visitor's, known by the visitor id the gateway stored with the exchange.
    const exchange = await env.db.interaction.findUnique({ where: { id: interaction! } });
    expect(exchange).toMatchObject({ instanceId: shown, callerHandle: null, visitorId: expect.any(String) });
    const [given] = await env.db.feedback.findMany({ where: { interactionId: interaction! } });
    expect(given).toMatchObject({
      label: 'bad',
      correction: 'mat.',
      comment: 'it only echoed',
      authorHandle: null,
      visitorId: exchange!.visitorId,
      author: `visitor:${exchange!.visitorId}`,
    });

    // 👍 afterwards replaces it: the same record, now good, without the correction.
    await good.click();
    await answer.locator('.notice[role="status"]', { hasText: 'Updated: recorded as good.' }).waitFor();
    await expect(good.getAttribute('aria-pressed')).resolves.toBe('true');
    await expect(bad.getAttribute('aria-pressed')).resolves.toBe('false');
    const records = await env.db.feedback.findMany({ where: { interactionId: interaction! } });
    expect(records).toEqual([
      expect.objectContaining({ id: given!.id, label: 'good', correction: null, visitorId: exchange!.visitorId }),
    ]);
    expect(scriptErrors).toEqual([]);
  } finally {
    await context.close();
  }
});

test('a signed-in trainer launches an instance from the hub page’s Run link and stops it from the zookeeper', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${baseUrl}/auth/signin?next=${encodeURIComponent(`/hub/${repository}`)}`);
    await page.fill('#login', trainer);
    await page.fill('#password', PASSWORD);
    await Promise.all([
      page.waitForURL(`${baseUrl}/hub/${repository}`),
      page.click('form[action="/auth/signin"] button[type="submit"]'),
    ]);
    // The public instance is listed on its image's page.
    await expect(page.locator(`#public-instances a[href="/zookeeper/${shown}"]`).count()).resolves.toBe(1);
    await Promise.all([page.waitForURL(/\/zookeeper\?image=/), page.click('a#run')]);
    await expect(page.locator('#launch-image').inputValue()).resolves.toBe(image);
    await page.selectOption('#launch-visibility', 'private');
    await page.fill('#launch-max-cost', '1.00');
    await Promise.all([page.waitForURL(/\/zookeeper\?done=launched#instance-/), page.click('#launch-form button')]);
    const id = /#instance-(.+)$/.exec(page.url())![1]!;
    await expect(page.locator('.notice').textContent()).resolves.toContain('Launched');
    const row = page.locator(`#your-instances tr[id="instance-${id}"]`);
    await expect(row.locator('td').nth(2).textContent()).resolves.toBe('private');
    await Promise.all([
      page.waitForURL(/\/zookeeper\?done=stopped#instance-/, { timeout: 60_000 }),
      row.locator('button', { hasText: 'Stop' }).click(),
    ]);
    await expect(page.locator('.notice').textContent()).resolves.toContain('Stopped');
    await eventually(
      async () => ((await env.db.instance.findUnique({ where: { id } }))?.state === 'stopped' ? true : undefined),
      `instance ${id} to be stopped`,
    );
    await page.reload();
    await expect(page.locator(`#your-instances tr[id="instance-${id}"] td`).nth(3).textContent()).resolves.toMatch(
      /^stopped/,
    );
  } finally {
    await context.close();
  }
});

test('when the gateway refuses, the chat page shows why and keeps the message to send again', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${baseUrl}/zookeeper/${shown}`);
    // The instance stops while the page is open.
    await stopAccountInstance({ client: env.client, db: env.db }, { role: 'operator' }, shown, 'closing time');
    await eventually(
      async () =>
        (await env.db.instance.findUnique({ where: { id: shown } }))?.state === 'stopped' ? true : undefined,
      `instance ${shown} to be stopped`,
    );
    await page.fill('#message', 'anyone there?');
    await page.click('#chat-form button[type="submit"]');
    const failure = page.locator('#chat-error');
    await failure.waitFor({ state: 'visible' });
    await expect(failure.textContent()).resolves.toContain(shown);
    await expect(page.locator('#message').inputValue()).resolves.toBe('anyone there?');
    await expect(page.locator('#conversation li').count()).resolves.toBe(0);
  } finally {
    await context.close();
  }
});
