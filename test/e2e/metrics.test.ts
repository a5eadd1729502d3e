// Prometheus scrapes both processes of a split deployment (`up --only worker`, `up --only platform`)
// on COMPUTATRUM_METRICS_PORT: the Temporal SDK's metrics from Core's exporter, and computatrum's own
// on the same endpoint. Real processes, the test run's Temporal and PostgreSQL, the real CLI.
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { METRIC } from '../../runtime/metrics';
import { RESERVATIONS_REFUSED_METRIC } from '../../workflows/serve-budget';
import { cli, startUp, upEnvironment } from '../helpers/computatrum-up';
import { eventually } from '../helpers/eventually';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

jest.setTimeout(180_000);

/** One sample of the Prometheus text format: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(port: string): Promise<{ text: string; samples: Sample[] }> {
  const answer = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(answer.status).toBe(200);
  const text = await answer.text();
  return { text, samples: parseExposition(text) };
}

const find = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

test('Prometheus scrapes the worker and the platform of a split deployment: the SDK metrics and computatrum’s own on one port each', async () => {
  const globals = testGlobals();
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-metrics-')), uniqueName('metrics'));
  const germline = env.COMPUTATRUM_GERMLINE!;
  Object.assign(env, {
    TEMPORAL_ADDRESS: globals.temporalAddress,
    DATABASE_URL: globals.databaseUrl,
    COMPUTATRUM_TASK_QUEUE: uniqueName('metrics'),
    COMPUTATRUM_METRICS_REFRESH_SECONDS: '1',
  });
  const workerMetrics = String(await freePort());
  const platformMetrics = String(await freePort());
  const worker = await startUp(
    { ...env, PLATFORM_PORT: String(await freePort()), COMPUTATRUM_METRICS_PORT: workerMetrics },
    '--only',
    'worker',
  );
  const platform = await startUp(
    {
      ...env,
      COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'computatrum-metrics-web-')),
      COMPUTATRUM_METRICS_PORT: platformMetrics,
    },
    '--only',
    'platform',
  );
  try {
    // Runs are counted across the database, which other suites share: this one adds one refused run.
    const refusedBefore = await eventually(async () => {
      const { samples } = await scrape(workerMetrics);
      return samples.some((s) => s.name === METRIC.trainingRuns)
        ? (find(samples, METRIC.trainingRuns, { state: 'refused' })?.value ?? 0)
        : undefined;
    }, 'the first reading of the runs');
    expect((await cli(env, 'deposit', '3.00', '--reference', 'metrics-1')).stdout).toContain('deposited 3.00 USD');
    // A run whose cap the budget cannot hold is refused: counted by the budget, by reason.
    const refused = await cli(env, 'train', '--branch', 'metrics', '--max-cost', '50');
    expect(`${refused.stdout}${refused.stderr}`).toMatch(/insufficient funds/i);
    const graphql = await fetch(`http://127.0.0.1:${env.PLATFORM_PORT}/api/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ germline { name state } }' }),
    });
    expect(graphql.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${env.PLATFORM_PORT}/no/such/page`)).status).toBe(404);

    // The worker: the SDK's own metrics, and what computatrum counts and reads from PostgreSQL.
    const fromWorker = await eventually(async () => {
      const { samples } = await scrape(workerMetrics);
      const available = find(samples, METRIC.budgetBalance, { budget: germline, account: 'available' });
      const runs = find(samples, METRIC.trainingRuns, { state: 'refused' });
      return available?.value === 300 && runs && runs.value > refusedBefore ? samples : undefined;
    }, 'the worker to report the deposit and the refused run');
    expect(
      fromWorker.some((s) => s.name.startsWith('temporal_') && s.labels.task_queue === env.COMPUTATRUM_TASK_QUEUE),
    ).toBe(true);
    expect(find(fromWorker, `${RESERVATIONS_REFUSED_METRIC}_total`, { reason: 'InsufficientFunds' })?.value).toBe(1);
    // The germline's three accounts, each read even while it holds nothing.
    expect(find(fromWorker, METRIC.budgetBalance, { budget: germline, account: 'available' })?.labels.currency).toBe(
      'usd',
    );
    expect(find(fromWorker, METRIC.budgetBalance, { budget: germline, account: 'reserved' })?.value).toBe(0);
    expect(find(fromWorker, METRIC.budgetBalance, { budget: germline, account: 'spent' })?.value).toBe(0);

    // The Grafana dashboard in deploy/ draws only what the two processes export.
    const dashboard = JSON.parse(
      readFileSync(path.join(__dirname, '../../deploy/grafana/computatrum.json'), 'utf8'),
    ) as {
      panels: Array<{ targets?: Array<{ expr: string }> }>;
    };
    const queried = new Set(
      dashboard.panels.flatMap((panel) =>
        (panel.targets ?? []).flatMap((target) => target.expr.match(/\b(?:computatrum|temporal)_[a-z_]+/g) ?? []),
      ),
    );
    const ours = new Set([...Object.values(METRIC), RESERVATIONS_REFUSED_METRIC]);
    const exported = new Set(fromWorker.map((sample) => sample.name));
    const unknown = [...queried].filter((name) =>
      name.startsWith('computatrum_') ? !ours.has(name.replace(/_(bucket|count|sum|total)$/, '')) : !exported.has(name),
    );
    expect(unknown).toEqual([]);
    // Its budget selectors name the germline as the worker labels it.
    const budgetSelectors = dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).flatMap((target) => [...target.expr.matchAll(/budget="([^"]+)"/g)].map((m) => m[1]!)),
    );
    expect(budgetSelectors.length).toBeGreaterThan(0);
    for (const selector of budgetSelectors)
      expect(find(fromWorker, METRIC.budgetBalance, { budget: selector.replace('$germline', germline) })).toBeDefined();
    expect(queried.size).toBeGreaterThanOrEqual(12);
    expect(find(fromWorker, `${METRIC.journalLag}_count`)?.value).toBeGreaterThanOrEqual(1);

    // The platform: every answer by method, route pattern and status, timed.
    const { samples: fromPlatform, text } = await scrape(platformMetrics);
    expect(
      find(fromPlatform, `${METRIC.httpRequests}_total`, { method: 'POST', route: '/api/graphql', status: '200' })
        ?.value,
    ).toBeGreaterThanOrEqual(1);
    expect(find(fromPlatform, `${METRIC.httpRequests}_total`, { route: 'unmatched', status: '404' })?.value).toBe(1);
    expect(
      find(fromPlatform, `${METRIC.httpDuration}_bucket`, { route: '/api/graphql', le: '+Inf' })?.value,
    ).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain('/no/such/page'); // raw URLs never become labels
  } finally {
    platform.process.kill('SIGINT');
    worker.process.kill('SIGINT');
    expect([await platform.exited, await worker.exited]).toEqual([0, 0]);
  }
});

test('a metrics port already in use is a clear error at start', async () => {
  const globals = testGlobals();
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-metrics-taken-')), 'taken');
  Object.assign(env, { TEMPORAL_ADDRESS: globals.temporalAddress, DATABASE_URL: globals.databaseUrl });
  const occupant = createServer().listen(0, '127.0.0.1');
  await once(occupant, 'listening');
  try {
    const port = (occupant.address() as AddressInfo).port;
    const up = await cli({ ...env, COMPUTATRUM_METRICS_PORT: String(port) }, 'up', '--only', 'platform');
    expect(up.code).not.toBe(0);
    expect(up.stderr).toContain(`could not serve metrics on 127.0.0.1:${port} (COMPUTATRUM_METRICS_PORT)`);
    expect(up.stderr).toContain('choose a free port, or unset it');
  } finally {
    occupant.close();
  }
});
