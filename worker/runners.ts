// The runners a worker offers. Training: always `local` (child processes on this host, the tiny
// trainer by default), and `kubernetes` when a namespace is configured (COMPUTATRUM_KUBE_NAMESPACE).
// Instances: `local` (detached processes on this host, the tiny model's server by default), and
// `kubernetes` (a Deployment and a Service each) when a namespace and an instance image
// (COMPUTATRUM_INSTANCE_IMAGE) are configured.
import path from 'node:path';
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
    fetchBase: async (base, dir) => void (await materializeCheckpoint(options.store, base.repo, base.digest, dir)),
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
    // The instance pod pulls its checkpoint from the daemon's registry (the runner refuses a layout store).
    runners.kubernetes = new KubernetesInstanceRunner({
      kubeConfig,
      namespace: kube.namespace,
      image: kube.instanceImage,
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
