// The daemon's parts for a benchmark, started fresh in a temp folder: a Temporal dev server, PGlite
// (or DATABASE_URL), a layout store and a worker. Benchmarks measure with these, never with mocks.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { migrateDatabase } from '../../db/migrate';
import { type Database, openDatabase } from '../../db/prisma';
import type { InstanceRunner } from '../../activities/instances';
import type { RunnerKind, TrainingRunner } from '../../activities/runners/types';
import { LayoutStore } from '../../store/layout';
import { loadConfig } from '../../runtime/config';
import { startEmbeddedPostgres } from '../../runtime/embedded/postgres';
import { freePort, startTemporalDevServer } from '../../runtime/embedded/temporal-dev-server';
import { requireTool, TEMPORAL_CLI } from '../../runtime/tools';
import { createWorker } from '../../worker/worker';
import { PROJECT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

export interface BenchStack {
  dir: string;
  client: Client;
  db: Database;
  store: LayoutStore;
  worker: Worker;
  /** `PGlite` or `PostgreSQL`, for the report. */
  database: string;
  close(): Promise<void>;
}

export async function startBenchStack(
  options: {
    runners?: (dir: string, store: LayoutStore) => Partial<Record<RunnerKind, TrainingRunner>>;
    instanceRunners?: (dir: string) => Partial<Record<RunnerKind, InstanceRunner>>;
  } = {},
): Promise<BenchStack> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-bench-'));
  const server = await startTemporalDevServer({
    cliPath: requireTool(TEMPORAL_CLI, loadConfig().toolsDir),
    dbFile: path.join(dir, 'temporal.db'),
    port: await freePort(),
    uiPort: await freePort(),
    namespace: 'default',
    searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
    logFile: path.join(dir, 'temporal.log'),
  });
  const pg = process.env.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort() });
  const databaseUrl = process.env.DATABASE_URL ?? pg!.url;
  await migrateDatabase(databaseUrl);
  const db = openDatabase(databaseUrl);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const store = await new LayoutStore(path.join(dir, 'store')).init();
  const workerConnection = await NativeConnection.connect({ address: server.address });
  const worker = await createWorker({
    connection: workerConnection,
    namespace: 'default',
    taskQueue: 'bench',
    activities: {
      db,
      store,
      dataDir: dir,
      client,
      runners: options.runners?.(dir, store) ?? {},
      instanceRunners: options.instanceRunners?.(dir) ?? {},
    },
    // The project's workflows plus a bare baseline workflow.
    workflowsPath: path.join(__dirname, '..', 'workflows.ts'),
  });
  return {
    dir,
    client,
    db,
    store,
    worker,
    database: pg ? 'PGlite' : 'PostgreSQL',
    async close() {
      await workerConnection.close();
      await connection.close();
      await db.$disconnect();
      await pg?.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
