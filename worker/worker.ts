// The Temporal worker: every workflow of the project and the activities bound to their outside systems.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createAutonomyActivities } from '../activities/autonomy';
import { createBudgetActivities } from '../activities/budget';
import { createCheckpointActivities } from '../activities/checkpoints';
import { createDatasetActivities } from '../activities/datasets';
import { createGermlineArchiveActivities } from '../activities/germline-archive';
import { createInstanceActivities, type GermlineInstanceSettings, type InstanceRunner } from '../activities/instances';
import { createJournalActivities } from '../activities/journal';
import { createProbeActivities, type ProbeSettings } from '../activities/probes';
import type { Database } from '../db/prisma';
import type { RunnerKind, TrainingRunner } from '../activities/runners/types';
import type { CheckpointStore } from '../store/types';
import { createTrainingActivities } from '../activities/training';
import { createUsageActivities } from '../activities/usage';
import type { Config } from '../runtime/config';
import { temporalConnectionOptions } from '../temporal/connection';
import { projectPath } from '../runtime/paths';
import { type TrainingDefaults } from '../workflows/training-api';

export const WORKFLOWS_PATH = projectPath('workflows', 'index.ts');

/** Where instances live on this host: their processes' folders and materialized checkpoints. */
export const instancesDir = (dataDir: string): string => path.join(dataDir, 'instances');

export interface ActivityDependencies {
  db: Database;
  store: CheckpointStore;
  /** Where model cards and other files of the daemon go. */
  dataDir: string;
  /** For activities that ask other workflows for something (budget reservations). */
  client: Client;
  /** The training runners this worker can launch jobs with. */
  runners: Partial<Record<RunnerKind, TrainingRunner>>;
  /** The runners of hosted instances; none: launching an instance is refused with the reason. */
  instanceRunners?: Partial<Record<RunnerKind, InstanceRunner>>;
  /** The germline's public instance, moved to each new gpc tag; absent: it keeps none. */
  germlineInstance?: GermlineInstanceSettings;
  /** Training runs the germline's tick starts for its children; default: local, 2.00 per GPU-hour, at most a day. */
  training?: TrainingDefaults;
  /** Bearer token for the http decision policy's agent (COMPUTATRUM_AGENT_TOKEN). */
  agentToken?: string;
  logger?: Logger;
  /** Behaviour probes of new images (runtime/config.ts probeSettings); absent: probes are off on this worker. */
  probes?: ProbeSettings;
}

const DEFAULT_TRAINING: TrainingDefaults = {
  runner: 'local',
  ratePerGpuHour: 200n,
  maxDurationSeconds: 86_400,
  maxPreemptions: 3,
};

export function createActivities(deps: ActivityDependencies) {
  return {
    ...createJournalActivities(deps.db),
    ...createGermlineArchiveActivities(deps.db),
    ...createCheckpointActivities(deps),
    ...createBudgetActivities(deps.client),
    ...createTrainingActivities(deps),
    ...createAutonomyActivities({ ...deps, training: deps.training ?? DEFAULT_TRAINING }),
    ...createDatasetActivities({ ...deps, training: deps.training ?? DEFAULT_TRAINING }),
    ...createUsageActivities(deps),
    ...createInstanceActivities({
      db: deps.db,
      store: deps.store,
      instancesDir: instancesDir(deps.dataDir),
      instanceRunners: deps.instanceRunners ?? {},
      client: deps.client,
      ...(deps.germlineInstance ? { germlineInstance: deps.germlineInstance } : {}),
    }),
    ...createProbeActivities({
      db: deps.db,
      store: deps.store,
      client: deps.client,
      ...(deps.probes ? { probes: deps.probes } : {}),
      ...(deps.logger ? { logger: deps.logger } : {}),
    }),
  };
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
  /**
   * How long activities in flight may finish after a shutdown begins (SIGTERM, Ctrl-C) before they are
   * cancelled (COMPUTATRUM_SHUTDOWN_GRACE_SECONDS); default 0: cancelled at once.
   */
  shutdownGraceSeconds?: number;
}

export async function createWorker(options: WorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: createActivities(options.activities),
    // Cancellation reaches a running activity only with a heartbeat's answer: a cancelled training
    // run stops within seconds instead of after most of its heartbeat timeout.
    maxHeartbeatThrottleInterval: '2 seconds',
    // A shutdown (Ctrl-C, a pod's SIGTERM) lets activities in flight finish for the grace time, then
    // cancels them, and never waits more than 15 s longer on one that does not stop: what it was doing
    // is retried by the next worker (every activity is idempotent).
    shutdownGraceTime: (options.shutdownGraceSeconds ?? 0) * 1000,
    shutdownForceTime: ((options.shutdownGraceSeconds ?? 0) + 15) * 1000,
    ...(options.workflowBundlePath
      ? { workflowBundle: { codePath: options.workflowBundlePath } }
      : { workflowsPath: options.workflowsPath ?? WORKFLOWS_PATH }),
  });
}
