// The monitor: follows one training Job to its outcome (succeeded, deadline, failed, gone, cancelled
// or cost-capped), counting its GPU-seconds and reporting usage on every change and poll interval.
import type { BatchV1Api, CoreV1Api, KubeConfig, V1Job, V1JobCondition } from '@kubernetes/client-node' with {
  'resolution-mode': 'import',
};
import type { Logger } from 'pino';
import {
  PreemptedError,
  TrainerFailedError,
  type RunnerContext,
  type TrainingJobSpec,
  type TrainingOutcome,
  type TrainingProgress,
} from '../types';
import { apiStatus, type KubernetesRunnerError } from './api-errors';
import type { KubernetesClient } from './client';
import { JOB_NAME_LABEL, METRICS_ANNOTATION, TRAINER_CONTAINER, outputReference } from './job';
import { JobWatch } from './watch';

const LOG_TAIL_LINES = 50;

/** What progress.runner carries between attempts of one run. */
export interface KubernetesRunnerState {
  job: string;
  jobUid?: string;
  /** GPU-seconds of the run's earlier Jobs, not counting `jobUid`'s own. */
  countedGpuSeconds: number;
  /** When the run's first Job was created (ms), so later Jobs get only the time left. */
  firstStartedAt: number;
}

interface MonitorSettings {
  k8s: KubernetesClient;
  kubeConfig: KubeConfig;
  batch: BatchV1Api;
  core: CoreV1Api;
  namespace: string;
  spec: TrainingJobSpec;
  context: RunnerContext;
  now: () => number;
  pollIntervalMs: number;
  explain: (error: unknown, action: string) => KubernetesRunnerError;
  baseProgress: Omit<TrainingProgress, 'gpuSeconds' | 'runner'>;
  state: KubernetesRunnerState;
}

/** Follows one Job to its outcome: reports usage on every change and every poll interval. */
export class TrainingJobMonitor {
  private readonly name: string;

  constructor(private readonly settings: MonitorSettings) {
    this.name = settings.state.job;
  }

  async run(created: V1Job): Promise<TrainingOutcome> {
    const { context, pollIntervalMs, spec } = this.settings;
    const wake = new Wakeup();
    const watch = new JobWatch(this.settings, created, () => wake.notify());
    const timer = setInterval(() => wake.notify(), pollIntervalMs);
    const onAbort = (): void => wake.notify();
    context.signal.addEventListener('abort', onAbort);
    watch.start();
    try {
      for (;;) {
        if (context.signal.aborted) return await this.stop('cancelled', watch);
        if (watch.failure) throw watch.failure;
        const job = watch.latest;
        const finished = finishedCondition(job);
        if (finished) return await this.finish(job, finished);
        if (watch.gone) throw this.preempted(job);
        const progress = this.progress(job);
        context.report(progress);
        if (progress.gpuSeconds >= spec.maxGpuSeconds) return await this.stop('cost-cap', watch);
        await wake.wait();
      }
    } finally {
      clearInterval(timer);
      context.signal.removeEventListener('abort', onAbort);
      watch.stop();
    }
  }

  private progress(job: V1Job): TrainingProgress {
    const { baseProgress, state, spec, now } = this.settings;
    return {
      ...baseProgress,
      gpuSeconds: state.countedGpuSeconds + jobGpuSeconds(job, spec.gpus, now()),
      runner: { ...state },
    };
  }

  private async finish(job: V1Job, condition: V1JobCondition): Promise<TrainingOutcome> {
    const { context, spec, namespace } = this.settings;
    const progress = this.progress(job);
    context.report(progress);
    if (condition.type === 'Complete') {
      return {
        state: 'succeeded',
        progress,
        output: { kind: 'store', repo: spec.output.repo, reference: outputReference(spec.runId) },
        metrics: metricsOf(job, context.log),
      };
    }
    if (condition.reason === 'DeadlineExceeded') {
      context.log.info({ job: this.name, namespace }, 'the training Job reached its activeDeadlineSeconds');
      return { state: 'deadline', progress };
    }
    const logTail = await this.trainerLogTail();
    context.log.error({ job: this.name, namespace, reason: condition.reason, logTail }, 'the training Job failed');
    const failure = `Job ${this.name} in namespace ${namespace} failed (${condition.reason ?? 'no reason given'}): ${condition.message ?? 'no message'}`;
    throw new TrainerFailedError(
      logTail ? `${failure}\nlast ${LOG_TAIL_LINES} log lines of the trainer:\n${logTail}` : failure,
      progress,
    );
  }

  private preempted(job: V1Job): PreemptedError {
    const { context, namespace } = this.settings;
    const progress = this.progress(job);
    context.report(progress);
    return new PreemptedError(
      `Job ${this.name} in namespace ${namespace} disappeared before it finished (deleted outside computatrum, or lost with its nodes): ` +
        'the run continues from its last checkpoint in a new Job',
      progress,
    );
  }

  /** Deletes the Job (its pods go in the background) and ends the run with the usage so far. */
  private async stop(state: 'cancelled' | 'cost-cap', watch: JobWatch): Promise<TrainingOutcome> {
    const { batch, namespace, context, explain } = this.settings;
    watch.stop();
    const progress = this.progress(watch.latest);
    try {
      await batch.deleteNamespacedJob({
        name: this.name,
        namespace,
        propagationPolicy: 'Background',
        // Only this Job: a later attempt's Job of the same name is not ours to delete.
        body: { propagationPolicy: 'Background', preconditions: { uid: this.settings.state.jobUid } },
      });
    } catch (error) {
      const status = apiStatus(error);
      if (status !== 404 && status !== 409) throw explain(error, `delete Job ${this.name}`);
    }
    context.log.info({ job: this.name, namespace, state, gpuSeconds: progress.gpuSeconds }, 'deleted the training Job');
    context.report(progress);
    return { state, progress };
  }

  private async trainerLogTail(): Promise<string | undefined> {
    const { core, namespace, context, explain } = this.settings;
    try {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: `${JOB_NAME_LABEL}=${this.name}` });
      const newest = [...pods.items]
        .sort((a, b) => (toMillis(a.metadata?.creationTimestamp) ?? 0) - (toMillis(b.metadata?.creationTimestamp) ?? 0))
        .at(-1);
      const podName = newest?.metadata?.name;
      if (!podName) return undefined;
      const log = await core.readNamespacedPodLog({
        name: podName,
        namespace,
        container: TRAINER_CONTAINER,
        tailLines: LOG_TAIL_LINES,
      });
      return log.trimEnd() || undefined;
    } catch (error) {
      context.log.warn(
        { job: this.name, err: explain(error, `read the logs of Job ${this.name}'s pod`) },
        'no trainer log for the failed Job',
      );
      return undefined;
    }
  }
}

/** Resolves wait() once per notify(), remembering a notify that came while nobody waited. */
class Wakeup {
  private pending = false;
  private resolve?: () => void;

  notify(): void {
    const resolve = this.resolve;
    this.resolve = undefined;
    if (resolve) resolve();
    else this.pending = true;
  }

  wait(): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.resolve = resolve));
  }
}

function finishedCondition(job: V1Job): V1JobCondition | undefined {
  return job.status?.conditions?.find(
    (condition) => (condition.type === 'Complete' || condition.type === 'Failed') && condition.status === 'True',
  );
}

/** Whole seconds from the Job's start to its end (or `now`), rounded up, times its GPUs. */
export function jobGpuSeconds(job: V1Job, gpus: number, now: number): number {
  const start = toMillis(job.status?.startTime);
  if (start === undefined) return 0;
  const end = toMillis(job.status?.completionTime) ?? toMillis(finishedCondition(job)?.lastTransitionTime) ?? now;
  return Math.max(0, Math.ceil((end - start) / 1000)) * gpus;
}

/** API objects carry Dates, watch events carry RFC 3339 strings. */
function toMillis(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const ms = new Date(value as string).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

function metricsOf(job: V1Job, log: Logger): Record<string, number> {
  const text = job.metadata?.annotations?.[METRICS_ANNOTATION];
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) return {};
    return Object.fromEntries(
      Object.entries(parsed).filter(
        (entry): entry is [string, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]),
      ),
    );
  } catch (error) {
    log.warn(
      { job: job.metadata?.name, err: error },
      `the ${METRICS_ANNOTATION} annotation is not JSON; no metrics recorded`,
    );
    return {};
  }
}
