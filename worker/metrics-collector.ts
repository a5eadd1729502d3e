// The gauges read from PostgreSQL rather than counted as things happen: the germline's books, training
// runs and instances by state. The worker side refreshes them on a timer (Core exports the last value
// at each scrape), so a restarted worker reports them at once instead of after the next change.
// Only the germline's own book is summed: one series per trainer's credit would grow without bound,
// and summing the whole journal on every tick would cost more as it grows.
import type { MetricGauge } from '@temporalio/common';
import type { Logger } from 'pino';
import type { Database } from '../db/prisma';
import { journalBalances } from '../activities/journal';
import { metrics } from '../runtime/metrics';

const DEFAULT_INTERVAL_MS = 15_000;
/** The journal's accounts a budget reports; `deposits` is the outside world's side. */
const BUDGET_ACCOUNTS = ['available', 'reserved', 'spent'] as const;

type Tags = Record<string, string>;

/**
 * One reading of a gauge per label set; a label set that was read before and is gone now (no run is
 * `running` any more) reads 0, or the gauge would keep its last value forever.
 */
class GaugeReading {
  private readonly seen = new Map<string, Tags>();
  constructor(private readonly gauge: MetricGauge) {}

  report(values: Array<{ tags: Tags; value: number }>): void {
    const now = new Set<string>();
    for (const { tags, value } of values) {
      const key = JSON.stringify(tags);
      now.add(key);
      this.seen.set(key, tags);
      this.gauge.set(value, tags);
    }
    for (const [key, tags] of this.seen) if (!now.has(key)) this.gauge.set(0, tags);
  }
}

/** Reads the gauges from PostgreSQL; each call reports every gauge. */
export function stateMetricsReader(db: Database, book: { germline: string; currency: string }): () => Promise<void> {
  const { budgetBalance, trainingRuns, instances, instanceCost } = metrics();
  const readings = {
    budgets: new GaugeReading(budgetBalance),
    runs: new GaugeReading(trainingRuns),
    instances: new GaugeReading(instances),
    instanceCost: new GaugeReading(instanceCost),
  };
  return async () => {
    const [books, runRows, instanceRows] = await Promise.all([
      journalBalances(db, book.germline),
      db.trainingRun.groupBy({ by: ['state'], _count: true }),
      db.instance.groupBy({ by: ['state', 'currency'], _count: true, _sum: { cost: true } }),
    ]);
    readings.budgets.report(
      BUDGET_ACCOUNTS.map((account) => ({
        tags: { budget: book.germline, account, currency: book.currency },
        value: Number(books[account]),
      })),
    );
    readings.runs.report(runRows.map((row) => ({ tags: { state: row.state }, value: row._count })));
    const byState = new Map<string, number>();
    for (const row of instanceRows) byState.set(row.state, (byState.get(row.state) ?? 0) + row._count);
    readings.instances.report([...byState].map(([state, count]) => ({ tags: { state }, value: count })));
    readings.instanceCost.report(
      instanceRows.map((row) => ({
        tags: { state: row.state, currency: row.currency },
        value: Number(row._sum.cost ?? 0n),
      })),
    );
  };
}

/** Refreshes the gauges now and every `intervalMs`; a failed read is logged and tried at the next tick. */
export function startMetricsCollector(
  db: Database,
  book: { germline: string; currency: string },
  logger: Logger,
  intervalMs = DEFAULT_INTERVAL_MS,
): { stop(): Promise<void> } {
  const read = stateMetricsReader(db, book);
  let running: Promise<void> | undefined;
  const tick = () => {
    // A slow database skips ticks rather than pile reads up.
    if (running) return;
    running = read()
      .catch((error: unknown) =>
        logger.warn({ err: error }, 'reading the metrics from PostgreSQL failed; trying again at the next tick'),
      )
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
