// What every CLI command shares: user-facing errors, reaching Temporal, parsing amounts, printing.
// Cheap to load (every command module imports it while the program is built): the Temporal client,
// the database client and the configuration's schema load inside the functions that use them.
import { InvalidArgumentError } from 'commander';
import type { Client, Connection } from '@temporalio/client';
import type { Database } from '../db/prisma';
import type { Config } from '../runtime/config';
import { parseAmount } from '../workflows/money';
import { germlineWorkflowId } from '../workflows/names';

/** A failure the user can fix; printed without a stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export async function withGermline<T>(
  config: Config,
  action: (client: Client, connection: Connection) => Promise<T>,
): Promise<T> {
  const [
    { WorkflowNotFoundError, WorkflowUpdateFailedError },
    { connectTemporal, temporalClient },
    { temporalAddress },
  ] = await Promise.all([
    import('@temporalio/client'),
    import('../temporal/connection.js'),
    import('../runtime/config.js'),
  ]);
  let connection: Connection;
  try {
    connection = await connectTemporal(config);
  } catch (error) {
    throw new UserError(
      `cannot reach Temporal at ${temporalAddress(config)} (${(error as Error).message}): ` +
        `is \`computatrum up\` running, or is TEMPORAL_ADDRESS right?`,
    );
  }
  try {
    return await action(temporalClient(connection, config), connection);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      throw new UserError(`${germlineWorkflowId(config.germline)} is not running: start it with \`computatrum up\``);
    }
    if (error instanceof WorkflowUpdateFailedError) {
      throw new UserError(`refused: ${error.cause?.message ?? error.message}`);
    }
    throw error;
  } finally {
    await connection.close();
  }
}

/** Reads from the daemon's PostgreSQL (runs, decisions); an unreachable database is the user's to fix. */
export async function withDatabase<T>(config: Config, action: (db: Database) => Promise<T>): Promise<T> {
  const [{ openDatabase }, { databaseUrl }] = await Promise.all([
    import('../db/prisma.js'),
    import('../runtime/config.js'),
  ]);
  const db = openDatabase(databaseUrl(config), { maxConnections: 2 });
  try {
    return await action(db);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(
      `cannot read from the database (${(error as Error).message}): is \`computatrum up\` running, or is DATABASE_URL right?`,
    );
  } finally {
    await db.$disconnect();
  }
}

export function positiveInteger(name: string) {
  return wholeNumber(name, 1);
}

/** A whole number of at least `min` given on the command line. */
export function wholeNumber(name: string, min: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}, got "${text}"`);
    return n;
  };
}

/** An amount in the configured currency; the configuration is read when such an option is given. */
export function amountOption(config: () => Config) {
  return (text: string): bigint => {
    const { currency } = config();
    try {
      return parseAmount(text, currency);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/**
 * A cap given on the command line: an amount (as minor units), or "none" to lift it. The parser keeps
 * "none" (commander turns a null from a parser into an empty string); `liftable` makes it null.
 */
export function capOption(config: () => Config) {
  return (text: string): string => (text === 'none' ? 'none' : amountOption(config)(text).toString());
}

export function liftable(cap: string): string | null {
  return cap === 'none' ? null : cap;
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`"${text}" is not a duration: write it like 90m, 2h or 1d`);
  const seconds = Math.round(Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS]);
  if (seconds < 1) throw new InvalidArgumentError(`"${text}" is shorter than a second`);
  return seconds;
}

/** The platform to download from: --from, or this computatrum's own. */
export function platformUrl(config: Config, from?: string): string {
  return (from ?? `http://${config.platform.host}:${config.platform.port}`).replace(/\/+$/, '');
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}
