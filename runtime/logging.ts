// Logs are JSON lines from pino (pretty on a terminal). The Temporal SDK's own logs, including
// every activity's `log` calls with their workflowId and activityType, and Temporal Core's own, are
// routed into the same logger.
import { DefaultLogger, type LogEntry, Runtime } from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import type { Config } from './config';
import { telemetryOptions, useMetricMeter } from './metrics';

export type { Logger };

/** Keys whose values never reach a log line. */
const REDACTED = [
  'apiKey',
  '*.apiKey',
  'password',
  '*.password',
  'token',
  '*.token',
  'agentToken',
  '*.agentToken',
  'apiToken',
  '*.apiToken',
  'secretKey',
  '*.secretKey',
  'webhookSecret',
  '*.webhookSecret',
  'databaseUrl',
  '*.databaseUrl',
];

export function createLogger(options: Config['log'], destination?: pino.DestinationStream): Logger {
  const base = { level: options.level, redact: { paths: REDACTED, censor: '[redacted]' } };
  if (destination) return pino(base, destination);
  if (options.pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss' } },
    });
  }
  return pino(base);
}

const TEMPORAL_LEVELS = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

let installed: Runtime | undefined;

/**
 * Installs Temporal's runtime once per process: the SDK's logs (workflow, activity, worker, and
 * Core's own, which it would print to stderr otherwise) go to pino, and with `metrics` Core serves
 * Prometheus metrics, the SDK's and the project's (runtime/metrics.ts), on that address.
 */
export function installTemporalRuntime(logger: Logger, metrics?: { host: string; port: number }): void {
  if (installed) return;
  const temporal = logger.child({ component: 'temporal' });
  let runtime: Runtime;
  try {
    runtime = installed = Runtime.install({
      logger: new DefaultLogger('INFO', (entry: LogEntry) => {
        const { sdkComponent, ...meta } = entry.meta ?? {};
        // The workflow bundler's webpack report is build noise, not an event.
        const level = entry.message.startsWith('asset workflow-bundle') ? 'debug' : TEMPORAL_LEVELS[entry.level];
        temporal[level]({ sdk: sdkComponent, ...meta }, entry.message);
      }),
      telemetryOptions: telemetryOptions(metrics),
    });
  } catch (error) {
    if (!metrics) throw error;
    throw new Error(
      `could not serve metrics on ${metrics.host}:${metrics.port} (COMPUTATRUM_METRICS_PORT): ${(error as Error).message}; ` +
        'choose a free port, or unset it to export no metrics',
    );
  }
  if (metrics) useMetricMeter(runtime.metricMeter);
}

/**
 * Stops the runtime installed above, if a worker's end has not already: a process with no worker
 * (`up --only platform`) would otherwise never exit, held by Core's log forwarding.
 */
export async function shutdownTemporalRuntime(): Promise<void> {
  // shutdown() is the SDK's own last step when its last worker or connection closes; it does nothing twice.
  await installed?.shutdown();
}
