// Logs are JSON lines from pino (pretty on a terminal). The Temporal SDK's own logs, including
// every activity's `log` calls with their workflowId and activityType, are routed into the same logger.
import { DefaultLogger, type LogEntry, Runtime } from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import type { Config } from './config';

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

let installed = false;

/** Sends the Temporal SDK's logs (workflow, activity, worker and core) to pino. Once per process. */
export function installTemporalLogging(logger: Logger): void {
  if (installed) return;
  installed = true;
  const temporal = logger.child({ component: 'temporal' });
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry: LogEntry) => {
      const { sdkComponent, ...meta } = entry.meta ?? {};
      // The workflow bundler's webpack report is build noise, not an event.
      const level = entry.message.startsWith('asset workflow-bundle') ? 'debug' : TEMPORAL_LEVELS[entry.level];
      temporal[level]({ sdk: sdkComponent, ...meta }, entry.message);
    }),
  });
}
