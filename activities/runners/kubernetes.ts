// Runs a training run as a Kubernetes batch/v1 Job built from deploy/training-job.yaml, watches it
// to an outcome and counts its GPU-seconds. The pod pulls its base and pushes its output itself.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { BatchV1Api, CoreV1Api, KubeConfig, V1EnvVar, V1Job, V1JobCondition } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { Logger } from 'pino';
import { projectPath } from '../../runtime/paths';
import {
  PreemptedError,
  TRAINER_ENV,
  TrainerFailedError,
  type RunnerContext,
  type TrainingJobSpec,
  type TrainingOutcome,
  type TrainingProgress,
  type TrainingRunner,
} from './types';

type KubernetesClient = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

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
  outputRef: 'COMPUTATRUM_OUTPUT_REF',
  registryUrl: 'COMPUTATRUM_REGISTRY_URL',
} as const;

const LOG_TAIL_LINES = 50;
/** The API server ends a watch after this long; reopening it bounds how stale a silent connection can get. */
const WATCH_TIMEOUT_SECONDS = 300;
const MAX_RETRY_DELAY_MS = 30_000;

let kubernetesClient: Promise<KubernetesClient> | undefined;

/** @kubernetes/client-node is an ES module: import() loads it from this CommonJS project on any Node 20. */
export function loadKubernetesClient(): Promise<KubernetesClient> {
  kubernetesClient ??= import('@kubernetes/client-node');
  return kubernetesClient;
}

/** A misconfiguration or an API failure, with what to do about it. */
export class KubernetesRunnerError extends Error {
  override name = 'KubernetesRunnerError';
  constructor(
    message: string,
    /** The HTTP status the API answered, when it answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface StoreRegistrySettings {
  /** The OCI registry the pod pulls its base from and pushes its output to (COMPUTATRUM_REGISTRY_URL). */
  url: string;
  /** A Secret whose keys (COMPUTATRUM_REGISTRY_USERNAME, COMPUTATRUM_REGISTRY_PASSWORD) become the pod's env. */
  credentialsSecret?: string;
}

export interface KubernetesJobRunnerOptions {
  kubeConfig: KubeConfig;
  /** Where training Jobs are created; deploy/training-rbac.yaml grants the runner its rights there. */
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

/** What progress.runner carries between attempts of one run. */
export interface KubernetesRunnerState {
  job: string;
  jobUid?: string;
  /** GPU-seconds of the run's earlier Jobs, not counting `jobUid`'s own. */
  countedGpuSeconds: number;
  /** When the run's first Job was created (ms), so later Jobs get only the time left. */
  firstStartedAt: number;
}

/** A DNS-1123 label, stable for a run id, with a hash suffix whenever the id had to be changed to fit. */
export function trainingJobName(runId: string): string {
  const wanted = `train-${runId}`;
  const readable = wanted
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/-+$/, '');
  if (readable === wanted && readable.length <= 63) return readable;
  const hash = createHash('sha256').update(runId).digest('hex').slice(0, 8);
  return `${readable.slice(0, 63 - hash.length - 1).replace(/-+$/, '')}-${hash}`;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The run id when a label value can hold it; the Job name otherwise (the annotation keeps the exact id). */
function runIdLabelValue(runId: string): string {
  return LABEL_VALUE.test(runId) && runId.length <= 63 ? runId : trainingJobName(runId);
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
    throw new KubernetesRunnerError(`${where} has no container named "${TRAINER_CONTAINER}" in spec.template.spec.containers: the runner fills that one`);
  }
  if (podSpec.restartPolicy !== 'Never') {
    throw new KubernetesRunnerError(`${where} must set spec.template.spec.restartPolicy: Never (podFailurePolicy requires it)`);
  }
  const checkpointMount = trainer.volumeMounts?.find((mount) => mount.name === CHECKPOINTS_VOLUME);
  const checkpointVolume = podSpec.volumes?.find((volume) => volume.name === CHECKPOINTS_VOLUME);
  if (!checkpointMount || !checkpointVolume) {
    throw new KubernetesRunnerError(`${where} needs a volume named "${CHECKPOINTS_VOLUME}" mounted in the trainer: a recreated pod resumes from it`);
  }

  const runLabels = { [MANAGED_BY_LABEL]: 'computatrum', [RUN_ID_LABEL]: runIdLabelValue(spec.runId) };
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
  if (!trainer.image) throw new KubernetesRunnerError(`the run names no image and ${where} has none for the trainer container`);
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
    [KUBERNETES_TRAINER_ENV.outputRef]: `${spec.output.repo}:${outputReference(spec.runId)}`,
    [KUBERNETES_TRAINER_ENV.registryUrl]: settings.storeRegistry?.url,
  };
}

/** Template env, then the run's, then the runner's: later names win, undefined removes. */
function mergeEnv(template: V1EnvVar[] | undefined, ...layers: (Record<string, string | undefined> | undefined)[]): V1EnvVar[] {
  const merged = new Map((template ?? []).map((variable) => [variable.name, variable]));
  for (const layer of layers) {
    for (const [name, value] of Object.entries(layer ?? {})) {
      if (value === undefined) merged.delete(name);
      else merged.set(name, { name, value });
    }
  }
  return [...merged.values()];
}

const outputReference = (runId: string): string => `run-${runId}`;

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
    const body = buildTrainingJob(await this.readTemplate(k8s), spec, {
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
    const { job, adopted } = await this.createOrAdopt(batch, body, spec, { ...context.resumeFrom, gpuSeconds: carriedTotal }, explain);
    const jobUid = job.metadata?.uid;
    const sameJobAsCarried = adopted && carried !== undefined && carried.jobUid === jobUid;
    // The adopted Job's own usage is recounted from its startTime, so only what came before it is carried.
    const countedGpuSeconds = sameJobAsCarried ? carried.countedGpuSeconds : carriedTotal;
    const previousAttempt = context.resumeFrom?.attempt ?? 0;
    context.log.info({ job: name, namespace, adopted, countedGpuSeconds }, adopted ? 'adopted the existing Kubernetes Job of this run' : 'created Kubernetes Job');

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
      throw new PreemptedError(`Job ${name} in namespace ${namespace} disappeared while this worker adopted it: the run continues in a new Job`, progressSoFar);
    }
    assertOwnedBy(job, spec.runId, namespace);
    return { job, adopted: true };
  }

  private async readTemplate(k8s: KubernetesClient): Promise<V1Job> {
    try {
      return k8s.loadYaml<V1Job>(await readFile(this.templatePath, 'utf8'));
    } catch (error) {
      throw new KubernetesRunnerError(`cannot read the training Job template ${this.templatePath}: ${messageOf(error)}`);
    }
  }
}

function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter((entry) => entry[1] !== undefined)) as T;
}

function carriedState(resumeFrom: TrainingProgress | undefined, name: string): KubernetesRunnerState | undefined {
  const runner = resumeFrom?.runner;
  if (!runner || runner.job !== name || typeof runner.countedGpuSeconds !== 'number' || typeof runner.firstStartedAt !== 'number') return undefined;
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
class TrainingJobMonitor {
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
    throw new TrainerFailedError(logTail ? `${failure}\nlast ${LOG_TAIL_LINES} log lines of the trainer:\n${logTail}` : failure, progress);
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
      const newest = [...pods.items].sort((a, b) => (toMillis(a.metadata?.creationTimestamp) ?? 0) - (toMillis(b.metadata?.creationTimestamp) ?? 0)).at(-1);
      const podName = newest?.metadata?.name;
      if (!podName) return undefined;
      const log = await core.readNamespacedPodLog({ name: podName, namespace, container: TRAINER_CONTAINER, tailLines: LOG_TAIL_LINES });
      return log.trimEnd() || undefined;
    } catch (error) {
      context.log.warn({ job: this.name, err: explain(error, `read the logs of Job ${this.name}'s pod`) }, 'no trainer log for the failed Job');
      return undefined;
    }
  }
}

/**
 * The Job's latest state from a watch on its name. A watch that ends is reopened from the last
 * resource version; one that fails or expires (410) relists first. 401/403 stop the run.
 */
class JobWatch {
  latest: V1Job;
  /** The Job was deleted, or a relist no longer finds it. */
  gone = false;
  failure?: KubernetesRunnerError;
  private resourceVersion?: string;
  private controller?: AbortController;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private expired = false;
  private openedAt = 0;
  private quickEnds = 0;
  private readonly uid?: string;
  private readonly log: Logger;

  constructor(
    private readonly settings: MonitorSettings,
    created: V1Job,
    private readonly onChange: () => void,
  ) {
    this.latest = created;
    this.uid = created.metadata?.uid;
    this.resourceVersion = created.metadata?.resourceVersion;
    this.log = settings.context.log;
  }

  start(): void {
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.controller?.abort();
  }

  private get fieldSelector(): string {
    return `metadata.name=${this.settings.state.job}`;
  }

  private open(): void {
    if (this.stopped) return;
    const { k8s, kubeConfig, namespace } = this.settings;
    this.expired = false;
    this.openedAt = Date.now();
    const query = { fieldSelector: this.fieldSelector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_SECONDS };
    new k8s.Watch(kubeConfig)
      .watch(`/apis/batch/v1/namespaces/${namespace}/jobs`, query, (type, object) => this.onEvent(type, object), (error) => this.onEnd(error))
      .then(
        (controller) => {
          this.controller = controller;
          if (this.stopped) controller.abort();
        },
        (error: unknown) => this.onEnd(error),
      );
  }

  private onEvent(type: string, object: any): void {
    if (type === 'ERROR') {
      this.expired = object?.code === 410;
      if (!this.expired) this.log.warn({ job: this.settings.state.job, status: object }, 'the Job watch reported an error; relisting');
      return;
    }
    const version: string | undefined = object?.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (type === 'BOOKMARK' || object?.metadata?.uid !== this.uid) return;
    this.latest = object as V1Job;
    if (type === 'DELETED') this.gone = true;
    this.onChange();
  }

  private onEnd(error: unknown): void {
    if (this.stopped) return;
    // A watch that ends right after it opened, again and again, backs off instead of spinning.
    this.quickEnds = Date.now() - this.openedAt < 1000 ? this.quickEnds + 1 : 0;
    const status = apiStatus(error);
    if (status === 401 || status === 403) {
      this.fail(this.settings.explain(error, `watch Job ${this.settings.state.job}`));
      return;
    }
    if (error) this.log.warn({ job: this.settings.state.job, err: this.settings.explain(error, 'watch the Job') }, 'the Job watch failed; relisting');
    this.later(error || this.expired ? () => void this.relist() : () => this.open());
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    const { batch, namespace, state } = this.settings;
    try {
      const list = await batch.listNamespacedJob({ namespace, fieldSelector: this.fieldSelector });
      if (this.stopped) return;
      this.resourceVersion = list.metadata?.resourceVersion;
      const job = list.items.find((item) => item.metadata?.uid === this.uid);
      if (job) this.latest = job;
      else this.gone = true;
      this.onChange();
      if (job) this.open();
    } catch (error) {
      const failure = this.settings.explain(error, `list Job ${state.job}`);
      if (failure.status === 401 || failure.status === 403) return this.fail(failure);
      this.log.warn({ job: state.job, err: failure }, 'relisting the Job failed; retrying');
      this.quickEnds += 1;
      this.later(() => void this.relist());
    }
  }

  private later(action: () => void): void {
    if (this.stopped) return;
    const delay = this.quickEnds <= 1 ? 0 : Math.min(this.settings.pollIntervalMs * 2 ** (this.quickEnds - 2), MAX_RETRY_DELAY_MS);
    this.retryTimer = setTimeout(action, delay);
  }

  private fail(failure: KubernetesRunnerError): void {
    this.failure = failure;
    this.onChange();
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
  return job.status?.conditions?.find((condition) => (condition.type === 'Complete' || condition.type === 'Failed') && condition.status === 'True');
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
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1])));
  } catch (error) {
    log.warn({ job: job.metadata?.name, err: error }, `the ${METRICS_ANNOTATION} annotation is not JSON; no metrics recorded`);
    return {};
  }
}

/** The HTTP status of a failed API call (ApiException.code) or watch (statusCode); undefined when none came back. */
function apiStatus(error: unknown): number | undefined {
  const candidate = error as { code?: unknown; statusCode?: unknown } | null | undefined;
  if (typeof candidate?.code === 'number') return candidate.code;
  if (typeof candidate?.statusCode === 'number') return candidate.statusCode;
  return undefined;
}

/** The message of the Status object an API error carries, when it carries one. */
function statusMessage(error: unknown): string | undefined {
  const raw = (error as { body?: unknown } | null)?.body;
  let body = raw;
  if (typeof raw === 'string') {
    try {
      body = JSON.parse(raw);
    } catch {
      return raw.trim() || undefined;
    }
  }
  const message = (body as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

function explainApiError(error: unknown, action: string, kubeConfig: KubeConfig, namespace: string): KubernetesRunnerError {
  const status = apiStatus(error);
  const server = kubeConfig.getCurrentCluster()?.server ?? 'the configured server';
  if (status === 401 || status === 403) {
    return new KubernetesRunnerError(
      `the Kubernetes API at ${server} refused to ${action} (HTTP ${status}): check the service account's RBAC for jobs in namespace ${namespace} ` +
        '(deploy/training-rbac.yaml) and its credentials',
      status,
    );
  }
  if (status === 422) {
    return new KubernetesRunnerError(
      `the Kubernetes API rejected the Job as invalid: ${statusMessage(error) ?? messageOf(error)}; fix the training Job template or the run's settings`,
      status,
    );
  }
  if (status !== undefined) {
    return new KubernetesRunnerError(`the Kubernetes API could not ${action} (HTTP ${status}): ${statusMessage(error) ?? 'no message'}`, status);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if ((error as { name?: unknown } | null)?.name === 'FetchError' || (typeof code === 'string' && /^E[A-Z]/.test(code))) {
    return new KubernetesRunnerError(`cannot reach the Kubernetes API at ${server} to ${action} (${messageOf(error)}): check the kubeconfig's server address and the network to it`);
  }
  return new KubernetesRunnerError(`could not ${action}: ${messageOf(error)}`);
}

function messageOf(error: unknown): string {
  return (error as { message?: unknown } | null)?.message ? String((error as { message: unknown }).message) : String(error);
}

/**
 * A KubeConfig from the pod's service account (inCluster), a kubeconfig file, or else the usual
 * lookup (KUBECONFIG, ~/.kube/config, then in-cluster).
 */
export async function kubeConfigFrom(options: { inCluster?: boolean; kubeconfigPath?: string } = {}): Promise<KubeConfig> {
  const { KubeConfig } = await loadKubernetesClient();
  const kubeConfig = new KubeConfig();
  let source: string;
  if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new KubernetesRunnerError('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): give a kubeconfig file instead of inCluster');
    }
    kubeConfig.loadFromCluster();
    source = 'the in-cluster service account';
  } else if (options.kubeconfigPath) {
    try {
      kubeConfig.loadFromFile(options.kubeconfigPath);
    } catch (error) {
      throw new KubernetesRunnerError(`cannot read the kubeconfig ${options.kubeconfigPath}: ${messageOf(error)}`);
    }
    source = `the kubeconfig ${options.kubeconfigPath}`;
  } else {
    kubeConfig.loadFromDefault();
    source = 'the default kubeconfig (KUBECONFIG or ~/.kube/config)';
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new KubernetesRunnerError(`${source} names no current cluster: set its current-context (kubectl config use-context <name>)`);
  }
  return kubeConfig;
}
