// The training Job: its names, labels and annotations, the pod's extra environment, and the
// builder that reads deploy/training-job.yaml and fills in one run's batch/v1 Job.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { V1EnvVar, V1Job } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { projectPath } from '../../../runtime/paths';
import { TRAINER_ENV, type TrainingJobSpec } from '../types';
import { KubernetesRunnerError, messageOf } from './api-errors';
import type { KubernetesClient } from './client';
import { runTag } from '../../../workflows/names';

export const DEFAULT_TRAINING_JOB_TEMPLATE = projectPath('deploy', 'training-job.yaml');
export const TRAINER_CONTAINER = 'trainer';
export const CHECKPOINTS_VOLUME = 'checkpoints';
export const RUN_ID_LABEL = 'computatrum.io/run-id';
export const RUN_ID_ANNOTATION = 'computatrum.io/run-id';
export const METRICS_ANNOTATION = 'computatrum.io/metrics';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const KUEUE_QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';
export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
/** Set by the Job controller on every pod it creates (Kubernetes 1.27+). */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

/** Environment a Kubernetes trainer pod gets beyond the trainer contract, so it moves checkpoints itself. */
export const KUBERNETES_TRAINER_ENV = {
  baseRef: 'COMPUTATRUM_BASE_REF',
  /** The feedback datasets to pull and learn from, `repo@digest` separated by spaces. */
  datasetRefs: 'COMPUTATRUM_DATASET_REFS',
  outputRef: 'COMPUTATRUM_OUTPUT_REF',
  registryUrl: 'COMPUTATRUM_REGISTRY_URL',
} as const;

export interface StoreRegistrySettings {
  /** The OCI registry the pod pulls its base from and pushes its output to (COMPUTATRUM_REGISTRY_URL). */
  url: string;
  /** A Secret whose keys (COMPUTATRUM_REGISTRY_USERNAME, COMPUTATRUM_REGISTRY_PASSWORD) become the pod's env. */
  credentialsSecret?: string;
}

/**
 * `<prefix>-<id>` as a DNS label (starting with the prefix's letter, so it also fits a Service name),
 * stable for an id, with a hash suffix whenever the id had to be changed to fit.
 */
export function kubernetesName(prefix: string, id: string): string {
  const wanted = `${prefix}-${id}`;
  const readable = wanted
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/-+$/, '');
  if (readable === wanted && readable.length <= 63) return readable;
  const hash = createHash('sha256').update(id).digest('hex').slice(0, 8);
  return `${readable.slice(0, 63 - hash.length - 1).replace(/-+$/, '')}-${hash}`;
}

export const trainingJobName = (runId: string): string => kubernetesName('train', runId);

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The id when a label value can hold it; `name` (its resource name) otherwise (an annotation keeps the exact id). */
export function labelValue(id: string, name: string): string {
  return LABEL_VALUE.test(id) && id.length <= 63 ? id : name;
}

/** The tag the pod pushes a run's output under: the run's tag. */
export const outputReference = runTag;

/** Parses the Job template at `templatePath`; buildTrainingJob checks its shape. */
export async function readTrainingJobTemplate(k8s: KubernetesClient, templatePath: string): Promise<V1Job> {
  try {
    return k8s.loadYaml<V1Job>(await readFile(templatePath, 'utf8'));
  } catch (error) {
    throw new KubernetesRunnerError(`cannot read the training Job template ${templatePath}: ${messageOf(error)}`);
  }
}

export interface TrainingJobSettings {
  name: string;
  namespace: string;
  secondsLeft: number;
  queueName?: string;
  storeRegistry?: StoreRegistrySettings;
  checkpointClaim?: string;
  /** Named in errors about the template. */
  templatePath?: string;
}

/** Fills the run-specific fields of a freshly parsed template, in place, and returns it. */
export function buildTrainingJob(template: V1Job, spec: TrainingJobSpec, settings: TrainingJobSettings): V1Job {
  const where = settings.templatePath ?? 'the training Job template';
  if (template?.apiVersion !== 'batch/v1' || template.kind !== 'Job') {
    throw new KubernetesRunnerError(`${where} must be a batch/v1 Job (apiVersion: batch/v1, kind: Job)`);
  }
  const podSpec = template.spec?.template?.spec;
  const trainer = podSpec?.containers?.find((container) => container.name === TRAINER_CONTAINER);
  if (!template.spec || !podSpec || !trainer) {
    throw new KubernetesRunnerError(
      `${where} has no container named "${TRAINER_CONTAINER}" in spec.template.spec.containers: the runner fills that one`,
    );
  }
  if (podSpec.restartPolicy !== 'Never') {
    throw new KubernetesRunnerError(
      `${where} must set spec.template.spec.restartPolicy: Never (podFailurePolicy requires it)`,
    );
  }
  const checkpointMount = trainer.volumeMounts?.find((mount) => mount.name === CHECKPOINTS_VOLUME);
  const checkpointVolume = podSpec.volumes?.find((volume) => volume.name === CHECKPOINTS_VOLUME);
  if (!checkpointMount || !checkpointVolume) {
    throw new KubernetesRunnerError(
      `${where} needs a volume named "${CHECKPOINTS_VOLUME}" mounted in the trainer: a recreated pod resumes from it`,
    );
  }

  const runLabels = {
    [MANAGED_BY_LABEL]: 'computatrum',
    [RUN_ID_LABEL]: labelValue(spec.runId, trainingJobName(spec.runId)),
  };
  const jobLabels: Record<string, string> = { ...template.metadata?.labels, ...runLabels };
  if (settings.queueName) jobLabels[KUEUE_QUEUE_LABEL] = settings.queueName;
  template.metadata = {
    ...template.metadata,
    name: settings.name,
    namespace: settings.namespace,
    labels: jobLabels,
    annotations: { ...template.metadata?.annotations, [RUN_ID_ANNOTATION]: spec.runId },
  };
  template.spec.activeDeadlineSeconds = settings.secondsLeft;
  // Kueue admits a queued Job by unsuspending it.
  if (settings.queueName) template.spec.suspend = true;
  template.spec.template.metadata = {
    ...template.spec.template.metadata,
    labels: { ...template.spec.template.metadata?.labels, ...runLabels },
  };
  if (spec.gpuType) podSpec.nodeSelector = { ...podSpec.nodeSelector, [GPU_PRODUCT_LABEL]: spec.gpuType };

  if (spec.image) trainer.image = spec.image;
  if (!trainer.image)
    throw new KubernetesRunnerError(`the run names no image and ${where} has none for the trainer container`);
  if (spec.command) {
    trainer.command = spec.command;
    delete trainer.args;
  }
  const limits: Record<string, string> = { ...trainer.resources?.limits };
  const requests: Record<string, string> = { ...trainer.resources?.requests };
  if (spec.gpus > 0) limits[GPU_RESOURCE] = String(spec.gpus);
  else delete limits[GPU_RESOURCE];
  // Extended resources need requests equal to limits; leaving them out lets Kubernetes copy the limit.
  delete requests[GPU_RESOURCE];
  trainer.resources = { ...trainer.resources, limits, requests };

  trainer.env = mergeEnv(trainer.env, spec.env, trainerEnv(spec, settings));
  if (settings.storeRegistry?.credentialsSecret) {
    trainer.envFrom = [...(trainer.envFrom ?? []), { secretRef: { name: settings.storeRegistry.credentialsSecret } }];
  }
  checkpointMount.subPath = `runs/${settings.name}`;
  if (settings.checkpointClaim) checkpointVolume.persistentVolumeClaim = { claimName: settings.checkpointClaim };
  return template;
}

function trainerEnv(spec: TrainingJobSpec, settings: TrainingJobSettings): Record<string, string | undefined> {
  return {
    [TRAINER_ENV.runId]: spec.runId,
    [TRAINER_ENV.gpus]: String(spec.gpus),
    [TRAINER_ENV.maxSeconds]: String(settings.secondsLeft),
    [KUBERNETES_TRAINER_ENV.baseRef]: spec.base ? `${spec.base.repo}@${spec.base.digest}` : undefined,
    [KUBERNETES_TRAINER_ENV.datasetRefs]: spec.datasets?.length
      ? spec.datasets.map((d) => `${d.repo}@${d.digest}`).join(' ')
      : undefined,
    [KUBERNETES_TRAINER_ENV.outputRef]: `${spec.output.repo}:${outputReference(spec.runId)}`,
    [KUBERNETES_TRAINER_ENV.registryUrl]: settings.storeRegistry?.url,
  };
}

/** Template env, then the run's, then the runner's: later names win, undefined removes. */
function mergeEnv(
  template: V1EnvVar[] | undefined,
  ...layers: (Record<string, string | undefined> | undefined)[]
): V1EnvVar[] {
  const merged = new Map((template ?? []).map((variable) => [variable.name, variable]));
  for (const layer of layers) {
    for (const [name, value] of Object.entries(layer ?? {})) {
      if (value === undefined) merged.delete(name);
      else merged.set(name, { name, value });
    }
  }
  return [...merged.values()];
}
