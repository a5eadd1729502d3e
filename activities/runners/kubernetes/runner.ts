// KubernetesJobRunner, the TrainingRunner that runs each training run as one Kubernetes Job at a
// time: it creates the run's Job (or adopts the one an earlier worker created), carries usage
// between attempts, and hands the Job to the monitor.
import type { BatchV1Api, KubeConfig, V1Job } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import {
  PreemptedError,
  type RunnerContext,
  type TrainingJobSpec,
  type TrainingOutcome,
  type TrainingProgress,
  type TrainingRunner,
} from '../types';
import { KubernetesRunnerError, apiStatus, explainApiError } from './api-errors';
import { loadKubernetesClient } from './client';
import {
  DEFAULT_TRAINING_JOB_TEMPLATE,
  RUN_ID_ANNOTATION,
  RUN_ID_LABEL,
  buildTrainingJob,
  readTrainingJobTemplate,
  trainingJobName,
  type StoreRegistrySettings,
} from './job';
import { TrainingJobMonitor, type KubernetesRunnerState } from './monitor';

export interface KubernetesJobRunnerOptions {
  kubeConfig: KubeConfig;
  /** Where training Jobs are created; deploy/kustomize/base/rbac.yaml grants the runner its rights there. */
  namespace: string;
  /** Path of the Job template; deploy/training-job.yaml when absent. */
  template?: string;
  /** Kueue LocalQueue: labels the Job and creates it suspended for Kueue to admit. */
  queueName?: string;
  storeRegistry?: StoreRegistrySettings;
  /** PersistentVolumeClaim for checkpoints; the template's claim when absent. */
  checkpointClaim?: string;
  /** How often usage is reported and the cost cap checked while nothing changes (default 15 s). */
  pollIntervalMs?: number;
  /** Clock for usage, in ms since the epoch (tests inject one). */
  now?: () => number;
}

/**
 * Runs each training run as one Kubernetes Job at a time. A Job that disappears is a preemption
 * (the workflow retries and a new Job resumes from the checkpoint volume); a worker restart adopts
 * the run's existing Job; usage already counted travels in progress.runner so no Job is counted twice.
 */
export class KubernetesJobRunner implements TrainingRunner {
  readonly kind = 'kubernetes' as const;
  private readonly templatePath: string;
  private readonly pollIntervalMs: number;
  private readonly now: () => number;

  constructor(private readonly options: KubernetesJobRunnerOptions) {
    this.templatePath = options.template ?? DEFAULT_TRAINING_JOB_TEMPLATE;
    this.pollIntervalMs = options.pollIntervalMs ?? 15_000;
    this.now = options.now ?? Date.now;
  }

  async run(spec: TrainingJobSpec, context: RunnerContext): Promise<TrainingOutcome> {
    const k8s = await loadKubernetesClient();
    const { kubeConfig, namespace } = this.options;
    const name = trainingJobName(spec.runId);
    const carried = carriedState(context.resumeFrom, name);
    const carriedTotal = context.resumeFrom?.gpuSeconds ?? 0;
    const firstStartedAt = carried?.firstStartedAt ?? this.now();
    if (context.signal.aborted) {
      return { state: 'cancelled', progress: { ...context.resumeFrom, gpuSeconds: carriedTotal } };
    }

    const elapsedSeconds = Math.floor((this.now() - firstStartedAt) / 1000);
    // A Job needs a positive deadline; one already past fails at once with DeadlineExceeded.
    const secondsLeft = Math.max(1, spec.maxDurationSeconds - elapsedSeconds);
    const body = buildTrainingJob(await readTrainingJobTemplate(k8s, this.templatePath), spec, {
      name,
      namespace,
      secondsLeft,
      queueName: this.options.queueName,
      storeRegistry: this.options.storeRegistry,
      checkpointClaim: this.options.checkpointClaim,
      templatePath: this.templatePath,
    });

    const batch = kubeConfig.makeApiClient(k8s.BatchV1Api);
    const explain = (error: unknown, action: string) => explainApiError(error, action, kubeConfig, namespace);
    const { job, adopted } = await this.createOrAdopt(
      batch,
      body,
      spec,
      { ...context.resumeFrom, gpuSeconds: carriedTotal },
      explain,
    );
    const jobUid = job.metadata?.uid;
    const sameJobAsCarried = adopted && carried !== undefined && carried.jobUid === jobUid;
    // The adopted Job's own usage is recounted from its startTime, so only what came before it is carried.
    const countedGpuSeconds = sameJobAsCarried ? carried.countedGpuSeconds : carriedTotal;
    const previousAttempt = context.resumeFrom?.attempt ?? 0;
    context.log.info(
      { job: name, namespace, adopted, countedGpuSeconds },
      adopted ? 'adopted the existing Kubernetes Job of this run' : 'created Kubernetes Job',
    );

    const monitor = new TrainingJobMonitor({
      k8s,
      kubeConfig,
      batch,
      core: kubeConfig.makeApiClient(k8s.CoreV1Api),
      namespace,
      spec,
      context,
      now: this.now,
      pollIntervalMs: this.pollIntervalMs,
      explain,
      baseProgress: definedOnly({
        step: context.resumeFrom?.step,
        lastCheckpoint: context.resumeFrom?.lastCheckpoint,
        loss: context.resumeFrom?.loss,
        attempt: sameJobAsCarried ? Math.max(previousAttempt, 1) : previousAttempt + 1,
      }),
      state: { job: name, jobUid, countedGpuSeconds, firstStartedAt },
    });
    return monitor.run(job);
  }

  /** Creates the run's Job, or adopts the one an earlier worker created for the same run (409). */
  private async createOrAdopt(
    batch: BatchV1Api,
    body: V1Job,
    spec: TrainingJobSpec,
    progressSoFar: TrainingProgress,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
  ): Promise<{ job: V1Job; adopted: boolean }> {
    const { namespace } = this.options;
    const name = body.metadata!.name!;
    try {
      return { job: await batch.createNamespacedJob({ namespace, body }), adopted: false };
    } catch (error) {
      if (apiStatus(error) !== 409) throw explain(error, `create Job ${name}`);
    }
    let job: V1Job;
    try {
      job = await batch.readNamespacedJob({ name, namespace });
    } catch (error) {
      if (apiStatus(error) !== 404) throw explain(error, `read Job ${name}`);
      throw new PreemptedError(
        `Job ${name} in namespace ${namespace} disappeared while this worker adopted it: the run continues in a new Job`,
        progressSoFar,
      );
    }
    assertOwnedBy(job, spec.runId, namespace);
    return { job, adopted: true };
  }
}

function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter((entry) => entry[1] !== undefined)) as T;
}

function carriedState(resumeFrom: TrainingProgress | undefined, name: string): KubernetesRunnerState | undefined {
  const runner = resumeFrom?.runner;
  if (
    !runner ||
    runner.job !== name ||
    typeof runner.countedGpuSeconds !== 'number' ||
    typeof runner.firstStartedAt !== 'number'
  )
    return undefined;
  return {
    job: name,
    jobUid: typeof runner.jobUid === 'string' ? runner.jobUid : undefined,
    countedGpuSeconds: runner.countedGpuSeconds,
    firstStartedAt: runner.firstStartedAt,
  };
}

function assertOwnedBy(job: V1Job, runId: string, namespace: string): void {
  const owner = job.metadata?.annotations?.[RUN_ID_ANNOTATION] ?? job.metadata?.labels?.[RUN_ID_LABEL];
  if (owner === runId) return;
  const name = job.metadata?.name;
  throw new KubernetesRunnerError(
    `Job ${name} in namespace ${namespace} already exists and belongs to ${owner ? `run ${owner}` : 'no computatrum run'}, not run ${runId}: ` +
      `delete it (kubectl delete job ${name} -n ${namespace}) and retry the run`,
  );
}
