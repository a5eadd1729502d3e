// The training workflow driven by the Kubernetes runner, on the real engine, against a THIN FAKE
// Kubernetes API server (no cluster can run here; see test/helpers/fake-kube-apiserver.ts). The
// fake runs no controllers: each test moves the Job's status as the Job controller would, and
// pushes the output checkpoint as the trainer pod would.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { KubernetesJobRunner, trainingJobName } from '../../activities/runners/kubernetes';
import { ANNOTATION, publishCheckpoint } from '../../store/checkpoint';
import { trainingWorkflow } from '../../workflows/training';
import { type TrainingRequest } from '../../workflows/training-api';
import { trainingCost } from '../../workflows/training-cost';
import { eventually } from '../helpers/eventually';
import { type FakeKubeApiServer, startFakeKubeApiServer } from '../helpers/fake-kube-apiserver';
import { kubernetesClient, loadKubernetesClientNatively, loopbackKubeConfig } from '../helpers/kube';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { depositUpdate, ledgerQuery } from '../../workflows/budget-api';
import { trainingWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';

jest.mock('@kubernetes/client-node', () => kubernetesClient.module);

const NAMESPACE = 'training';
let api: FakeKubeApiServer;
let env: TestEnvironment;

beforeAll(async () => {
  await loadKubernetesClientNatively();
  api = await startFakeKubeApiServer({ namespace: NAMESPACE });
  const kubeConfig = await loopbackKubeConfig(api.url, NAMESPACE);
  env = await testEnvironment({
    runners: { kubernetes: new KubernetesJobRunner({ kubeConfig, namespace: NAMESPACE, pollIntervalMs: 200 }) },
  });
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
  await api?.close();
});

afterEach(() => {
  expect(api.rejectedJobs).toEqual([]);
});

const at = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A germline with money and a head checkpoint to train from. */
async function germlineWithBase() {
  const { name, handle } = await env.startGermline();
  await updateBudget(handle, depositUpdate, { amount: '100000', currency: 'usd', reference: `seed-${name}` });
  const dir = mkdtempSync(path.join(tmpdir(), 'base-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`base weights of ${name}`));
  const base = await publishCheckpoint(env.store, `germline/${name}`, dir, { tag: 'main' });
  return { name, handle, baseDigest: base.digest };
}

function request(germline: string, overrides: Partial<TrainingRequest> = {}): TrainingRequest {
  return {
    version: 1,
    id: uniqueName('kube'),
    payer: `germline/${germline}`,
    currency: 'usd',
    base: { repo: `germline/${germline}`, reference: 'main' },
    output: { repo: `germline/${germline}`, branch: 'tuned' },
    runner: 'kubernetes',
    image: 'registry.example/trainer:1',
    gpus: 2,
    maxCost: '10000',
    ratePerGpuHour: '3600',
    maxDurationSeconds: 3600,
    maxPreemptions: 2,
    ...overrides,
  };
}

/** What the trainer pod does at the end: push its output as <repo>:run-<id>, naming its parent. */
async function podPushesOutput(input: TrainingRequest, parent: string): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'output-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`trained by ${input.id}`));
  const pushed = await publishCheckpoint(env.store, input.output.repo, dir, {
    tag: `run-${input.id}`,
    parent,
    annotations: { [ANNOTATION.trainingRun]: input.id },
  });
  return pushed.digest;
}

function jobCreated(name: string, otherThanUid?: string) {
  return eventually(async () => {
    const job = api.job(name, NAMESPACE);
    return job && job.metadata.uid !== otherThanUid && api.openWatches(name) > 0 ? job : undefined;
  }, `Job ${name} created and watched`);
}

describe('training runs on the kubernetes runner against a thin fake Kubernetes API server (no cluster can run here)', () => {
  test('Complete: the branch moves to the checkpoint the pod pushed, and its GPU time is settled', async () => {
    const germline = await germlineWithBase();
    const input = request(germline.name);
    const handle = await env.client.workflow.start(trainingWorkflow, {
      workflowId: trainingWorkflowId(input.id),
      taskQueue: env.taskQueue,
      args: [input],
    });
    const name = trainingJobName(input.id);
    await jobCreated(name);
    const output = await podPushesOutput(input, germline.baseDigest);
    const end = Date.now();
    api.setJobStatus(
      name,
      {
        startTime: at(end - 30_000),
        completionTime: at(end),
        succeeded: 1,
        conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: at(end) }],
      },
      NAMESPACE,
    );

    const result = await handle.result();
    expect(result).toMatchObject({ state: 'succeeded', outputDigest: output, baseDigest: germline.baseDigest });
    expect((await env.store.getManifest(input.output.repo, 'tuned'))?.digest).toBe(output);
    const row = await env.db.trainingRun.findUniqueOrThrow({ where: { id: input.id } });
    expect(row.gpuSeconds).toBe(60); // 30 s on 2 GPUs
    expect(row.cost).toBe(trainingCost(60, 3600n, 10000n));
    const ledger = (await germline.handle.query(ledgerQuery, 1000)).filter(
      (e) => e.reference === `training/${input.id}`,
    );
    expect(ledger.map((e) => [e.kind, e.spent])).toEqual([
      ['reserve', undefined],
      ['settle', '60'],
    ]);
  });

  test('Failed by the pod failure policy (a trainer bug): the run fails at once, no retry, time settled', async () => {
    const germline = await germlineWithBase();
    const input = request(germline.name);
    const handle = await env.client.workflow.start(trainingWorkflow, {
      workflowId: trainingWorkflowId(input.id),
      taskQueue: env.taskQueue,
      args: [input],
    });
    const name = trainingJobName(input.id);
    await jobCreated(name);
    const end = Date.now();
    const message = 'Container trainer for pod training/x-abc failed with exit code 1 matching FailJob rule at index 1';
    api.setJobStatus(
      name,
      {
        startTime: at(end - 10_000),
        failed: 1,
        conditions: [
          { type: 'Failed', status: 'True', reason: 'PodFailurePolicy', message, lastTransitionTime: at(end) },
        ],
      },
      NAMESPACE,
    );

    const error = await handle.result().catch((e: unknown) => e);
    expect((error as WorkflowFailedError).cause?.message).toContain('exit code 1 matching FailJob rule');
    expect(
      api.createdJobs.filter((job) => (job as { metadata: { name: string } }).metadata.name === name),
    ).toHaveLength(1);
    const row = await env.db.trainingRun.findUniqueOrThrow({ where: { id: input.id } });
    expect(row).toMatchObject({ state: 'failed', gpuSeconds: 20, cost: 20n });
  });

  test('the Job is lost (preempted): a new Job resumes the run, and the usage of both is charged once', async () => {
    const germline = await germlineWithBase();
    const input = request(germline.name);
    const handle = await env.client.workflow.start(trainingWorkflow, {
      workflowId: trainingWorkflowId(input.id),
      taskQueue: env.taskQueue,
      args: [input],
    });
    const name = trainingJobName(input.id);
    const first = await jobCreated(name);
    const lostAt = Date.now();
    api.setJobStatus(name, { startTime: at(lostAt - 20_000), active: 1 }, NAMESPACE);
    await eventually(
      async () =>
        ((await env.db.trainingRun.findUnique({ where: { id: input.id } }))?.gpuSeconds ?? 0) >= 40 || undefined,
      'the first Job’s usage recorded',
    );
    api.deleteJob(name, NAMESPACE);

    await jobCreated(name, first.metadata.uid);
    const output = await podPushesOutput(input, germline.baseDigest);
    const end = Date.now();
    api.setJobStatus(
      name,
      {
        startTime: at(end - 10_000),
        completionTime: at(end),
        succeeded: 1,
        conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: at(end) }],
      },
      NAMESPACE,
    );

    const result = await handle.result();
    expect(result).toMatchObject({ state: 'succeeded', outputDigest: output });
    const row = await env.db.trainingRun.findUniqueOrThrow({ where: { id: input.id } });
    expect(row.attempts).toBe(2);
    expect(row.gpuSeconds).toBeGreaterThanOrEqual(40 + 20);
    const ledger = (await germline.handle.query(ledgerQuery, 1000)).filter(
      (e) => e.reference === `training/${input.id}`,
    );
    expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
    expect(ledger[1]!.spent).toBe(trainingCost(row.gpuSeconds, 3600n, 10000n).toString());
  });

  test('cancel deletes the Job and settles the time it ran', async () => {
    const germline = await germlineWithBase();
    const input = request(germline.name);
    const handle = await env.client.workflow.start(trainingWorkflow, {
      workflowId: trainingWorkflowId(input.id),
      taskQueue: env.taskQueue,
      args: [input],
    });
    const name = trainingJobName(input.id);
    await jobCreated(name);
    api.setJobStatus(name, { startTime: at(Date.now() - 5_000), active: 1 }, NAMESPACE);
    await handle.cancel();

    const error = await handle.result().catch((e: unknown) => e);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(api.job(name, NAMESPACE)).toBeUndefined();
    expect(api.deletions.map((d) => d.name)).toContain(name);
    const row = await env.db.trainingRun.findUniqueOrThrow({ where: { id: input.id } });
    expect(row.state).toBe('cancelled');
    expect(row.gpuSeconds).toBeGreaterThanOrEqual(10);
    expect(row.cost).toBe(trainingCost(row.gpuSeconds, 3600n, 10000n));
  });
});
