// The embedded Temporal: `temporal server start-dev` (real server, SQLite file, Web UI) as a child
// process in its own process group, so Ctrl-C reaches computatrum first and we stop it last.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import type { SearchAttributeKey } from '../../workflows/search-attributes';

export interface DevServerOptions {
  cliPath: string;
  /** SQLite file that persists every workflow across restarts. */
  dbFile: string;
  port: number;
  uiPort: number;
  namespace: string;
  searchAttributes: SearchAttributeKey[];
  /** Extra dynamic config, e.g. { 'limit.historyCount.suggestContinueAsNew': 100 } in tests. */
  dynamicConfig?: Record<string, unknown>;
  /** Where the server's own output goes. */
  logFile: string;
  readyTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * What computatrum needs of any Temporal server, the embedded one included: a budget workflow takes
 * every concurrent caller's update at once (the default of 10 in flight turns a burst away with
 * RESOURCE_EXHAUSTED). A cluster needs the same value in its dynamic config (README, Deploying).
 */
export const SERVER_DYNAMIC_CONFIG: Record<string, unknown> = { 'history.maxInFlightUpdates': 1000 };

/** start-dev's flag spells types in title case (Keyword, Int, KeywordList...). */
function searchAttributeFlag(key: SearchAttributeKey): string {
  const type = key.type
    .split('_')
    .map((w: string) => w[0] + w.slice(1).toLowerCase())
    .join('');
  return `${key.name}=${type}`;
}

export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  mkdirSync(path.dirname(options.dbFile), { recursive: true });
  await assertPortFree(options.port, 'the Temporal frontend (TEMPORAL_DEV_PORT)');
  await assertPortFree(options.uiPort, 'the Temporal Web UI (TEMPORAL_UI_PORT)');
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    options.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--ui-port',
    String(options.uiPort),
    '--namespace',
    options.namespace,
    '--log-level',
    'warn',
    ...options.searchAttributes.flatMap((key) => ['--search-attribute', searchAttributeFlag(key)]),
    ...Object.entries({ ...SERVER_DYNAMIC_CONFIG, ...options.dynamicConfig }).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
  ];
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child = spawn(options.cliPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Never leave an orphaned server behind if this process dies first.
  const killOnExit = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${options.port}`;
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => killOnExit(), 10_000);
      await exited;
      clearTimeout(timer);
    }
    log.end();
  };

  try {
    await waitUntilServing(address, options.namespace, exited, options.readyTimeoutMs ?? 60_000, options.logFile);
  } catch (error) {
    await stop();
    throw error;
  }
  return { address, uiUrl: `http://127.0.0.1:${options.uiPort}`, process: child, stop };
}

async function waitUntilServing(
  address: string,
  namespace: string,
  exited: Promise<number | null>,
  timeoutMs: number,
  logFile: string,
): Promise<void> {
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code ?? -1));
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(`the Temporal dev server exited with code ${exitCode} while starting; see ${logFile}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  throw new Error(
    `the Temporal dev server did not answer on ${address} within ${timeoutMs} ms (${String(lastError)}); see ${logFile}`,
  );
}

export function assertPortFree(port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', () =>
      reject(new Error(`port ${port} for ${what} is already in use: stop what holds it or choose another port`)),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** A free loopback port, for tests and for servers that must not collide. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
