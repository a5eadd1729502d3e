// The Temporal worker: every workflow of the project and the activities bound to their outside systems.
import path from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createCheckpointActivities } from '../activities/checkpoints';
import { createJournalActivities } from '../activities/journal';
import type { Database } from '../activities/db/prisma';
import type { CheckpointStore } from '../activities/store/types';
import type { Config } from './config';
import { temporalConnectionOptions } from './temporal';

export const WORKFLOWS_PATH = path.resolve(__dirname, '../workflows/index.ts');

export interface ActivityDependencies {
  db: Database;
  store: CheckpointStore;
  /** Where model cards and other files of the daemon go. */
  dataDir: string;
}

export function createActivities(deps: ActivityDependencies) {
  return { ...createJournalActivities(deps.db), ...createCheckpointActivities(deps) };
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect(await temporalConnectionOptions(config));
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: ActivityDependencies;
  /** A prebuilt workflow bundle (tests build one per run); otherwise the workflows are bundled now. */
  workflowBundlePath?: string;
  /** Bundle these workflows instead of the project's (benchmarks add a bare baseline workflow). */
  workflowsPath?: string;
}

export async function createWorker(options: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: createActivities(options.activities),
    ...(options.workflowBundlePath
      ? { workflowBundle: { codePath: options.workflowBundlePath } }
      : { workflowsPath: options.workflowsPath ?? WORKFLOWS_PATH }),
  });
}
