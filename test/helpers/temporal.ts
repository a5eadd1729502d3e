// A real worker on the shared test dev server, with the real journal activities on the test database.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { openDatabase, type Database } from '../../db/prisma';
import { LayoutStore } from '../../store/layout';
import type { RunnerKind, TrainingRunner } from '../../activities/runners/types';
import { localRunner } from '../../worker/runners';
import { createWorker } from '../../worker/worker';
import { ensureGermline, type GermlineHandle } from '../../temporal/germline-client';
import { testGlobals } from '../setup/globals';
import type { TrainingDefaults } from '../../workflows/training-api';
import type { GermlineInstanceSettings, InstanceRunner } from '../../activities/instances';

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export interface TestWorker {
  worker: Worker;
  stop(): Promise<void>;
}

export interface TestEnvironment {
  client: Client;
  db: Database;
  /** A checkpoint store of its own (an OCI layout in a temp folder) and the daemon's data folder. */
  store: LayoutStore;
  dataDir: string;
  taskQueue: string;
  startWorker(): Promise<TestWorker>;
  startGermline(name?: string, currency?: string): Promise<{ name: string; handle: GermlineHandle }>;
  close(): Promise<void>;
}

let runtimeInstalled = false;

/** Test output shows the SDK's warnings and errors only. */
export function quietTemporalLogs(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

export interface TestEnvironmentOptions {
  /** Runners beside (or instead of) the local runner with the tiny trainer. */
  runners?: Partial<Record<RunnerKind, TrainingRunner>>;
  /** The training runs the germline's tick starts (rate, runner); the worker's default otherwise. */
  training?: TrainingDefaults;
  /** Runners of hosted instances (none: launching one is refused). */
  instanceRunners?: Partial<Record<RunnerKind, InstanceRunner>>;
  /** The germline's public instance moved to each gpc tag (on this environment's task queue). */
  germlineInstance?: Omit<GermlineInstanceSettings, 'taskQueue'>;
}

export async function testEnvironment(options: TestEnvironmentOptions = {}): Promise<TestEnvironment> {
  quietTemporalLogs();
  const globals = testGlobals();
  const connection = await Connection.connect({ address: globals.temporalAddress });
  const client = new Client({ connection, namespace: 'default' });
  const db = openDatabase(globals.databaseUrl);
  const taskQueue = uniqueName('test');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'computatrum-env-'));
  const store = await new LayoutStore(path.join(dataDir, 'store')).init();
  const workers: TestWorker[] = [];

  const startWorker = async (): Promise<TestWorker> => {
    const workerConnection = await NativeConnection.connect({ address: globals.temporalAddress });
    const worker = await createWorker({
      connection: workerConnection,
      namespace: 'default',
      taskQueue,
      activities: {
        db,
        store,
        dataDir,
        client,
        runners: { local: localRunner({ dataDir, store, tickMs: 200 }), ...options.runners },
        ...(options.training ? { training: options.training } : {}),
        ...(options.instanceRunners ? { instanceRunners: options.instanceRunners } : {}),
        ...(options.germlineInstance ? { germlineInstance: { ...options.germlineInstance, taskQueue } } : {}),
      },
      workflowBundlePath: globals.workflowBundlePath,
    });
    const running = worker.run();
    const handle: TestWorker = {
      worker,
      async stop() {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
        await workerConnection.close();
        workers.splice(workers.indexOf(handle), 1);
      },
    };
    workers.push(handle);
    return handle;
  };

  return {
    client,
    db,
    store,
    dataDir,
    taskQueue,
    startWorker,
    async startGermline(name = uniqueName('g'), currency = 'usd') {
      const { handle } = await ensureGermline(client, { name, currency, taskQueue });
      return { name, handle };
    },
    async close() {
      for (const w of [...workers]) await w.stop();
      await db.$disconnect();
      await connection.close();
    },
  };
}
