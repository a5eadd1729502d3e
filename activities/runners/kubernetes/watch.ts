// The watch on one Job: a Kubernetes watch on its name, reopened when it ends and relisted when it
// fails or expires, that keeps the Job's latest state for the monitor.
import type { BatchV1Api, KubeConfig, V1Job } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { Logger } from 'pino';
import type { RunnerContext } from '../types';
import { apiStatus, type KubernetesRunnerError } from './api-errors';
import type { KubernetesClient } from './client';

/** The API server ends a watch after this long; reopening it bounds how stale a silent connection can get. */
const WATCH_TIMEOUT_SECONDS = 300;
const MAX_RETRY_DELAY_MS = 30_000;

/** What a JobWatch needs of its monitor's settings. */
export interface JobWatchSettings {
  k8s: KubernetesClient;
  kubeConfig: KubeConfig;
  batch: BatchV1Api;
  namespace: string;
  context: Pick<RunnerContext, 'log'>;
  /** Paces the retries of a watch that keeps ending at once. */
  pollIntervalMs: number;
  explain: (error: unknown, action: string) => KubernetesRunnerError;
  /** state.job: the name of the watched Job. */
  state: { job: string };
}

/**
 * The Job's latest state from a watch on its name. A watch that ends is reopened from the last
 * resource version; one that fails or expires (410) relists first. 401/403 stop the run.
 */
export class JobWatch {
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
    private readonly settings: JobWatchSettings,
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
    const query = {
      fieldSelector: this.fieldSelector,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: WATCH_TIMEOUT_SECONDS,
    };
    new k8s.Watch(kubeConfig)
      .watch(
        `/apis/batch/v1/namespaces/${namespace}/jobs`,
        query,
        (type, object) => this.onEvent(type, object),
        (error) => this.onEnd(error),
      )
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
      if (!this.expired)
        this.log.warn({ job: this.settings.state.job, status: object }, 'the Job watch reported an error; relisting');
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
    if (error)
      this.log.warn(
        { job: this.settings.state.job, err: this.settings.explain(error, 'watch the Job') },
        'the Job watch failed; relisting',
      );
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
    const delay =
      this.quickEnds <= 1 ? 0 : Math.min(this.settings.pollIntervalMs * 2 ** (this.quickEnds - 2), MAX_RETRY_DELAY_MS);
    this.retryTimer = setTimeout(action, delay);
  }

  private fail(failure: KubernetesRunnerError): void {
    this.failure = failure;
    this.onChange();
  }
}
