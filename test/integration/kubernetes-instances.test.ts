// KubernetesInstanceRunner over HTTP against a THIN FAKE Kubernetes API server
// (test/helpers/fake-kube-apiserver.ts): no cluster, no kubelet and no kube-apiserver run here.
// The fake speaks the real wire protocol and validates every Deployment and Service against the
// Kubernetes schema (kubernetes-models); it runs no controllers, so each test marks the Deployment
// ready (or stalled, or its pod crashing) itself. Nothing here starts a container.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import {
  KubernetesInstanceRunner,
  KubernetesRunnerError,
  instanceResourceName,
  type KubernetesInstanceRunnerOptions,
} from '../../activities/runners/kubernetes';
import { INSTANCE_STOP_SECONDS, InstanceFailedError } from '../../activities/runners/types';
import { loadConfig } from '../../runtime/config';
import { createInstanceRunners } from '../../worker/runners';
import { eventually } from '../helpers/eventually';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../helpers/fake-kube-apiserver';
import { kubernetesClient, loadKubernetesClientNatively, loopbackKubeConfig } from '../helpers/kube';

jest.mock('@kubernetes/client-node', () => kubernetesClient.module);

const NAMESPACE = 'computatrum-instances';
const DIGEST = `sha256:${'cd'.repeat(32)}`;
const IMAGE = 'registry.example/vllm-openai:v0.6.3';
const REGISTRY = 'http://registry.computatrum.svc:5000';

let api: FakeKubeApiServer;
let kubeConfig: KubeConfig;
let dataDir: string;
let count = 0;

beforeAll(async () => {
  await loadKubernetesClientNatively();
  api = await startFakeKubeApiServer({ namespace: NAMESPACE });
  kubeConfig = await loopbackKubeConfig(api.url, NAMESPACE);
  dataDir = await mkdtemp(path.join(tmpdir(), 'kube-instances-'));
});

afterAll(async () => {
  await api?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

afterEach(() => {
  // The fake answers 422 for anything the real API server would refuse: the runner sent none.
  expect(api.rejectedObjects).toEqual([]);
});

function runner(options: Partial<KubernetesInstanceRunnerOptions> = {}): KubernetesInstanceRunner {
  return new KubernetesInstanceRunner({
    kubeConfig,
    namespace: NAMESPACE,
    image: IMAGE,
    storeRegistry: { url: REGISTRY, credentialsSecret: 'registry-credentials' },
    pollIntervalMs: 20,
    readyTimeoutMs: 15_000,
    ...options,
  });
}

/** A model folder where the instance activities materialize the checkpoint. */
async function modelFolder(id: string): Promise<string> {
  const dir = path.join(dataDir, 'instances', id, `model-${DIGEST.slice(7, 23)}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

async function newSpec(overrides: { id?: string; command?: string[]; gpus?: number } = {}) {
  count += 1;
  const instanceId = overrides.id ?? `alice-coder-${count}`;
  return {
    instanceId,
    modelDir: await modelFolder(instanceId),
    modelName: 'trainers/alice/coder:main',
    checkpoint: { repo: 'trainers/alice/coder', digest: DIGEST },
    gpus: overrides.gpus ?? 2,
    command: overrides.command ?? ['vllm', 'serve', '/var/lib/computatrum/model'],
  };
}

/** Waits until the runner has created the instance's Deployment (it is then polling for readiness). */
function created(name: string) {
  return eventually(async () => api.deployment(name), `Deployment ${name}`, 10_000);
}

const markReady = (name: string) =>
  api.setDeploymentStatus(name, { observedGeneration: 1, replicas: 1, readyReplicas: 1, availableReplicas: 1 });

/** Settles without throwing, so a test can look at a start that is still waiting. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

const envOf = (container: any): Record<string, string> =>
  Object.fromEntries((container.env ?? []).map((variable: any) => [variable.name, variable.value]));

describe('KubernetesInstanceRunner against a fake API server (no cluster here)', () => {
  test('start creates a valid Deployment and Service, waits for a ready replica, and a second start adopts them', async () => {
    const instances = runner();
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const deploymentsBefore = api.createdDeployments.length;
    const start = instances.start(spec);
    const started = track(start);

    const deployment = await created(name);
    expect(() => new Deployment(deployment as any).validate()).not.toThrow();
    expect(deployment.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'computatrum',
      'computatrum.io/instance': spec.instanceId,
    });
    expect(deployment.metadata.annotations['computatrum.io/instance']).toBe(spec.instanceId);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
    const pod = deployment.spec.template.spec;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(INSTANCE_STOP_SECONDS);
    expect(pod.automountServiceAccountToken).toBe(false);

    const [server] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    expect(server.image).toBe(IMAGE);
    expect(server.command).toEqual(spec.command);
    expect(server.resources).toEqual({ limits: { 'nvidia.com/gpu': '2' }, requests: { 'nvidia.com/gpu': '2' } });
    expect(server.readinessProbe.httpGet).toEqual({ path: '/v1/models', port: 8000 });
    expect(server.ports).toEqual([{ name: 'http', containerPort: 8000, protocol: 'TCP' }]);
    expect(envOf(server)).toEqual({
      COMPUTATRUM_MODEL_DIR: '/var/lib/computatrum/model',
      COMPUTATRUM_MODEL_NAME: 'trainers/alice/coder:main',
      COMPUTATRUM_INSTANCE_ID: spec.instanceId,
      COMPUTATRUM_GPUS: '2',
      PORT: '8000',
    });
    // The checkpoint is mounted read-only; an init container pulls it by digest, as a trainer pulls its base.
    expect(server.volumeMounts).toEqual([{ name: 'model', mountPath: '/var/lib/computatrum/model', readOnly: true }]);
    expect(pod.volumes).toEqual([{ name: 'model', emptyDir: {} }]);
    const [pull] = pod.initContainers;
    expect(envOf(pull)).toEqual({
      COMPUTATRUM_MODEL_REF: `trainers/alice/coder@${DIGEST}`,
      COMPUTATRUM_REGISTRY_URL: REGISTRY,
      COMPUTATRUM_STORE: 'registry',
      COMPUTATRUM_MODEL_DIR: '/var/lib/computatrum/model',
    });
    expect(pull.envFrom).toEqual([{ secretRef: { name: 'registry-credentials' } }]);
    expect(pull.volumeMounts).toEqual([{ name: 'model', mountPath: '/var/lib/computatrum/model' }]);

    const service = api.service(name)!;
    expect(service).toBeDefined();
    expect(() => new Service(service as any).validate()).not.toThrow();
    expect(service.spec.type).toBe('ClusterIP');
    expect(service.spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 8000, protocol: 'TCP' }]);
    // The Service reaches this instance's pods: its selector is a subset of the pod template's labels.
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);

    // Not ready yet: the start is still waiting, and check says starting.
    expect(started.settled).toBe(false);
    await expect(instances.check(spec.instanceId)).resolves.toEqual({ state: 'starting' });

    markReady(name);
    await expect(start).resolves.toEqual({ endpoint: `http://${name}.${NAMESPACE}.svc:80`, adopted: false });
    await expect(instances.check(spec.instanceId)).resolves.toEqual({ state: 'ready' });

    // A restarted worker starting the same instance takes over what is there: nothing is created twice.
    const again = await runner().start(spec);
    expect(again).toEqual({ endpoint: `http://${name}.${NAMESPACE}.svc:80`, adopted: true });
    expect(api.createdDeployments.length).toBe(deploymentsBefore + 1);
    expect(api.requests.createDeployment).toBe(api.createdDeployments.length);
  });

  test('ProgressDeadlineExceeded fails the start with InstanceFailedError and deletes the Deployment and the Service', async () => {
    const instances = runner();
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const start = instances.start(spec);
    start.catch(() => undefined);
    await created(name);
    api.setPodLog(name, 'loading weights\nCUDA error: out of memory\n');
    api.setDeploymentStatus(name, {
      observedGeneration: 1,
      replicas: 1,
      unavailableReplicas: 1,
      conditions: [
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: `ReplicaSet "${name}-5d4f8" has timed out progressing.`,
        },
      ],
    });

    const error = await start.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(InstanceFailedError);
    expect((error as InstanceFailedError).message).toMatch(/ProgressDeadlineExceeded/);
    expect((error as InstanceFailedError).logTail).toContain('CUDA error: out of memory');
    expect(api.deployment(name)).toBeUndefined();
    expect(api.service(name)).toBeUndefined();
    expect(api.objectDeletions).toEqual(
      expect.arrayContaining([
        { kind: 'Deployment', name, propagationPolicy: 'Foreground' },
        expect.objectContaining({ kind: 'Service', name }),
      ]),
    );
    const checked = await instances.check(spec.instanceId);
    expect(checked.state).toBe('gone');
    expect(checked.logTail).toMatch(/ProgressDeadlineExceeded/);
  });

  test('a pod in CrashLoopBackOff fails the start at once, with the container log', async () => {
    const instances = runner();
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const start = instances.start(spec);
    start.catch(() => undefined);
    await created(name);
    api.setPodLog(
      name,
      'Traceback (most recent call last):\nValueError: no config.json in /var/lib/computatrum/model\n',
    );
    api.setDeploymentPodStatus(name, {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'instance',
          ready: false,
          restartCount: 3,
          image: IMAGE,
          imageID: '',
          state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } },
        },
      ],
    });

    const error = await start.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(InstanceFailedError);
    expect((error as Error).message).toMatch(/container instance of pod .* is in CrashLoopBackOff/);
    expect((error as InstanceFailedError).logTail).toContain('ValueError: no config.json');
    expect(api.deployment(name)).toBeUndefined();
    expect(api.service(name)).toBeUndefined();
  });

  test('no ready replica within readyTimeoutMs: InstanceFailedError, and nothing is left behind', async () => {
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    await expect(runner({ readyTimeoutMs: 300 }).start(spec)).rejects.toThrow(
      /had no ready replica \(GET \/v1\/models answering 200\) within 300 ms/,
    );
    expect(api.deployment(name)).toBeUndefined();
    expect(api.service(name)).toBeUndefined();
  });

  test('stop deletes the Deployment and the Service; a second stop finds nothing', async () => {
    const instances = runner();
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const start = instances.start(spec);
    await created(name);
    markReady(name);
    await start;

    await expect(instances.stop(spec.instanceId)).resolves.toEqual({ stopped: true });
    expect(api.deployment(name)).toBeUndefined();
    expect(api.service(name)).toBeUndefined();
    expect(api.objectDeletions).toContainEqual({ kind: 'Deployment', name, propagationPolicy: 'Foreground' });
    await expect(instances.check(spec.instanceId)).resolves.toEqual({
      state: 'gone',
      logTail: 'stopped by computatrum',
    });
    await expect(instances.stop(spec.instanceId)).resolves.toEqual({ stopped: false });
    // Another worker knows no reason, only that nothing is there.
    await expect(runner().check(spec.instanceId)).resolves.toEqual({
      state: 'gone',
      logTail: `Deployment ${name} is not in namespace ${NAMESPACE}`,
    });
  });

  test('a changed spec replaces the Deployment rather than adopting it', async () => {
    const instances = runner();
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const first = instances.start(spec);
    await created(name);
    const uid = api.deployment(name)!.metadata.uid;
    markReady(name);
    await first;

    const second = instances.start({ ...spec, gpus: 4 });
    const replaced = await eventually(
      async () => (api.deployment(name)?.metadata.uid !== uid ? api.deployment(name) : undefined),
      'the replacing Deployment',
      10_000,
    );
    expect(replaced.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe('4');
    markReady(name);
    await expect(second).resolves.toMatchObject({ adopted: false });
    await instances.stop(spec.instanceId);
  });

  test('from a checkpoint claim: the model folder is mounted read-only as a subPath, no pull', async () => {
    const instances = runner({
      storeRegistry: undefined,
      checkpointClaim: 'computatrum-data',
      checkpointClaimPath: dataDir,
      endpointFor: (service, namespace) =>
        `http://127.0.0.1:8001/api/v1/namespaces/${namespace}/services/${service}/proxy`,
    });
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const start = instances.start(spec);
    const deployment = await created(name);
    const pod = deployment.spec.template.spec;
    expect(pod.initContainers).toBeUndefined();
    expect(pod.volumes).toEqual([
      { name: 'model', persistentVolumeClaim: { claimName: 'computatrum-data', readOnly: true } },
    ]);
    expect(pod.containers[0].volumeMounts).toEqual([
      {
        name: 'model',
        mountPath: '/var/lib/computatrum/model',
        readOnly: true,
        subPath: `instances/${spec.instanceId}/${path.basename(spec.modelDir)}`,
      },
    ]);
    markReady(name);
    await expect(start).resolves.toEqual({
      endpoint: `http://127.0.0.1:8001/api/v1/namespaces/${NAMESPACE}/services/${name}/proxy`,
      adopted: false,
    });
    await instances.stop(spec.instanceId);
  });

  test('as configured (createInstanceRunners): a checkpoint claim and its mount path, or a pull image beside the registry', async () => {
    const kubeconfigFile = path.join(dataDir, 'kubeconfig');
    await writeFile(kubeconfigFile, kubeConfig.exportConfig());
    const common = {
      COMPUTATRUM_DATA_DIR: dataDir,
      COMPUTATRUM_KUBE_NAMESPACE: NAMESPACE,
      COMPUTATRUM_KUBECONFIG: kubeconfigFile,
      COMPUTATRUM_INSTANCE_IMAGE: IMAGE,
    };
    const fromClaim = createInstanceRunners(
      loadConfig({
        ...common,
        COMPUTATRUM_KUBE_CHECKPOINT_CLAIM: 'computatrum-data',
        COMPUTATRUM_KUBE_CHECKPOINT_CLAIM_PATH: dataDir,
      }),
    ).kubernetes!;
    const claimed = await newSpec();
    const claimedStart = fromClaim.start(claimed);
    const claimedPod = (await created(instanceResourceName(claimed.instanceId))).spec.template.spec;
    expect(claimedPod.initContainers).toBeUndefined();
    expect(claimedPod.volumes).toEqual([
      { name: 'model', persistentVolumeClaim: { claimName: 'computatrum-data', readOnly: true } },
    ]);
    markReady(instanceResourceName(claimed.instanceId));
    await claimedStart;
    await fromClaim.stop(claimed.instanceId);

    const pulling = createInstanceRunners(
      loadConfig({
        ...common,
        COMPUTATRUM_STORE: 'registry',
        COMPUTATRUM_REGISTRY_URL: REGISTRY,
        COMPUTATRUM_KUBE_REGISTRY_SECRET: 'registry-credentials',
        COMPUTATRUM_INSTANCE_PULL_IMAGE: 'registry.example/computatrum:1.0',
      }),
    ).kubernetes!;
    const pulled = await newSpec();
    const pulledStart = pulling.start(pulled);
    const pulledPod = (await created(instanceResourceName(pulled.instanceId))).spec.template.spec;
    expect(pulledPod.initContainers[0]).toMatchObject({
      image: 'registry.example/computatrum:1.0',
      envFrom: [{ secretRef: { name: 'registry-credentials' } }],
    });
    expect(pulledPod.containers[0].image).toBe(IMAGE);
    markReady(instanceResourceName(pulled.instanceId));
    await pulledStart;
    await pulling.stop(pulled.instanceId);
  });

  test('a long instance id gets valid, stable, hashed names', async () => {
    const id = `a${'-very-long-instance-name'.repeat(3)}`.slice(0, 63);
    const name = instanceResourceName(id);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?-[0-9a-f]{8}$/);
    expect(instanceResourceName(id)).toBe(name);
    const instances = runner();
    const spec = await newSpec({ id });
    const start = instances.start(spec);
    await created(name);
    expect(api.service(name)).toBeDefined();
    markReady(name);
    await start;
    await instances.stop(id);
  });

  test('refuses to adopt a Deployment of the same name that is not this instance', async () => {
    const spec = await newSpec();
    const name = instanceResourceName(spec.instanceId);
    const response = await fetch(`${api.url}/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name },
        spec: {
          selector: { matchLabels: { app: 'other' } },
          template: { metadata: { labels: { app: 'other' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } },
        },
      }),
    });
    expect(response.status).toBe(201);
    await expect(runner().start(spec)).rejects.toThrow(KubernetesRunnerError);
    await expect(runner().start(spec)).rejects.toThrow(/belongs to no computatrum instance/);
    expect(api.deployment(name)?.spec.template.spec.containers[0].image).toBe('nginx');
  });

  test('the fake refuses what the real API server would: its checks are on', async () => {
    const post = (plural: string, prefix: string, body: unknown) =>
      fetch(`${api.url}${prefix}/namespaces/${NAMESPACE}/${plural}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const template = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } };
    const gpuMismatch = structuredClone(template) as any;
    gpuMismatch.spec.containers[0].resources = {
      limits: { 'nvidia.com/gpu': '2' },
      requests: { 'nvidia.com/gpu': '1' },
    };
    const refused = [
      await post('deployments', '/apis/apps/v1', {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'no-container-name' },
        spec: { selector: { matchLabels: { app: 'x' } }, template: { ...template, spec: { containers: [{}] } } },
      }),
      await post('deployments', '/apis/apps/v1', {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'selector-mismatch' },
        spec: { selector: { matchLabels: { app: 'y' } }, template },
      }),
      await post('deployments', '/apis/apps/v1', {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'gpu-mismatch' },
        spec: { selector: { matchLabels: { app: 'x' } }, template: gpuMismatch },
      }),
      await post('services', '/api/v1', {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: '1-starts-with-a-digit' },
        spec: { ports: [{ port: 80 }] },
      }),
    ];
    expect(refused.map((response) => response.status)).toEqual([422, 422, 422, 422]);
    expect(api.rejectedObjects.map((rejected) => rejected.reason)).toEqual([
      expect.stringMatching(/^schema:/),
      expect.stringMatching(/selector. does not match template/),
      expect.stringMatching(/must be equal to nvidia.com\/gpu limit/),
      expect.stringMatching(/DNS-1035/),
    ]);
    api.rejectedObjects.length = 0;
  });

  test('without a claim or a registry the runner refuses to be built', () => {
    expect(() => runner({ storeRegistry: undefined })).toThrow(/a checkpoint claim or a registry/);
    expect(() => runner({ checkpointClaim: 'data' })).toThrow(/needs checkpointClaimPath/);
  });
});
