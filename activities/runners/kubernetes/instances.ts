// The Kubernetes instance runner: an instance (any process serving the OpenAI-compatible API, see
// the instance contract in ../types) as an apps/v1 Deployment of one replica behind a ClusterIP
// Service, both named for the instance. The `instance/<id>` workflow starts, checks and stops it in
// separate activity calls, possibly from a restarted worker: everything the runner needs is on the
// objects themselves (labels, annotations), so a start finds what an earlier one created and adopts
// it when its spec is the same.
//
// The checkpoint reaches the pod read-only, one of two ways:
// - checkpointClaim: a PersistentVolumeClaim this worker also has mounted at checkpointClaimPath; the
//   folder the worker materialized (spec.modelDir) is mounted read-only from it, as a subPath;
// - storeRegistry: an init container pulls `<repo>@<digest>` from the registry into an emptyDir, as
//   the training Job's image pulls its base (COMPUTATRUM_MODEL_REF, COMPUTATRUM_REGISTRY_URL, the
//   credentials Secret), and the server mounts that folder read-only.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Pod,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import pino, { type Logger } from 'pino';
import type { InstanceRunner } from '../../instances';
import { INSTANCE_ENV, INSTANCE_READY_PATH, INSTANCE_STOP_SECONDS, InstanceFailedError } from '../types';
import { KubernetesRunnerError, apiStatus, explainApiError, messageOf } from './api-errors';
import { loadKubernetesClient } from './client';
import {
  GPU_RESOURCE,
  KUBERNETES_TRAINER_ENV,
  kubernetesName,
  labelValue,
  MANAGED_BY_LABEL,
  type StoreRegistrySettings,
} from './job';

export const INSTANCE_LABEL = 'computatrum.io/instance';
/** The exact instance id (a label value cannot always hold it). */
export const INSTANCE_ANNOTATION = 'computatrum.io/instance';
/** A digest of what the Deployment was built from: a start with the same one adopts it. */
export const INSTANCE_SPEC_ANNOTATION = 'computatrum.io/instance-spec';
export const INSTANCE_CONTAINER = 'instance';
export const PULL_CONTAINER = 'pull-model';
export const MODEL_VOLUME = 'model';
/** Where the pod sees the checkpoint (COMPUTATRUM_MODEL_DIR). */
export const POD_MODEL_DIR = '/var/lib/computatrum/model';
/** The port the instance listens on (PORT) and the Service's target. */
export const INSTANCE_PORT = 8000;
export const SERVICE_PORT = 80;
/** Beyond INSTANCE_STOP_SECONDS: the kubelet's own time to deliver SIGTERM and reap the container. */
export const STOP_MARGIN_SECONDS = 5;

/** Environment of the pull init container beyond COMPUTATRUM_MODEL_DIR. */
export const KUBERNETES_PULL_ENV = {
  modelRef: 'COMPUTATRUM_MODEL_REF',
  registryUrl: KUBERNETES_TRAINER_ENV.registryUrl,
  store: 'COMPUTATRUM_STORE',
} as const;

/** The computatrum image's own CLI: `checkpoints pull` verifies every file as it writes it. */
export const DEFAULT_PULL_COMMAND = [
  'node',
  'bin/computatrum.js',
  'checkpoints',
  'pull',
  `$(${KUBERNETES_PULL_ENV.modelRef})`,
  `$(${INSTANCE_ENV.modelDir})`,
  '--from',
  `$(${KUBERNETES_PULL_ENV.registryUrl})`,
];

/**
 * Written by the instance activities (activities/instances.ts) into a materialized model folder:
 * the checkpoint's manifest digest, which the pod pulls by (a tag may have moved since).
 */

/** Waiting reasons of a container that will not get better by waiting. */
const STUCK_REASONS = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
const LOG_TAIL_LINES = 30;

export interface KubernetesInstanceRunnerOptions {
  /** A KubeConfig, or one still loading (the worker builds its runners synchronously). */
  kubeConfig: KubeConfig | Promise<KubeConfig>;
  /** Where instances' Deployments and Services are created. */
  namespace: string;
  /** The instance server's container image; its entrypoint serves when a spec names no command. */
  image: string;
  /** A PersistentVolumeClaim holding the instances' model folders (mounted read-only, one subPath each). */
  checkpointClaim?: string;
  /** Where this worker has checkpointClaim mounted: an instance's subPath is its modelDir relative to it. */
  checkpointClaimPath?: string;
  /** Without checkpointClaim: the registry an init container pulls the checkpoint from. */
  storeRegistry?: StoreRegistrySettings;
  /** The pull init container's image (default: `image`); it must carry the pull command. */
  pullImage?: string;
  /** The pull init container's command (default: DEFAULT_PULL_COMMAND, the computatrum CLI). */
  pullCommand?: string[];
  /** How long a new instance gets to have a ready replica (default 8 minutes). */
  readyTimeoutMs?: number;
  /** How often the Deployment is read while waiting (default 2 s). */
  pollIntervalMs?: number;
  /** The endpoint the gateway calls (default: http://<service>.<namespace>.svc:80, in the cluster). */
  endpointFor?: (service: string, namespace: string) => string;
  logger?: Logger;
}

/** What an instance is built from; its digest is the spec annotation. */
interface BuiltSpec {
  image: string;
  command?: string[];
  modelName: string;
  gpus: number;
  model: { claim: string; subPath: string } | { ref: string; registry: string; pullImage: string };
}

/** The Deployment's and Service's name: a DNS-1035 label (a Service name must start with a letter). */
export const instanceResourceName = (instanceId: string): string => kubernetesName('inst', instanceId);

const instanceLabelValue = (instanceId: string): string => labelValue(instanceId, instanceResourceName(instanceId));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls for one id run one after another in this process, so a retried start never creates twice. */
const busy = new Map<string, Promise<unknown>>();

export class KubernetesInstanceRunner implements InstanceRunner {
  readonly kind = 'kubernetes' as const;
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly kubeConfig: Promise<KubeConfig>;
  /** Why an instance this worker watched went away: check reports it once the objects are gone. */
  private readonly lastReasons = new Map<string, string>();

  constructor(private readonly options: KubernetesInstanceRunnerOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.readyTimeoutMs = options.readyTimeoutMs ?? 8 * 60_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 2_000;
    if (options.checkpointClaim ? !options.checkpointClaimPath : !options.storeRegistry) {
      throw new KubernetesRunnerError(
        options.checkpointClaim
          ? `the checkpoint claim ${options.checkpointClaim} needs checkpointClaimPath: where this worker has it mounted`
          : 'kubernetes instances need a checkpoint claim or a registry (COMPUTATRUM_STORE=registry) to get their checkpoint from',
      );
    }
    this.kubeConfig = Promise.resolve(options.kubeConfig);
    // Surfaces at the first call; not an unhandled rejection before it.
    this.kubeConfig.catch(() => undefined);
  }

  private async clients() {
    const k8s = await loadKubernetesClient();
    const kubeConfig = await this.kubeConfig;
    const { namespace } = this.options;
    return {
      k8s,
      apps: kubeConfig.makeApiClient(k8s.AppsV1Api),
      core: kubeConfig.makeApiClient(k8s.CoreV1Api),
      explain: (error: unknown, action: string) => explainInstanceError(error, action, kubeConfig, namespace),
    };
  }

  private serially<T>(id: string, task: () => Promise<T>): Promise<T> {
    const key = `${this.options.namespace}/${id}`;
    const result = (busy.get(key) ?? Promise.resolve()).catch(() => undefined).then(task);
    busy.set(key, result);
    void result.finally(() => busy.get(key) === result && busy.delete(key)).catch(() => undefined);
    return result;
  }

  private endpoint(name: string): string {
    const { namespace, endpointFor } = this.options;
    return endpointFor ? endpointFor(name, namespace) : `http://${name}.${namespace}.svc:${SERVICE_PORT}`;
  }

  start(spec: Parameters<InstanceRunner['start']>[0]): Promise<{ endpoint: string; adopted: boolean }> {
    return this.serially(spec.instanceId, () => this.startNow(spec));
  }

  private async startNow(
    spec: Parameters<InstanceRunner['start']>[0],
  ): Promise<{ endpoint: string; adopted: boolean }> {
    const { namespace } = this.options;
    const id = spec.instanceId;
    const name = instanceResourceName(id);
    const { apps, core, explain } = await this.clients();
    const built = await this.buildSpec(spec);
    const deployment = this.deploymentFor(id, name, spec, built);
    this.lastReasons.delete(id);

    let adopted = false;
    const existing = await this.readDeployment(apps, name, explain);
    if (existing) {
      this.assertOwned(existing, id, 'Deployment');
      const same =
        !existing.metadata?.deletionTimestamp &&
        existing.metadata?.annotations?.[INSTANCE_SPEC_ANNOTATION] ===
          deployment.metadata!.annotations![INSTANCE_SPEC_ANNOTATION];
      if (same) {
        adopted = true;
        this.log.info({ instanceId: id, deployment: name, namespace }, 'instance adopted');
      } else {
        this.log.info(
          { instanceId: id, deployment: name, namespace },
          'instance spec changed: replacing the Deployment',
        );
        await this.deleteDeployment(apps, name, explain);
        if (!(await this.waitDeploymentGone(apps, name, explain, INSTANCE_STOP_SECONDS + STOP_MARGIN_SECONDS + 60))) {
          throw new KubernetesRunnerError(
            `the old Deployment ${name} in namespace ${namespace} is still being deleted (its pods have not stopped): the start is retried`,
          );
        }
      }
    }
    if (!adopted) {
      try {
        await apps.createNamespacedDeployment({ namespace, body: deployment });
      } catch (error) {
        // Another worker created it between the read and now: the next start adopts it.
        throw explain(error, `create Deployment ${name}`);
      }
      this.log.info({ instanceId: id, deployment: name, namespace, gpus: spec.gpus }, 'instance Deployment created');
    }
    await this.ensureService(core, id, name, explain);

    const failure = await this.waitReady(apps, core, id, name, explain);
    if (failure) {
      await this.stopNow(id);
      this.lastReasons.set(id, failure.reason);
      throw new InstanceFailedError(
        `instance ${id} (Deployment ${name} in ${namespace}) ${failure.reason}`,
        failure.logTail,
      );
    }
    return { endpoint: this.endpoint(name), adopted };
  }

  /** What the Deployment is built from, with the checkpoint's source resolved. */
  private async buildSpec(spec: Parameters<InstanceRunner['start']>[0]): Promise<BuiltSpec> {
    const { checkpointClaim, checkpointClaimPath, storeRegistry, image } = this.options;
    const common = {
      image,
      ...(spec.command?.length ? { command: spec.command } : {}),
      modelName: spec.modelName,
      gpus: spec.gpus,
    };
    if (checkpointClaim && checkpointClaimPath) {
      const subPath = path.relative(path.resolve(checkpointClaimPath), path.resolve(spec.modelDir));
      if (!subPath || subPath.startsWith('..') || path.isAbsolute(subPath)) {
        throw new KubernetesRunnerError(
          `the model folder ${spec.modelDir} is not on the checkpoint claim ${checkpointClaim} (mounted at ${checkpointClaimPath})`,
        );
      }
      return { ...common, model: { claim: checkpointClaim, subPath: subPath.split(path.sep).join('/') } };
    }
    return {
      ...common,
      model: {
        // By digest: a tag may have moved since the instance was launched.
        ref: `${spec.checkpoint.repo}@${spec.checkpoint.digest}`,
        registry: storeRegistry!.url,
        pullImage: this.options.pullImage ?? image,
      },
    };
  }

  private deploymentFor(
    id: string,
    name: string,
    spec: Parameters<InstanceRunner['start']>[0],
    built: BuiltSpec,
  ): V1Deployment {
    const { namespace, storeRegistry } = this.options;
    const labels = {
      'app.kubernetes.io/name': 'computatrum-instance',
      [MANAGED_BY_LABEL]: 'computatrum',
      [INSTANCE_LABEL]: instanceLabelValue(id),
    };
    const specDigest = createHash('sha256').update(JSON.stringify(built)).digest('hex').slice(0, 32);
    const env: V1EnvVar[] = [
      { name: INSTANCE_ENV.modelDir, value: POD_MODEL_DIR },
      { name: INSTANCE_ENV.modelName, value: spec.modelName },
      { name: INSTANCE_ENV.instanceId, value: id },
      { name: INSTANCE_ENV.gpus, value: String(spec.gpus) },
      { name: INSTANCE_ENV.port, value: String(INSTANCE_PORT) },
    ];
    const gpus = { [GPU_RESOURCE]: String(spec.gpus) };
    const modelMount: V1VolumeMount = { name: MODEL_VOLUME, mountPath: POD_MODEL_DIR, readOnly: true };
    let volume: V1Volume;
    const initContainers: V1Container[] = [];
    if ('claim' in built.model) {
      modelMount.subPath = built.model.subPath;
      volume = { name: MODEL_VOLUME, persistentVolumeClaim: { claimName: built.model.claim, readOnly: true } };
    } else {
      volume = { name: MODEL_VOLUME, emptyDir: {} };
      initContainers.push({
        name: PULL_CONTAINER,
        image: built.model.pullImage,
        command: this.options.pullCommand ?? DEFAULT_PULL_COMMAND,
        env: [
          { name: KUBERNETES_PULL_ENV.modelRef, value: built.model.ref },
          { name: KUBERNETES_PULL_ENV.registryUrl, value: built.model.registry },
          // The registry is the CLI's store, so the credentials Secret's login is sent to it.
          { name: KUBERNETES_PULL_ENV.store, value: 'registry' },
          { name: INSTANCE_ENV.modelDir, value: POD_MODEL_DIR },
        ],
        ...(storeRegistry?.credentialsSecret
          ? { envFrom: [{ secretRef: { name: storeRegistry.credentialsSecret } }] }
          : {}),
        volumeMounts: [{ name: MODEL_VOLUME, mountPath: POD_MODEL_DIR }],
      });
    }
    const server: V1Container = {
      name: INSTANCE_CONTAINER,
      image: built.image,
      ...(built.command ? { command: built.command } : {}),
      env,
      ports: [{ name: 'http', containerPort: INSTANCE_PORT, protocol: 'TCP' }],
      resources: { limits: { ...gpus }, requests: { ...gpus } },
      readinessProbe: {
        httpGet: { path: INSTANCE_READY_PATH, port: INSTANCE_PORT },
        periodSeconds: 5,
        timeoutSeconds: 2,
        failureThreshold: 3,
      },
      volumeMounts: [modelMount],
    };
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name,
        namespace,
        labels,
        annotations: { [INSTANCE_ANNOTATION]: id, [INSTANCE_SPEC_ANNOTATION]: specDigest },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { [MANAGED_BY_LABEL]: 'computatrum', [INSTANCE_LABEL]: labels[INSTANCE_LABEL] } },
        // Never two pods at once: each holds the instance's GPUs.
        strategy: { type: 'Recreate' },
        progressDeadlineSeconds: Math.max(1, Math.ceil(this.readyTimeoutMs / 1000)),
        template: {
          metadata: { labels, annotations: { [INSTANCE_ANNOTATION]: id } },
          spec: {
            // The instance may run an operator's or a model's code: no API credentials, no service env.
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: INSTANCE_STOP_SECONDS + STOP_MARGIN_SECONDS,
            ...(initContainers.length ? { initContainers } : {}),
            containers: [server],
            volumes: [volume],
          },
        },
      },
    };
  }

  /** Creates the instance's Service, or keeps the one that is there (ours: the same name and selector). */
  private async ensureService(
    core: CoreV1Api,
    id: string,
    name: string,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
  ): Promise<void> {
    const { namespace } = this.options;
    const body: V1Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name,
        namespace,
        labels: { [MANAGED_BY_LABEL]: 'computatrum', [INSTANCE_LABEL]: instanceLabelValue(id) },
        annotations: { [INSTANCE_ANNOTATION]: id },
      },
      spec: {
        type: 'ClusterIP',
        selector: { [MANAGED_BY_LABEL]: 'computatrum', [INSTANCE_LABEL]: instanceLabelValue(id) },
        ports: [{ name: 'http', port: SERVICE_PORT, targetPort: INSTANCE_PORT, protocol: 'TCP' }],
      },
    };
    try {
      await core.createNamespacedService({ namespace, body });
      return;
    } catch (error) {
      if (apiStatus(error) !== 409) throw explain(error, `create Service ${name}`);
    }
    let existing: V1Service;
    try {
      existing = await core.readNamespacedService({ name, namespace });
    } catch (error) {
      throw explain(error, `read Service ${name}`);
    }
    this.assertOwned(existing, id, 'Service');
  }

  private assertOwned(object: V1Deployment | V1Service, id: string, kind: string): void {
    const owner = object.metadata?.annotations?.[INSTANCE_ANNOTATION];
    if (object.metadata?.labels?.[MANAGED_BY_LABEL] === 'computatrum' && owner === id) return;
    const name = object.metadata?.name;
    const { namespace } = this.options;
    throw new KubernetesRunnerError(
      `${kind} ${name} in namespace ${namespace} already exists and belongs to ${owner ? `instance ${owner}` : 'no computatrum instance'}, not instance ${id}: ` +
        `delete it (kubectl delete ${kind.toLowerCase()} ${name} -n ${namespace}) and start the instance again`,
    );
  }

  /**
   * Polls the Deployment until it has a ready, available replica. Returns why it never will (and the
   * instance's log) when its pod is stuck, its progress deadline passed, it vanished or time ran out.
   */
  private async waitReady(
    apps: AppsV1Api,
    core: CoreV1Api,
    id: string,
    name: string,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
  ): Promise<{ reason: string; logTail: string } | undefined> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      const deployment = await this.readDeployment(apps, name, explain);
      if (!deployment || deployment.metadata?.deletionTimestamp) {
        return { reason: 'was deleted before it was ready', logTail: '' };
      }
      if (isReady(deployment)) return undefined;
      const stalled = deployment.status?.conditions?.find(
        (condition) => condition.type === 'Progressing' && condition.reason === 'ProgressDeadlineExceeded',
      );
      if (stalled) {
        const logTail = await this.logTail(core, id);
        return {
          reason: `did not become ready: ProgressDeadlineExceeded${stalled.message ? ` (${stalled.message})` : ''}`,
          logTail,
        };
      }
      const stuck = await this.stuckPod(core, id);
      if (stuck) return { reason: `cannot start: ${stuck.reason}`, logTail: await this.logTail(core, id, stuck) };
      if (Date.now() >= deadline) {
        return {
          reason: `had no ready replica (GET ${INSTANCE_READY_PATH} answering 200) within ${this.readyTimeoutMs} ms`,
          logTail: await this.logTail(core, id),
        };
      }
      await sleep(Math.min(this.pollIntervalMs, Math.max(deadline - Date.now(), 0)));
    }
  }

  /** The instance's pods whose container waits for a reason waiting will not mend; read errors: none. */
  private async stuckPod(
    core: CoreV1Api,
    id: string,
  ): Promise<{ pod: V1Pod; container: string; reason: string } | undefined> {
    for (const pod of await this.pods(core, id)) {
      const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
      for (const status of statuses) {
        const waiting = status.state?.waiting;
        if (waiting?.reason && STUCK_REASONS.has(waiting.reason)) {
          return {
            pod,
            container: status.name,
            reason: `container ${status.name} of pod ${pod.metadata?.name} is in ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
          };
        }
      }
    }
    return undefined;
  }

  /** The instance's pods, oldest first, without those being deleted; none when they cannot be listed. */
  private async pods(core: CoreV1Api, id: string): Promise<V1Pod[]> {
    const { namespace } = this.options;
    try {
      const pods = await core.listNamespacedPod({
        namespace,
        labelSelector: `${MANAGED_BY_LABEL}=computatrum,${INSTANCE_LABEL}=${instanceLabelValue(id)}`,
      });
      return pods.items
        .filter((pod) => !pod.metadata?.deletionTimestamp)
        .sort((a, b) => millis(a.metadata?.creationTimestamp) - millis(b.metadata?.creationTimestamp));
    } catch (error) {
      this.log.warn({ instanceId: id, err: messageOf(error) }, 'cannot list the instance pods');
      return [];
    }
  }

  /** The end of the instance's log (the crashed container's, when one is named); '' when there is none to read. */
  private async logTail(
    core: CoreV1Api,
    id: string,
    stuck?: { pod: V1Pod; container: string; reason: string },
  ): Promise<string> {
    const { namespace } = this.options;
    const pod = stuck?.pod ?? (await this.pods(core, id)).at(-1);
    const podName = pod?.metadata?.name;
    if (!podName) return '';
    const container = stuck?.container ?? INSTANCE_CONTAINER;
    const read = (previous: boolean) =>
      core.readNamespacedPodLog({ name: podName, namespace, container, tailLines: LOG_TAIL_LINES, previous });
    try {
      // A container in CrashLoopBackOff is waiting: its last run's log says why it crashed.
      const text = stuck?.reason.includes('CrashLoopBackOff')
        ? await read(true).catch(() => read(false))
        : await read(false);
      return String(text).trimEnd();
    } catch (error) {
      this.log.warn({ pod: podName, container, err: messageOf(error) }, 'cannot read the instance log');
      return '';
    }
  }

  private async readDeployment(
    apps: AppsV1Api,
    name: string,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
  ): Promise<V1Deployment | undefined> {
    try {
      return await apps.readNamespacedDeployment({ name, namespace: this.options.namespace });
    } catch (error) {
      if (apiStatus(error) === 404) return undefined;
      throw explain(error, `read Deployment ${name}`);
    }
  }

  /** Deletes the Deployment (its pods with it); false when there was none. */
  private async deleteDeployment(
    apps: AppsV1Api,
    name: string,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
  ): Promise<boolean> {
    try {
      // Foreground: the Deployment stays, being deleted, until its pods are gone and their GPUs free.
      await apps.deleteNamespacedDeployment({
        name,
        namespace: this.options.namespace,
        propagationPolicy: 'Foreground',
        body: { propagationPolicy: 'Foreground' },
      });
      return true;
    } catch (error) {
      if (apiStatus(error) === 404) return false;
      throw explain(error, `delete Deployment ${name}`);
    }
  }

  /** Waits, a bounded time, until a deleted Deployment (and so its pods) is gone; true when it is. */
  private async waitDeploymentGone(
    apps: AppsV1Api,
    name: string,
    explain: (error: unknown, action: string) => KubernetesRunnerError,
    seconds: number,
  ): Promise<boolean> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      if (!(await this.readDeployment(apps, name, explain))) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(this.pollIntervalMs, Math.max(deadline - Date.now(), 0)));
    }
  }

  async check(instanceId: string): Promise<{ state: 'ready' | 'starting' | 'gone'; logTail?: string }> {
    const name = instanceResourceName(instanceId);
    const { apps, core, explain } = await this.clients();
    const deployment = await this.readDeployment(apps, name, explain);
    if (!deployment || deployment.metadata?.deletionTimestamp) {
      return {
        state: 'gone',
        logTail:
          this.lastReasons.get(instanceId) ??
          `Deployment ${name} ${deployment ? 'is being deleted' : 'is not'} in namespace ${this.options.namespace}`,
      };
    }
    if (isReady(deployment)) return { state: 'ready' };
    const stuck = await this.stuckPod(core, instanceId);
    if (stuck) {
      this.lastReasons.set(instanceId, stuck.reason);
      return { state: 'starting', logTail: stuck.reason };
    }
    return { state: 'starting' };
  }

  stop(instanceId: string): Promise<{ stopped: boolean }> {
    return this.serially(instanceId, () => this.stopNow(instanceId));
  }

  /** Deletes the Deployment and the Service, then waits (bounded) for the pods to have stopped. */
  private async stopNow(instanceId: string): Promise<{ stopped: boolean }> {
    const name = instanceResourceName(instanceId);
    const { namespace } = this.options;
    const { apps, core, explain } = await this.clients();
    const stopped = await this.deleteDeployment(apps, name, explain);
    try {
      await core.deleteNamespacedService({ name, namespace });
    } catch (error) {
      if (apiStatus(error) !== 404) throw explain(error, `delete Service ${name}`);
    }
    if (stopped) {
      this.lastReasons.set(instanceId, this.lastReasons.get(instanceId) ?? 'stopped by computatrum');
      const gone = await this.waitDeploymentGone(apps, name, explain, INSTANCE_STOP_SECONDS + STOP_MARGIN_SECONDS + 10);
      this.log.info({ instanceId, deployment: name, namespace, podsGone: gone }, 'instance stopped');
    }
    return { stopped };
  }
}

/** explainApiError, with what an instance's refusals mean (its own wording is about training Jobs). */
function explainInstanceError(
  error: unknown,
  action: string,
  kubeConfig: KubeConfig,
  namespace: string,
): KubernetesRunnerError {
  const status = apiStatus(error);
  if (status === 401 || status === 403) {
    return new KubernetesRunnerError(
      `the Kubernetes API refused to ${action} (HTTP ${status}): the worker's service account needs deployments and services ` +
        `(create, get, list, delete) and pods (list; pods/log: get) in namespace ${namespace}`,
      status,
    );
  }
  if (status === 422) {
    return new KubernetesRunnerError(
      `the Kubernetes API rejected the instance as invalid (${action}): ${bodyMessage(error) ?? messageOf(error)}; check the instance image, command and claim`,
      status,
    );
  }
  return explainApiError(error, action, kubeConfig, namespace);
}

/** The message of the Status object a failed call carries, when it carries one. */
function bodyMessage(error: unknown): string | undefined {
  const raw = (error as { body?: unknown } | null)?.body;
  try {
    const body: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
    const message = (body as { message?: unknown } | null | undefined)?.message;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

const millis = (time: Date | string | undefined): number => (time ? new Date(time).getTime() : 0);

/** One replica ready and available, of the Deployment's current generation. */
function isReady(deployment: V1Deployment): boolean {
  const status = deployment.status;
  if (!status) return false;
  const generation = deployment.metadata?.generation;
  if (generation !== undefined && status.observedGeneration !== undefined && status.observedGeneration < generation) {
    return false;
  }
  return (status.readyReplicas ?? 0) >= 1 && (status.availableReplicas ?? status.readyReplicas ?? 0) >= 1;
}
