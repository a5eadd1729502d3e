// KubernetesJobRunner end to end over HTTP against a THIN FAKE Kubernetes API server
// (test/helpers/fake-kube-apiserver.ts): no cluster, no Docker and no kube-apiserver can run here.
// The fake speaks the real wire protocol and validates every Job against the Kubernetes schema;
// it runs no controllers, so each test moves the Job's status itself. Usage runs on a test clock.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { Job } from 'kubernetes-models/batch/v1';
import pino from 'pino';
import {
  KubernetesJobRunner,
  KubernetesRunnerError,
  kubeConfigFrom,
  trainingJobName,
  type KubernetesJobRunnerOptions,
} from '../../activities/runners/kubernetes';
import {
  PreemptedError,
  TrainerFailedError,
  type RunnerContext,
  type TrainingJobSpec,
  type TrainingOutcome,
  type TrainingProgress,
} from '../../activities/runners/types';
import { eventually } from '../helpers/eventually';
import { startFakeKubeApiServer, type FakeKubeApiServer } from '../helpers/fake-kube-apiserver';
import { kubernetesClient, loadKubernetesClientNatively, loopbackKubeConfig } from '../helpers/kube';

jest.mock('@kubernetes/client-node', () => kubernetesClient.module);

const NAMESPACE = 'computatrum-training';
const T0 = Date.parse('2026-03-01T12:00:00Z');
const BASE_DIGEST = `sha256:${'ab'.repeat(32)}`;

let api: FakeKubeApiServer;
let kubeConfig: KubeConfig;
let clock = T0;
let runCount = 0;

beforeAll(async () => {
  await loadKubernetesClientNatively();
  api = await startFakeKubeApiServer({ namespace: NAMESPACE });
  kubeConfig = await kubeConfigFor(api.url);
});

afterAll(async () => {
  await api?.close();
});

beforeEach(() => {
  clock = T0;
});

afterEach(() => {
  expect(api.rejectedJobs).toEqual([]);
});

function kubeConfigFor(server: string): Promise<KubeConfig> {
  return loopbackKubeConfig(server, NAMESPACE);
}

function newRunId(): string {
  runCount += 1;
  return `2026-03-01-run${runCount}`;
}

function runner(options: Partial<KubernetesJobRunnerOptions> = {}): KubernetesJobRunner {
  return new KubernetesJobRunner({
    kubeConfig,
    namespace: NAMESPACE,
    pollIntervalMs: 20,
    now: () => clock,
    ...options,
  });
}

function trainingSpec(runId: string, overrides: Partial<TrainingJobSpec> = {}): TrainingJobSpec {
  return {
    runId,
    base: { repo: 'germline/computatrum', reference: 'main', digest: BASE_DIGEST },
    output: { repo: 'germline/computatrum', branch: 'main' },
    image: 'registry.example/computatrum-trainer:1.2.3',
    command: ['python', '-m', 'trainer'],
    gpus: 2,
    gpuType: 'NVIDIA-H100-80GB-HBM3',
    maxGpuSeconds: 100_000,
    maxDurationSeconds: 3600,
    env: { LEARNING_RATE: '0.0003' },
    ...overrides,
  };
}

interface TestRun {
  context: RunnerContext;
  reports: TrainingProgress[];
  logLines: string[];
  abort(): void;
}

function runContext(resumeFrom?: TrainingProgress): TestRun {
  const reports: TrainingProgress[] = [];
  const logLines: string[] = [];
  const controller = new AbortController();
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  return {
    context: { report: (progress) => reports.push(progress), signal: controller.signal, log, resumeFrom },
    reports,
    logLines,
    abort: () => controller.abort(),
  };
}

/** RFC 3339 at second precision, as the API server writes times. */
const at = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const completed = (start: number, end: number) => ({
  startTime: at(start),
  completionTime: at(end),
  succeeded: 1,
  conditions: [
    { type: 'SuccessCriteriaMet', status: 'True', lastTransitionTime: at(end) },
    { type: 'Complete', status: 'True', lastTransitionTime: at(end) },
  ],
});

const failed = (start: number, end: number, reason: string, message: string) => ({
  startTime: at(start),
  failed: 1,
  conditions: [
    { type: 'FailureTarget', status: 'True', reason, message, lastTransitionTime: at(end) },
    { type: 'Failed', status: 'True', reason, message, lastTransitionTime: at(end) },
  ],
});

async function jobCreated(name: string, otherThanUid?: string) {
  return eventually(async () => {
    const job = api.job(name);
    return job && job.metadata.uid !== otherThanUid ? job : undefined;
  }, `Job ${name} created`);
}

async function watching(name: string): Promise<void> {
  await eventually(async () => (api.openWatches(name) > 0 ? true : undefined), `a watch on Job ${name}`);
}

async function reported(run: TestRun, gpuSeconds: number): Promise<TrainingProgress> {
  return eventually(
    async () => run.reports.find((progress) => progress.gpuSeconds === gpuSeconds),
    `a report of ${gpuSeconds} GPU-seconds`,
  );
}

function envOf(body: any): Record<string, string> {
  const trainer = body.spec.template.spec.containers.find((container: any) => container.name === 'trainer');
  return Object.fromEntries(
    trainer.env.map((variable: { name: string; value: string }) => [variable.name, variable.value]),
  );
}

describe('KubernetesJobRunner against a thin fake Kubernetes API server (no cluster can run here)', () => {
  test('creates a Job that validates against the Kubernetes schema, with GPU limits, deadline, failure policy, TTL, labels and the Kueue queue', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const run = runContext();
    const outcome = runner({
      queueName: 'gpu-h100',
      storeRegistry: { url: 'https://registry.example', credentialsSecret: 'registry-push' },
      checkpointClaim: 'training-checkpoints',
    }).run(trainingSpec(runId), run.context);
    await jobCreated(name);

    const body: any = api.createdJobs.at(-1);
    expect(() => new Job(body).validate()).not.toThrow();
    expect(body.metadata).toMatchObject({
      name,
      namespace: NAMESPACE,
      labels: {
        'app.kubernetes.io/managed-by': 'computatrum',
        'computatrum.io/run-id': runId,
        'kueue.x-k8s.io/queue-name': 'gpu-h100',
      },
      annotations: { 'computatrum.io/run-id': runId },
    });
    expect(body.spec).toMatchObject({ activeDeadlineSeconds: 3600, backoffLimit: 3, suspend: true });
    expect(body.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(body.spec.podFailurePolicy.rules).toEqual([
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
      { action: 'FailJob', onExitCodes: { containerName: 'trainer', operator: 'NotIn', values: [0] } },
    ]);
    const pod = body.spec.template;
    expect(pod.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'computatrum',
      'computatrum.io/run-id': runId,
    });
    expect(pod.spec.restartPolicy).toBe('Never');
    expect(pod.spec.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' });
    const trainer = pod.spec.containers.find((container: any) => container.name === 'trainer');
    expect(trainer).toMatchObject({
      image: 'registry.example/computatrum-trainer:1.2.3',
      command: ['python', '-m', 'trainer'],
    });
    expect(trainer.resources.limits['nvidia.com/gpu']).toBe('2');
    expect(trainer.envFrom).toEqual([{ secretRef: { name: 'registry-push' } }]);
    expect(trainer.volumeMounts).toContainEqual(
      expect.objectContaining({ name: 'checkpoints', subPath: `runs/${name}` }),
    );
    expect(pod.spec.volumes).toContainEqual({
      name: 'checkpoints',
      persistentVolumeClaim: { claimName: 'training-checkpoints' },
    });
    expect(envOf(body)).toMatchObject({
      COMPUTATRUM_RUN_ID: runId,
      COMPUTATRUM_BASE_DIR: expect.any(String),
      COMPUTATRUM_OUTPUT_DIR: expect.any(String),
      COMPUTATRUM_GPUS: '2',
      COMPUTATRUM_MAX_SECONDS: '3600',
      COMPUTATRUM_BASE_REF: `germline/computatrum@${BASE_DIGEST}`,
      COMPUTATRUM_OUTPUT_REF: `germline/computatrum:run-${runId}`,
      COMPUTATRUM_REGISTRY_URL: 'https://registry.example',
      LEARNING_RATE: '0.0003',
    });

    api.setJobStatus(name, completed(T0, T0 + 60_000));
    await expect(outcome).resolves.toMatchObject({ state: 'succeeded' });
  });

  test('Complete drives succeeded, with the pushed output, the metrics annotation and whole GPU-seconds', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const run = runContext();
    const outcome = runner().run(trainingSpec(runId, { base: undefined }), run.context);
    const job = await jobCreated(name);
    expect(job.metadata.labels['kueue.x-k8s.io/queue-name']).toBeUndefined();
    expect(job.spec.suspend).toBeUndefined();
    expect(envOf(job).COMPUTATRUM_BASE_REF).toBeUndefined();
    await watching(name);

    // 30.4 s on two GPUs: 31 whole seconds each.
    clock = T0 + 30_400;
    api.setJobStatus(name, { startTime: at(T0), active: 1 });
    await reported(run, 62);
    api.annotateJob(name, {
      'computatrum.io/metrics': JSON.stringify({ loss: 1.25, tokens: 4096, note: 'not a number' }),
    });
    api.setJobStatus(name, completed(T0, T0 + 90_000));

    const result = await outcome;
    expect(result).toEqual({
      state: 'succeeded',
      output: { kind: 'store', repo: 'germline/computatrum', reference: `run-${runId}` },
      metrics: { loss: 1.25, tokens: 4096 },
      progress: expect.objectContaining({
        gpuSeconds: 90 * 2,
        attempt: 1,
        runner: expect.objectContaining({ job: name, countedGpuSeconds: 0 }),
      }),
    });
  });

  test('Failed by the podFailurePolicy throws TrainerFailedError with the condition and the trainer log tail', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const run = runContext();
    const outcome = runner().run(trainingSpec(runId), run.context);
    await jobCreated(name);
    api.setPodLog(
      name,
      Array.from({ length: 60 }, (_, i) => `log line ${i + 1}`).join('\n') + '\nValueError: loss is NaN\n',
    );
    const message = `Container trainer for pod ${NAMESPACE}/${name}-x failed with exit code 1 matching FailJob rule at index 1`;
    api.setJobStatus(name, failed(T0, T0 + 5_000, 'PodFailurePolicy', message));

    const error = await outcome.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(TrainerFailedError);
    expect((error as TrainerFailedError).message).toContain(message);
    expect((error as TrainerFailedError).message).toContain('ValueError: loss is NaN');
    expect((error as TrainerFailedError).message).toContain('log line 60');
    expect((error as TrainerFailedError).message).not.toContain('log line 11\n');
    expect((error as TrainerFailedError).progress.gpuSeconds).toBe(5 * 2);
    expect(run.logLines.join('')).toContain('ValueError: loss is NaN');
    expect(api.requests.readPodLog).toBeGreaterThan(0);
  });

  test('BackoffLimitExceeded also throws TrainerFailedError', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const outcome = runner().run(trainingSpec(runId), runContext().context);
    await jobCreated(name);
    api.setJobStatus(
      name,
      failed(T0, T0 + 1_000, 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'),
    );
    await expect(outcome).rejects.toThrow(TrainerFailedError);
    await expect(outcome).rejects.toThrow('Job has reached the specified backoff limit');
  });

  test('DeadlineExceeded ends the run with state deadline', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const outcome = runner().run(trainingSpec(runId), runContext().context);
    await jobCreated(name);
    clock = T0 + 7200_000;
    api.setJobStatus(
      name,
      failed(T0, T0 + 3600_000, 'DeadlineExceeded', 'Job was active longer than specified deadline'),
    );
    await expect(outcome).resolves.toMatchObject({ state: 'deadline', progress: { gpuSeconds: 3600 * 2 } });
  });

  test('a Job deleted under the runner is a preemption; the rerun creates a new Job and counts the earlier usage once', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const first = runContext();
    const firstOutcome = runner().run(trainingSpec(runId), first.context);
    const firstJob = await jobCreated(name);
    await watching(name);
    api.setJobStatus(name, { startTime: at(T0), active: 1 });
    clock = T0 + 100_000;
    await reported(first, 200);
    api.deleteJob(name);

    const preemption = await firstOutcome.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(preemption).toBeInstanceOf(PreemptedError);
    const carried = (preemption as PreemptedError).progress;
    expect(carried.gpuSeconds).toBe(200);

    // The workflow retries with the last progress: a new Job, and only its own time on top.
    const second = runContext(carried);
    const secondOutcome = runner().run(trainingSpec(runId), second.context);
    const secondJob = await jobCreated(name, firstJob.metadata.uid);
    expect(envOf(secondJob).COMPUTATRUM_MAX_SECONDS).toBe(String(3600 - 100));
    expect(secondJob.spec.activeDeadlineSeconds).toBe(3600 - 100);
    clock = T0 + 150_000;
    api.setJobStatus(name, { startTime: at(T0 + 120_000), active: 1 });
    await reported(second, 200 + 30 * 2);
    api.setJobStatus(name, completed(T0 + 120_000, T0 + 160_000));
    await expect(secondOutcome).resolves.toMatchObject({
      state: 'succeeded',
      progress: {
        gpuSeconds: 200 + 40 * 2,
        attempt: 2,
        runner: { job: name, jobUid: secondJob.metadata.uid, countedGpuSeconds: 200 },
      },
    });
  });

  test('a 409 on create adopts the run’s existing Job (a worker restart) without counting its usage twice', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    // The Job an earlier worker created before it went away, and that worker's last heartbeat.
    const earlier = runContext();
    const earlierRunner = runner();
    const abandoned = earlierRunner.run(trainingSpec(runId), earlier.context);
    const job = await jobCreated(name);
    api.setJobStatus(name, { startTime: at(T0), active: 1 });
    clock = T0 + 20_000;
    const heartbeat = await reported(earlier, 40);

    const restarted = runContext({
      ...heartbeat,
      gpuSeconds: 500 + 40,
      runner: { ...heartbeat.runner, countedGpuSeconds: 500 },
    });
    const outcome = runner().run(trainingSpec(runId), restarted.context);
    clock = T0 + 30_000;
    await reported(restarted, 500 + 60);
    expect(api.createdJobs.filter((body: any) => body.metadata.name === name)).toHaveLength(2);
    expect(api.job(name)?.metadata.uid).toBe(job.metadata.uid);

    api.setJobStatus(name, completed(T0, T0 + 45_000));
    await expect(outcome).resolves.toMatchObject({
      state: 'succeeded',
      progress: { gpuSeconds: 500 + 90, runner: { jobUid: job.metadata.uid, countedGpuSeconds: 500 } },
    });
    await expect(abandoned).resolves.toMatchObject({ state: 'succeeded' });
  });

  test('a 409 on a Job of another run fails with what to do', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const squatter = runner().run(trainingSpec('someone-else'), runContext().context);
    await jobCreated(trainingJobName('someone-else'));
    // A Job of that name made by hand, for another run.
    const { BatchV1Api } = await import('@kubernetes/client-node');
    const batch = kubeConfig.makeApiClient(BatchV1Api);
    const foreign = structuredClone(api.createdJobs.at(-1) as any);
    foreign.metadata.name = name;
    await batch.createNamespacedJob({ namespace: NAMESPACE, body: foreign });

    await expect(runner().run(trainingSpec(runId), runContext().context)).rejects.toThrow(
      new RegExp(
        `Job ${name} in namespace ${NAMESPACE} already exists and belongs to run someone-else.*kubectl delete job ${name}`,
      ),
    );
    api.setJobStatus(trainingJobName('someone-else'), completed(T0, T0 + 1000));
    await squatter;
  });

  test('a dropped watch is reopened and the next status change is still seen', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const outcome = runner().run(trainingSpec(runId), runContext().context);
    await jobCreated(name);
    await watching(name);
    const watchesBefore = api.requests.watchJobs;
    expect(api.dropWatches()).toBeGreaterThan(0);
    await eventually(
      async () => (api.requests.watchJobs > watchesBefore && api.openWatches(name) > 0 ? true : undefined),
      'the watch reopened',
    );

    api.setJobStatus(name, completed(T0, T0 + 10_000));
    await expect(outcome).resolves.toMatchObject({ state: 'succeeded', progress: { gpuSeconds: 20 } });
  });

  test('a watch answered 410 Expired relists and watches again from the list’s resourceVersion', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const outcome = runner().run(trainingSpec(runId), runContext().context);
    await jobCreated(name);
    await watching(name);
    const listsBefore = api.requests.listJobs;
    api.expireResourceVersions();
    api.dropWatches();
    await eventually(
      async () => (api.requests.listJobs > listsBefore && api.openWatches(name) > 0 ? true : undefined),
      'a relist and a new watch',
    );
    expect(api.expiredWatches()).toBeGreaterThan(0);

    api.setJobStatus(name, completed(T0, T0 + 3_000));
    await expect(outcome).resolves.toMatchObject({ state: 'succeeded', progress: { gpuSeconds: 6 } });
  });

  test('aborting deletes the Job in the background and returns cancelled with the usage', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const run = runContext();
    const outcome = runner().run(trainingSpec(runId), run.context);
    await jobCreated(name);
    api.setJobStatus(name, { startTime: at(T0), active: 1 });
    clock = T0 + 10_200;
    await reported(run, 22);
    run.abort();

    await expect(outcome).resolves.toMatchObject({ state: 'cancelled', progress: { gpuSeconds: 22 } });
    expect(api.job(name)).toBeUndefined();
    expect(api.deletions).toContainEqual({ name, propagationPolicy: 'Background' });
  });

  test('usage reaching maxGpuSeconds deletes the Job and returns cost-cap', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const run = runContext();
    const outcome = runner().run(trainingSpec(runId, { maxGpuSeconds: 100 }), run.context);
    await jobCreated(name);
    api.setJobStatus(name, { startTime: at(T0), active: 1 });
    clock = T0 + 10_000;
    await reported(run, 20);
    expect(api.job(name)).toBeDefined();

    clock = T0 + 50_000;
    const result: TrainingOutcome = await outcome;
    expect(result).toMatchObject({ state: 'cost-cap', progress: { gpuSeconds: 100 } });
    expect(api.job(name)).toBeUndefined();
    expect(api.deletions).toContainEqual({ name, propagationPolicy: 'Background' });
  });

  test('a refused create says to check the RBAC for jobs in the namespace', async () => {
    api.refuse('createJob', 403);
    try {
      await expect(runner().run(trainingSpec(newRunId()), runContext().context)).rejects.toThrow(
        new RegExp(
          `refused to create Job .*\\(HTTP 403\\): check the service account's RBAC for jobs in namespace ${NAMESPACE}`,
        ),
      );
    } finally {
      api.refuse('createJob');
    }
  });

  test('a watch refused with 403 fails the run with the RBAC to check, instead of watching nothing', async () => {
    const runId = newRunId();
    const name = trainingJobName(runId);
    const outcome = runner().run(trainingSpec(runId), runContext().context);
    await jobCreated(name);
    await watching(name);
    api.refuse('watchJobs', 403);
    try {
      api.dropWatches();
      await expect(outcome).rejects.toThrow(
        new RegExp(
          `refused to watch Job ${name} \\(HTTP 403\\): check the service account's RBAC for jobs in namespace ${NAMESPACE}`,
        ),
      );
    } finally {
      api.refuse('watchJobs');
    }
  });

  test('an API server nobody answers at is named in the error', async () => {
    const gone = await startFakeKubeApiServer();
    const url = gone.url;
    await gone.close();
    const error = await runner({ kubeConfig: await kubeConfigFor(url) })
      .run(trainingSpec(newRunId()), runContext().context)
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(error).toBeInstanceOf(KubernetesRunnerError);
    expect((error as Error).message).toContain(`cannot reach the Kubernetes API at ${url}`);
  });
});

describe('trainingJobName', () => {
  const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

  test('keeps a run id that is already a valid name readable', () => {
    expect(trainingJobName('2026-03-01-abc')).toBe('train-2026-03-01-abc');
  });

  test('makes any run id a stable DNS-1123 label, with a hash suffix when it had to change it', () => {
    const long = `Germline/Computatrum_${'x'.repeat(100)}`;
    for (const runId of [long, 'A_B', 'a-b-', 'training/child/7']) {
      const name = trainingJobName(runId);
      expect(name).toMatch(DNS_LABEL);
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/-[0-9a-f]{8}$/);
      expect(trainingJobName(runId)).toBe(name);
    }
    expect(trainingJobName('A_B')).not.toBe(trainingJobName('a-b'));
  });
});

describe('kubeConfigFrom', () => {
  test('reads a kubeconfig file and refuses inCluster outside a pod', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kubeconfig-'));
    try {
      const file = path.join(dir, 'config');
      await writeFile(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: c, cluster: {server: "https://k8s.example:6443"}}]',
          'users: [{name: u, user: {token: t}}]',
          'contexts: [{name: x, context: {cluster: c, user: u}}]',
          'current-context: x',
        ].join('\n'),
      );
      expect((await kubeConfigFrom({ kubeconfigPath: file })).getCurrentCluster()?.server).toBe(
        'https://k8s.example:6443',
      );
      await expect(kubeConfigFrom({ kubeconfigPath: path.join(dir, 'missing') })).rejects.toThrow(
        /cannot read the kubeconfig/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const serviceHost = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      await expect(kubeConfigFrom({ inCluster: true })).rejects.toThrow(/not running in a Kubernetes pod/);
    } finally {
      if (serviceHost !== undefined) process.env.KUBERNETES_SERVICE_HOST = serviceHost;
    }
  });
});
