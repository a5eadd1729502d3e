// Prometheus metrics, one `/metrics` per process on COMPUTATRUM_METRICS_PORT: the Temporal SDK's own
// (workers, pollers, workflow and activity tasks, client requests), exported by Temporal Core, and
// the project's, made on Core's meter so that both come from the same endpoint. Without the setting
// nothing is exported and every instrument below is a no-op, so callers never ask whether it is on.
// Budgets count their refused reservations themselves, from the workflow (workflows/serve-budget.ts).
import {
  type MetricCounter,
  type MetricGauge,
  type MetricHistogram,
  type MetricMeter,
  noopMetricMeter,
} from '@temporalio/common';
import type { TelemetryOptions } from '@temporalio/worker';

/** Milliseconds: an HTTP answer takes a few; a gateway answer (a model writing) up to minutes. */
const HTTP_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
const GATEWAY_BUCKETS_MS = [10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000];
/** A journal entry is booked within a second or so; minutes mean the writer is failing. */
const JOURNAL_LAG_BUCKETS_MS = [10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000];

export const METRIC = {
  httpRequests: 'computatrum_http_requests',
  httpDuration: 'computatrum_http_request_duration_milliseconds',
  gatewayDuration: 'computatrum_gateway_request_duration_milliseconds',
  gatewayTokens: 'computatrum_gateway_tokens',
  budgetBalance: 'computatrum_budget_minor_units',
  journalLag: 'computatrum_journal_lag_milliseconds',
  trainingRuns: 'computatrum_training_runs',
  instances: 'computatrum_instances',
  instanceCost: 'computatrum_instances_cost_minor_units',
} as const;

/** How Temporal Core serves the metrics (and forwards its own logs, which it would print otherwise). */
export function telemetryOptions(metrics: { host: string; port: number } | undefined): TelemetryOptions {
  return {
    logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
    ...(metrics
      ? {
          metrics: {
            prometheus: {
              bindAddress: `${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${metrics.port}`,
              countersTotalSuffix: true,
              useSecondsForDurations: true,
              histogramBucketOverrides: {
                [METRIC.httpDuration]: HTTP_BUCKETS_MS,
                [METRIC.gatewayDuration]: GATEWAY_BUCKETS_MS,
                [METRIC.journalLag]: JOURNAL_LAG_BUCKETS_MS,
              },
            },
          },
        }
      : {}),
  };
}

/** The project's instruments. Labels stay few and bounded: routes are patterns, never raw URLs. */
export interface ProjectMetrics {
  /** {method, route, status} */
  httpRequests: MetricCounter;
  /** {method, route} */
  httpDuration: MetricHistogram;
  /** {outcome: answered | unanswered}: from the call's arrival to its last byte. */
  gatewayDuration: MetricHistogram;
  /** {kind: prompt | completion} */
  gatewayTokens: MetricCounter;
  /** {budget, account: available | reserved | spent, currency}: the germline's books in the journal. */
  budgetBalance: MetricGauge;
  /** From a budget change in the workflow to its booking in PostgreSQL. */
  journalLag: MetricHistogram;
  /** {state} */
  trainingRuns: MetricGauge;
  /** {state} */
  instances: MetricGauge;
  /** {state, currency}: what instances in each state have cost so far. */
  instanceCost: MetricGauge;
}

function instrumentsOn(meter: MetricMeter): ProjectMetrics {
  return {
    httpRequests: meter.createCounter(METRIC.httpRequests, '', 'HTTP requests answered by the platform'),
    httpDuration: meter.createHistogram(METRIC.httpDuration, 'float', 'ms', 'HTTP answer time'),
    gatewayDuration: meter.createHistogram(METRIC.gatewayDuration, 'float', 'ms', 'OpenAI-compatible call time'),
    gatewayTokens: meter.createCounter(METRIC.gatewayTokens, '', 'tokens through the gateway'),
    budgetBalance: meter.createGauge(METRIC.budgetBalance, 'int', '', "budgets' journal accounts, minor units"),
    journalLag: meter.createHistogram(METRIC.journalLag, 'float', 'ms', 'budget change to journal booking'),
    trainingRuns: meter.createGauge(METRIC.trainingRuns, 'int', '', 'training runs by state'),
    instances: meter.createGauge(METRIC.instances, 'int', '', 'hosted instances by state'),
    instanceCost: meter.createGauge(METRIC.instanceCost, 'int', '', "instances' settled cost, minor units"),
  };
}

let instruments = instrumentsOn(noopMetricMeter);

/** Makes the project's instruments report to `meter` (Core's, once the runtime exports metrics). */
export function useMetricMeter(meter: MetricMeter): void {
  instruments = instrumentsOn(meter);
}

/** The process's instruments; no-ops until useMetricMeter. */
export function metrics(): ProjectMetrics {
  return instruments;
}
