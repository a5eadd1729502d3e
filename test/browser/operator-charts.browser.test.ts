// The operator console's charts in a real browser with JavaScript off: Debian's headless Chromium,
// driven by playwright-core, against the platform on loopback with PostgreSQL behind it. The journal
// is booked over several days by the real budget rules and journal activity, a training run has its
// loss points and made a checkpoint, and instances cost money; the charts must show exactly that: one
// point a day over 30 days, axes and labels, the loss curve (also on the checkpoint's hub page), and
// paint it (each chart's screenshot, decoded by the browser, holds the series' colour where it should).
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { createJournalActivities } from '../../activities/journal';
import { openDatabase, type Database } from '../../db/prisma';
import { recordLossPoints } from '../../db/training-loss';
import { utcDays } from '../../platform/charts';
import { buildPlatform } from '../../platform/server';
import { publishCheckpoint } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { Budget, initialBudgetState } from '../../workflows/budget';
import type { LedgerEntry } from '../../workflows/budget-api';
import { formatMoney } from '../../workflows/money';
import { signUpAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];
/** The series' colour (platform/charts.ts): what a drawn line or bar paints. */
const SERIES_RGB = [0x2b, 0x5f, 0xd9];
const DAY_MS = 86_400_000;

let db: Database;
let app: FastifyInstance;
let baseUrl: string;
let browser: Browser;
let context: BrowserContext;
let decoder: Page;
let page: Page;
const germline = uniqueName('charts');
const repository = `germline/${germline}`;
const runId = uniqueName('run');
/** The loss the run reported every 10 steps, 25 times. */
const losses = Array.from({ length: 25 }, (_, i) => ({ step: (i + 1) * 10, loss: (30 - i) / 10 }));

// Today, as the page will draw it (the test runs well inside one UTC day, or says so below).
const now = new Date();
const days = utcDays(now, 30);
/** A time on the day `back` days before today. */
const dayAt = (back: number, hour = 12) => new Date(Date.parse(`${days[29 - back]}T00:00:00Z`) + hour * 3_600_000);

/** The journal as the germline's budget books it: deposits, reservations and settlements, each on its day. */
function bookedEntries(): LedgerEntry[] {
  const budget = new Budget(initialBudgetState(germline, 'usd'));
  let n = 0;
  const key = () => `germline/${germline}/seed-${++n}`;
  const earlier = new Date(Date.parse(`${days[0]}T00:00:00Z`) - 10 * DAY_MS);
  budget.deposit({ amount: '50000', currency: 'usd', reference: 'stripe/first' }, key(), earlier);
  const spend = (ref: string, amount: string, actual: string, at: Date) => {
    const { result } = budget.reserve({ amount, ref, purpose: ref.split('/')[0]! }, key(), at);
    budget.settle({ reservationId: result.reservationId, actual }, key(), at);
  };
  spend(`training/${runId}`, '10000', '4250', dayAt(19));
  budget.deposit({ amount: '300', currency: 'usd', reference: 'usage-fee/allot-1' }, key(), dayAt(10));
  spend('instance/inst-a/lease/1', '2000', '1234', dayAt(5, 9));
  spend('instance/probe-abc123-def456-1/lease/1', '500', '100', dayAt(5, 15));
  // Reserved, not spent: the balance (deposited − spent) does not move.
  budget.reserve({ amount: '5000', ref: 'child/kid', purpose: 'child' }, key(), dayAt(2));
  return budget.unjournaled();
}

/** Expected: the balance at the end of each of the 30 days, and what each day spent (minor units). */
function expectedDays(): Array<{ day: string; balance: bigint; spent: bigint }> {
  const spent: Record<string, bigint> = { [days[29 - 19]!]: 4250n, [days[29 - 5]!]: 1334n };
  const income: Record<string, bigint> = { [days[29 - 10]!]: 300n };
  let balance = 50000n;
  return days.map((day) => {
    balance += (income[day] ?? 0n) - (spent[day] ?? 0n);
    return { day, balance, spent: spent[day] ?? 0n };
  });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)`,
    );
  db = openDatabase(testGlobals().databaseUrl);
  const store = await new LayoutStore(mkdtempSync(path.join(tmpdir(), 'charts-store-'))).init();

  await new MockActivityEnvironment().run(createJournalActivities(db).recordJournalEntries, {
    germline,
    currency: 'usd',
    entries: bookedEntries(),
  });

  // The run's checkpoint, its row, and its loss curve.
  const head = mkdtempSync(path.join(tmpdir(), 'charts-head-'));
  writeFileSync(path.join(head, 'model.safetensors'), safetensorsOf(Buffer.from('charted weights')));
  const published = await publishCheckpoint(store, repository, head, { tag: 'main' });
  await db.trainingRun.create({
    data: {
      id: runId,
      payer: `germline/${germline}`,
      runner: 'local',
      outputRepository: repository,
      outputBranch: 'main',
      gpus: 1,
      maxCost: 10000n,
      ratePerGpuHour: 3600n,
      currency: 'usd',
      maxDurationSeconds: 600,
      state: 'succeeded',
      step: 250,
      loss: losses.at(-1)!.loss,
      cost: 4250n,
      outputDigest: published.digest,
      finishedAt: dayAt(19),
    },
  });
  await recordLossPoints(db, runId, losses);

  const instance = (id: string, cost: bigint, state: string) => ({
    id,
    repository,
    reference: 'main',
    payer: `germline/${germline}`,
    visibility: 'public',
    runner: 'local',
    gpus: 1,
    ratePerGpuHour: 3600n,
    currency: 'usd',
    maxCost: 100000n,
    idleTimeoutSeconds: 300,
    maxDurationSeconds: 3600,
    state,
    cost,
  });
  await db.instance.createMany({
    data: [instance(`${germline}-a`, 1234n, 'stopped'), instance(`${germline}-b`, 567n, 'ready')],
  });

  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    currency: 'usd',
    store,
    db,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const operator = await signUpAccount(app, uniqueName('op'), { db });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1100, height: 900 } });
  await context.addCookies([
    { name: 'computatrum_session', value: operator.cookie.cookie!.slice('computatrum_session='.length), url: baseUrl },
  ]);
  page = await context.newPage();
  // A page of its own, with scripts, only to decode the screenshots (a canvas reads a PNG's pixels).
  decoder = await (await browser.newContext()).newPage();
});

afterAll(async () => {
  await decoder?.context().close();
  await context?.close();
  await browser?.close();
  await app?.close();
  await db?.$disconnect();
});

/**
 * Runs in the decoding page: the share of a PNG's pixels in the colour `rgb` (within a few levels),
 * and the leftmost and rightmost column holding one (0..1). A string: this project compiles without DOM types.
 */
const PAINT_OF_PNG = `async ({ png, rgb }) => {
  const image = new Image();
  image.src = 'data:image/png;base64,' + png;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const { data } = context.getImageData(0, 0, image.width, image.height);
  let count = 0, left = image.width, right = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (![0, 1, 2].every((c) => Math.abs(data[i + c] - rgb[c]) <= 24)) continue;
    count++;
    const x = (i / 4) % image.width;
    left = Math.min(left, x);
    right = Math.max(right, x);
  }
  return { share: count / (image.width * image.height), left: left / image.width, right: right / image.width };
}`;

/** How much of a chart's screenshot the series paint, and across which columns. */
async function paintOf(chart: Locator): Promise<{ share: number; left: number; right: number }> {
  const png = (await chart.locator('svg').screenshot()).toString('base64');
  return decoder.evaluate(`(${PAINT_OF_PNG})(${JSON.stringify({ png, rgb: SERIES_RGB })})`);
}

/** What a chart shows: its size, tick labels, axis titles and each point's x and y. */
async function contentOf(chart: Locator) {
  const svg = chart.locator('svg');
  return {
    box: await svg.boundingBox(),
    title: await svg.locator('title').first().textContent(),
    yTicks: await svg.locator('.y-axis text.tick').allTextContents(),
    xTicks: await svg.locator('.x-axis text.tick').allTextContents(),
    axisLabels: await svg.locator('text.axis-label').allTextContents(),
    series: await svg.locator('g.series').evaluateAll((groups) =>
      groups.map((g) => ({
        name: g.getAttribute('data-series'),
        points: g.getAttribute('data-points'),
        vertices: (g.querySelector('polyline')?.getAttribute('points') ?? '').split(' ').filter(Boolean).length,
        xs: [...g.querySelectorAll('circle.point')].map((c) => c.getAttribute('data-x')),
        ys: [...g.querySelectorAll('circle.point')].map((c) => c.getAttribute('data-y')),
      })),
    ),
  };
}

test('the console draws the balance and the burn, one point per day over 30 days, from the journal', async () => {
  const response = await page.goto(`${baseUrl}/operator`);
  expect(response?.status()).toBe(200);
  expect(utcDays(new Date(), 30)).toEqual(days); // the page drew the same 30 days (not across midnight UTC)
  await page.screenshot({ path: path.join(testGlobals().dir, 'operator-charts.png'), fullPage: true });
  const expected = expectedDays();

  const balance = await contentOf(page.locator('#chart-balance'));
  expect(balance.box!.width).toBeGreaterThan(300);
  expect(balance.box!.height).toBeGreaterThan(100);
  expect(balance.title).toBe('Balance at the end of each day');
  expect(balance.axisLabels).toEqual(['Balance (USD)', 'Day (UTC)']);
  expect(balance.yTicks).toEqual(['0.00', '100.00', '200.00', '300.00', '400.00', '500.00']);
  expect(balance.xTicks).toHaveLength(6);
  expect(balance.xTicks.at(-1)).toBe(
    `${now.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })} ${now.getUTCDate()}`,
  );
  expect(balance.series).toEqual([
    {
      name: 'Balance',
      points: '30',
      vertices: 30,
      xs: days,
      ys: expected.map((d) => String(d.balance)),
    },
  ]);

  const burn = await contentOf(page.locator('#chart-burn'));
  expect(burn.axisLabels).toEqual(['Spent (USD)', 'Day (UTC)']);
  expect(burn.yTicks).toEqual(['0.00', '10.00', '20.00', '30.00', '40.00', '50.00']);
  expect(burn.series[0]!.xs).toEqual(days);
  expect(burn.series[0]!.ys).toEqual(expected.map((d) => String(d.spent)));
  // Quiet days are points at zero, and a point tells its day and amount as money.
  await expect(page.locator(`#chart-burn circle.point[data-x="${days[29 - 5]}"] title`).textContent()).resolves.toBe(
    `Spent, ${days[29 - 5]}: 13.34 USD`,
  );
  await expect(page.locator('#chart-burn circle.point[data-y="0"]').count()).resolves.toBe(28);

  // Painted: the line runs across the plot, from the first day's column to the last's.
  for (const chart of ['#chart-balance', '#chart-burn']) {
    const paint = await paintOf(page.locator(chart));
    expect(paint.share).toBeGreaterThan(0.005);
    expect(paint.left).toBeLessThan(0.16);
    expect(paint.right).toBeGreaterThan(0.95);
  }
});

test('spend by purpose, money in by source and instances’ cost are bars with their amounts', async () => {
  const bars = async (id: string) =>
    page
      .locator(`#${id} rect.bar`)
      .evaluateAll((rects) =>
        rects.map((r) => ({ label: r.getAttribute('data-label'), value: r.getAttribute('data-value') })),
      );
  expect(await bars('chart-spend-by-purpose')).toEqual([
    { label: 'Training runs', value: '4250' },
    { label: 'Instances', value: '1234' },
    { label: 'Probes', value: '100' },
  ]);
  await expect(page.locator('#chart-spend-by-purpose text.value').allTextContents()).resolves.toEqual([
    '42.50 USD',
    '12.34 USD',
    '1.00 USD',
  ]);
  // The deposit before the 30 days is not in them.
  expect(await bars('chart-income-by-source')).toEqual([{ label: 'Usage fees', value: '300' }]);
  expect(await bars('chart-instance-costs')).toEqual([
    { label: `${germline}-a (stopped)`, value: '1234' },
    { label: `${germline}-b (ready)`, value: '567' },
  ]);
  const widths = await page
    .locator('#chart-spend-by-purpose rect.bar')
    .evaluateAll((rects) => rects.map((r) => Number(r.getAttribute('width'))));
  expect(widths[1]! / widths[0]!).toBeCloseTo(1234 / 4250, 2);
  const paint = await paintOf(page.locator('#chart-spend-by-purpose'));
  expect(paint.share).toBeGreaterThan(0.02);
  // Without scripts or pictures, the numbers are there as text too.
  await expect(page.locator('#chart-spend-by-purpose table').textContent()).resolves.toContain(
    `Training runs${formatMoney(4250n, 'usd')}`,
  );
});

test('each training run’s loss curve: a point per reported step, on the console and on its checkpoint’s hub page', async () => {
  for (const [url, chart] of [
    [`${baseUrl}/operator`, `#chart-loss-${runId}`],
    [`${baseUrl}/hub/${repository}`, '#chart-loss-main'],
  ] as const) {
    await page.goto(url);
    const loss = await contentOf(page.locator(chart));
    expect(loss.title).toBe(`Loss of run ${runId}`);
    expect(loss.axisLabels).toEqual(['Loss', 'Step']);
    expect(loss.yTicks).toEqual(['0.5', '1.0', '1.5', '2.0', '2.5', '3.0']);
    expect(loss.xTicks).toEqual(['50', '100', '150', '200', '250']);
    expect(loss.series).toEqual([
      {
        name: 'Loss',
        points: '25',
        vertices: 25,
        xs: losses.map((p) => String(p.step)),
        ys: losses.map((p) => String(p.loss)),
      },
    ]);
    expect(loss.box!.height).toBeGreaterThan(100);
    const paint = await paintOf(page.locator(chart));
    expect(paint.share).toBeGreaterThan(0.005);
    expect(paint.right - paint.left).toBeGreaterThan(0.8);
  }
  await expect(page.locator('#chart-loss-main desc').textContent()).resolves.toContain(
    'Loss: 25 points from Step 10 to Step 250; first 3.0000, last 0.6000',
  );
});
