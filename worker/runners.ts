// The runners a worker offers. Training: always `local` (child processes on this host, the tiny
// trainer by default), and `kubernetes` when a namespace is configured (COMPUTATRUM_KUBE_NAMESPACE).
// Instances: `local` (detached processes on this host, the tiny model's server by default), and
// `kubernetes` (a Deployment and a Service each) when a namespace and an instance image
// (COMPUTATRUM_INSTANCE_IMAGE) are configured. And the sweep that stops instance processes whose
// instance ended while no worker ran.
import path from 'node:path';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { KubernetesInstanceRunner, KubernetesJobRunner, kubeConfigFrom } from '../activities/runners/kubernetes';
import { LocalProcessRunner } from '../activities/runners/local';
import type { Logger } from 'pino';
import type { InstanceRunner } from '../activities/instances';
import { LocalInstanceRunner } from '../activities/runners/local-instances';
import { tinyServerCommand, tinyTrainerCommand } from '../activities/runners/tiny-trainer';
import type { RunnerKind, TrainingRunner } from '../activities/runners/types';
import { materializeCheckpoint } from '../store/materialize';
import type { CheckpointStore } from '../store/types';
import type { Config } from '../runtime/config';
import type { Database } from '../db/prisma';
import { instanceHandle } from '../temporal/instance-client';
import { FINAL_INSTANCE_STATES, type InstanceState } from '../workflows/instance-api';
import { instancesDir } from './worker';

export function localRunner(options: {
  dataDir: string;
  store: CheckpointStore;
  trainerCommand?: string[];
  tickMs?: number;
}): LocalProcessRunner {
  return new LocalProcessRunner({
    runsDir: path.join(options.dataDir, 'runs'),
    defaultCommand: options.trainerCommand ?? tinyTrainerCommand(),
    fetch: async (artifact, dir) =>
      void (await materializeCheckpoint(options.store, artifact.repo, artifact.digest, dir)),
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
  });
}

export async function createRunners(
  config: Config,
  store: CheckpointStore,
): Promise<Partial<Record<RunnerKind, TrainingRunner>>> {
  const runners: Partial<Record<RunnerKind, TrainingRunner>> = {
    local: localRunner({
      dataDir: config.dataDir,
      store,
      ...(config.training.trainerCommand ? { trainerCommand: config.training.trainerCommand } : {}),
    }),
  };
  const kube = config.training.kubernetes;
  if (kube) {
    runners.kubernetes = new KubernetesJobRunner({
      // A kubeconfig file when given, else the pod's service account.
      kubeConfig: await kubeConfigFrom(kube.kubeconfig ? { kubeconfigPath: kube.kubeconfig } : { inCluster: true }),
      namespace: kube.namespace,
      ...(kube.template ? { template: kube.template } : {}),
      ...(kube.queueName ? { queueName: kube.queueName } : {}),
      ...(kube.checkpointClaim ? { checkpointClaim: kube.checkpointClaim } : {}),
      // The pod pulls its base from, and pushes its output to, the same registry as the daemon.
      ...(config.store.kind === 'registry'
        ? {
            storeRegistry: {
              url: config.store.url,
              ...(kube.registrySecret ? { credentialsSecret: kube.registrySecret } : {}),
            },
          }
        : {}),
    });
  }
  return runners;
}

export function createInstanceRunners(config: Config, logger?: Logger): Partial<Record<RunnerKind, InstanceRunner>> {
  const runners: Partial<Record<RunnerKind, InstanceRunner>> = {
    local: new LocalInstanceRunner({
      dataDir: instancesDir(config.dataDir),
      defaultCommand: config.training.instanceCommand ?? tinyServerCommand(),
      ...(logger ? { logger } : {}),
    }),
  };
  const kube = config.training.kubernetes;
  if (kube?.instanceImage) {
    // Loaded while the worker starts; a kubeconfig that cannot be read fails the first start, and is logged now.
    const kubeConfig = kubeConfigFrom(kube.kubeconfig ? { kubeconfigPath: kube.kubeconfig } : { inCluster: true });
    kubeConfig.catch((error: unknown) => logger?.error({ err: error }, 'kubernetes instances: no kubeconfig'));
    // The instance pod mounts its checkpoint from the claim this worker materializes it on, or pulls it
    // from the daemon's registry (the runner refuses neither being there).
    runners.kubernetes = new KubernetesInstanceRunner({
      kubeConfig,
      namespace: kube.namespace,
      image: kube.instanceImage,
      ...(kube.checkpointClaim && kube.checkpointClaimPath
        ? { checkpointClaim: kube.checkpointClaim, checkpointClaimPath: kube.checkpointClaimPath }
        : {}),
      ...(kube.instancePullImage ? { pullImage: kube.instancePullImage } : {}),
      ...(config.store.kind === 'registry'
        ? {
            storeRegistry: {
              url: config.store.url,
              ...(kube.registrySecret ? { credentialsSecret: kube.registrySecret } : {}),
            },
          }
        : {}),
      ...(logger ? { logger } : {}),
    });
  }
  return runners;
}

/** A runner that can stop the processes it keeps for instances no longer live (the local one). */
interface SweepingInstanceRunner extends InstanceRunner {
  sweep(isLive: (instanceId: string) => Promise<boolean>): Promise<string[]>;
}

const sweeps = (runner: InstanceRunner | undefined): runner is SweepingInstanceRunner =>
  typeof (runner as Partial<SweepingInstanceRunner> | undefined)?.sweep === 'function';

/** A closed run of instance/<id>; a running or continued one (and one Temporal cannot name) is live. */
const CLOSED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT']);

export interface InstanceSweepDependencies {
  db: Database;
  /** With it, the workflow decides (a closed one is not live); without, or when it has none, the row does. */
  client?: Client;
  logger?: Logger;
}

/**
 * Whether an instance is live, so its process must be kept: its workflow runs. A workflow Temporal
 * no longer knows (past retention, or a reset dev server) leaves it to the Instance row: live unless
 * the row is final or missing. Errors (Temporal or the database unreachable) propagate: the sweep keeps
 * what it cannot decide.
 */
export function instanceLiveness(deps: InstanceSweepDependencies): (instanceId: string) => Promise<boolean> {
  return async (instanceId) => {
    let workflow: 'closed' | 'unknown' | undefined;
    if (deps.client) {
      try {
        const { status } = await instanceHandle(deps.client, instanceId).describe();
        if (!CLOSED.has(status.name)) return true;
        workflow = 'closed';
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) throw error;
        workflow = 'unknown';
      }
    }
    if (workflow === 'closed') return false;
    const row = await deps.db.instance.findUnique({ where: { id: instanceId }, select: { state: true } });
    const live = row !== null && !FINAL_INSTANCE_STATES.includes(row.state as InstanceState);
    if (row && live && workflow === 'unknown') {
      deps.logger?.warn(
        { instanceId, state: row.state },
        'sweep: the instance row is live but Temporal has no workflow for it; its process is kept (stop it by hand if it is an orphan)',
      );
    }
    return live;
  };
}

/** Stops, once, every instance process whose instance is no longer live; answers the ids stopped, by runner. */
export async function sweepInstances(
  runners: Partial<Record<RunnerKind, InstanceRunner>>,
  deps: InstanceSweepDependencies,
): Promise<Partial<Record<RunnerKind, string[]>>> {
  const isLive = instanceLiveness(deps);
  const stopped: Partial<Record<RunnerKind, string[]>> = {};
  for (const [kind, runner] of Object.entries(runners) as [RunnerKind, InstanceRunner | undefined][]) {
    if (sweeps(runner)) stopped[kind] = await runner.sweep(isLive);
  }
  return stopped;
}

export interface InstanceSweeper {
  /** Ends the periodic sweep, waiting for one under way. */
  stop(): Promise<void>;
}

/** How often the worker sweeps: an orphan keeps its GPUs at most this long past a missed stop. */
export const INSTANCE_SWEEP_INTERVAL_MS = 5 * 60_000;

/**
 * Sweeps at once (the worker is starting: whatever ended while none ran) and then every few minutes
 * (a workflow terminated from the Temporal UI runs no activity that would stop its process). Sweeps
 * never overlap; a failed one is logged and the next tries again.
 */
export function startInstanceSweeper(
  runners: Partial<Record<RunnerKind, InstanceRunner>>,
  deps: InstanceSweepDependencies & { intervalMs?: number },
): InstanceSweeper {
  let running: Promise<void> = Promise.resolve();
  const sweepNow = () => {
    running = running.then(async () => {
      try {
        await sweepInstances(runners, deps);
      } catch (error) {
        deps.logger?.error({ err: error }, 'sweep of instance processes failed; the next one tries again');
      }
    });
  };
  sweepNow();
  const timer = setInterval(sweepNow, deps.intervalMs ?? INSTANCE_SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
