// Training runs end to end on the real engine: the training workflow, the germline budget, the local
// runner with the real tiny trainer as a child process, the OCI layout store and PostgreSQL.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { ANNOTATION } from '../../store/checkpoint';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import type { ImageManifest } from '../../store/types';
import { trainingWorkflow } from '../../workflows/training';
import { type TrainingRequest } from '../../workflows/training-api';
import { trainingCost } from '../../workflows/training-cost';
import { eventually } from '../helpers/eventually';
import { isAlive } from '../helpers/processes';
import { type TestEnvironment, type TestWorker, testEnvironment, uniqueName } from '../helpers/temporal';
import { depositUpdate, ledgerQuery, statusQuery } from '../../workflows/budget-api';
import { trainingWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;
let worker: TestWorker;

beforeAll(async () => {
  env = await testEnvironment();
  worker = await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

/** A germline funded with `amount` minor units. */
async function fundedGermline(amount: string) {
  const { name, handle } = await env.startGermline();
  await updateBudget(handle, depositUpdate, { amount, currency: 'usd', reference: `seed-${name}` });
  return { name, handle };
}

/** A run long enough to be interrupted: many steps, a checkpoint every few. */
const LONG = tinyTrainerCommand(['--steps', '1000000', '--save-every', '200']);

function request(germline: string, overrides: Partial<TrainingRequest> = {}): TrainingRequest {
  return {
    version: 1,
    id: uniqueName('run'),
    payer: `germline/${germline}`,
    currency: 'usd',
    output: { repo: `germline/${germline}`, branch: 'main' },
    runner: 'local',
    command: tinyTrainerCommand(['--steps', '200', '--save-every', '50']),
    gpus: 1,
    maxCost: '500',
    // 36.00 per GPU-hour: one cent per GPU-second, so the charge is easy to check.
    ratePerGpuHour: '3600',
    maxDurationSeconds: 600,
    maxPreemptions: 3,
    ...overrides,
  };
}

function start(input: TrainingRequest) {
  return env.client.workflow.start(trainingWorkflow, {
    workflowId: trainingWorkflowId(input.id),
    taskQueue: env.taskQueue,
    args: [input],
  });
}

function runRow(id: string) {
  return env.db.trainingRun.findUniqueOrThrow({ where: { id } });
}

/** Waits until the trainer has saved a checkpoint, then returns the pid of the trainer process. */
async function trainerWithCheckpoint(id: string): Promise<{ pid: number; step: number }> {
  const row = await eventually(
    async () => {
      const r = await runRow(id).catch(() => undefined);
      return r?.lastCheckpoint ? r : undefined;
    },
    `a checkpoint of ${id}`,
    60_000,
  );
  const { pid } = JSON.parse(readFileSync(path.join(env.dataDir, 'runs', id, 'trainer.pid'), 'utf8')) as {
    pid: number;
  };
  return { pid, step: Number(row.lastCheckpoint!.slice('checkpoint-'.length)) };
}

/** The budget's ledger entries for one run's reservation. */
async function ledgerFor(germline: { handle: Awaited<ReturnType<typeof fundedGermline>>['handle'] }, runId: string) {
  const entries = await germline.handle.query(ledgerQuery, 1000);
  return entries.filter((e) => e.reference === `training/${runId}`);
}

test('a run reserves its cap, trains, publishes its checkpoint with lineage, settles the real cost and releases the rest', async () => {
  const germline = await fundedGermline('10000');
  // The first run starts from scratch and makes the germline's first head.
  const first = request(germline.name);
  const firstResult = await (await start(first)).result();
  expect(firstResult.state).toBe('succeeded');

  const second = request(germline.name, {
    base: { repo: `germline/${germline.name}`, reference: 'main' },
    output: { repo: `germline/${germline.name}`, branch: 'fine' },
  });
  const result = await (await start(second)).result();
  expect(result).toMatchObject({ state: 'succeeded', baseDigest: firstResult.outputDigest });

  const manifest = await env.store.getManifest(`germline/${germline.name}`, 'fine');
  expect(manifest?.digest).toBe(result.outputDigest);
  const annotations = (JSON.parse(manifest!.bytes.toString()) as ImageManifest).annotations!;
  expect(annotations[ANNOTATION.parent]).toBe(firstResult.outputDigest);
  expect(annotations[ANNOTATION.trainingRun]).toBe(second.id);
  expect(JSON.parse(annotations[ANNOTATION.metrics]!)).toMatchObject({ step: 200, loss: expect.any(Number) });

  const row = await runRow(second.id);
  expect(row).toMatchObject({
    state: 'succeeded',
    step: 200,
    outputDigest: result.outputDigest,
    baseDigest: firstResult.outputDigest,
    attempts: 1,
  });
  expect(row.gpuSeconds).toBeGreaterThan(0);
  expect(row.cost).toBe(trainingCost(row.gpuSeconds, 3600n, 500n));
  expect(result.cost).toBe(row.cost!.toString());

  // One reservation of the cap, one settlement of the real cost; the rest went back.
  const ledger = await ledgerFor(germline, second.id);
  expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
  expect(ledger[0]!.amount).toBe('500');
  expect(ledger[1]!.spent).toBe(row.cost!.toString());
  const status = await germline.handle.query(statusQuery);
  expect(status.reserved).toBe('0');
  expect(BigInt(status.available)).toBe(10000n - BigInt(firstResult.cost!) - row.cost!);

  // Operators find the runs in the Temporal UI by kind, payer and state.
  const listed = await eventually(async () => {
    const ids: string[] = [];
    for await (const run of env.client.workflow.list({
      query: `RunKind = "training" AND Payer = "germline/${germline.name}" AND RunState = "succeeded"`,
    }))
      ids.push(run.workflowId);
    return ids.length === 2 ? ids.sort() : undefined;
  }, 'both runs listed by their search attributes');
  expect(listed).toEqual([trainingWorkflowId(first.id), trainingWorkflowId(second.id)].sort());
});

test('not enough budget: the run is refused before anything starts, with the shortfall in the error', async () => {
  const germline = await fundedGermline('100');
  const input = request(germline.name, { maxCost: '500' });
  const handle = await start(input);
  const error = await handle.result().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkflowFailedError);
  expect((error as WorkflowFailedError).cause?.message).toMatch(/short by 4\.00 USD/);
  expect(await runRow(input.id)).toMatchObject({ state: 'refused', attempts: 0, gpuSeconds: 0, startedAt: null });
  expect(() => readFileSync(path.join(env.dataDir, 'runs', input.id, 'trainer.pid'))).toThrow();
  expect(await ledgerFor(germline, input.id)).toEqual([]);
});

test('kill -9 of the trainer mid-run: the run resumes from its last checkpoint and is charged once in total', async () => {
  const germline = await fundedGermline('10000');
  const input = request(germline.name, {
    command: tinyTrainerCommand(['--steps', '3000', '--save-every', '200']),
    maxCost: '5000',
  });
  const handle = await start(input);
  const { pid, step } = await trainerWithCheckpoint(input.id);
  process.kill(pid, 'SIGKILL');

  const result = await handle.result();
  expect(result.state).toBe('succeeded');
  const row = await runRow(input.id);
  expect(row.attempts).toBe(2);
  expect(row.resumedFromStep).toBeGreaterThanOrEqual(step);
  expect(row.step).toBe(3000);
  const ledger = await ledgerFor(germline, input.id);
  expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
  expect(ledger[1]!.spent).toBe(trainingCost(row.gpuSeconds, 3600n, 5000n).toString());
});

test('the worker stops mid-run: another worker resumes the run from its last checkpoint, charged once', async () => {
  const germline = await fundedGermline('10000');
  const input = request(germline.name, {
    command: tinyTrainerCommand(['--steps', '3000', '--save-every', '200']),
    maxCost: '5000',
  });
  const handle = await start(input);
  const { pid, step } = await trainerWithCheckpoint(input.id);
  await worker.stop();
  expect(isAlive(pid)).toBe(false);
  worker = await env.startWorker();

  const result = await handle.result();
  expect(result.state).toBe('succeeded');
  const row = await runRow(input.id);
  expect(row.attempts).toBe(2);
  expect(row.resumedFromStep).toBeGreaterThanOrEqual(step);
  const ledger = await ledgerFor(germline, input.id);
  expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
  expect(ledger[1]!.spent).toBe(trainingCost(row.gpuSeconds, 3600n, 5000n).toString());
});

test('the cost cap is reached: the job is stopped, the run ends as cost-cap, settled at the cap, its last checkpoint kept', async () => {
  const germline = await fundedGermline('10000');
  // 360.00 per GPU-hour is 10 cents per GPU-second: a 0.30 cap buys 3 GPU-seconds.
  const input = request(germline.name, { command: LONG, ratePerGpuHour: '36000', maxCost: '30' });
  const result = await (await start(input)).result();
  expect(result).toMatchObject({ state: 'cost-cap', cost: '30' });
  const row = await runRow(input.id);
  expect(row.state).toBe('cost-cap');
  expect(row.gpuSeconds).toBeGreaterThanOrEqual(3);
  const ledger = await ledgerFor(germline, input.id);
  expect(ledger.map((e) => [e.kind, e.spent])).toEqual([
    ['reserve', undefined],
    ['settle', '30'],
  ]);
  // The branch did not move to a half-trained model; the partial result is kept under run-<id>.
  expect(await env.store.getManifest(`germline/${germline.name}`, 'main')).toBeUndefined();
  expect(row.lastCheckpoint).toMatch(/^checkpoint-\d{8}$/);
  expect(result.partialOutput).toBe(`germline/${germline.name}:run-${input.id}`);
  expect(await env.store.getManifest(`germline/${germline.name}`, `run-${input.id}`)).toBeDefined();
});

test('cancel: the trainer is stopped and the time it used is settled', async () => {
  const germline = await fundedGermline('10000');
  const input = request(germline.name, { command: LONG, maxCost: '5000' });
  const handle = await start(input);
  const { pid } = await trainerWithCheckpoint(input.id);
  await handle.cancel();
  const error = await handle.result().catch((e: unknown) => e);
  expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  expect(isAlive(pid)).toBe(false);

  const row = await runRow(input.id);
  expect(row.state).toBe('cancelled');
  expect(row.gpuSeconds).toBeGreaterThan(0);
  const cost = trainingCost(row.gpuSeconds, 3600n, 5000n);
  expect(row.cost).toBe(cost);
  const ledger = await ledgerFor(germline, input.id);
  expect(ledger.map((e) => [e.kind, e.spent])).toEqual([
    ['reserve', undefined],
    ['settle', cost.toString()],
  ]);
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0');
});

test('a trainer that exits with an error fails the run without retrying it, and the time used is settled', async () => {
  const germline = await fundedGermline('10000');
  const input = request(germline.name, {
    command: [process.execPath, '-e', 'console.error("CUDA out of memory"); process.exit(3)'],
  });
  const error = await (await start(input)).result().catch((e: unknown) => e);
  expect((error as WorkflowFailedError).cause?.message).toMatch(/exited with code 3: CUDA out of memory/);
  const row = await runRow(input.id);
  expect(row).toMatchObject({ state: 'failed', attempts: 1 });
  const ledger = await ledgerFor(germline, input.id);
  expect(ledger.map((e) => e.kind)).toEqual(['reserve', 'settle']);
});
