// Children on the real engine: spawned by the germline within its guardrails, funded by a
// reservation, paying for their own training runs, and retiring or leaving with the allowance
// settled to the cent, across the germline's continue-as-new (which archives the ended ones in PostgreSQL).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { listChildren } from '../../db/germline-archive';
import { ANNOTATION, publishCheckpoint } from '../../store/checkpoint';
import {
  type ChildStatus,
  childrenQuery,
  childStatusQuery,
  leaveUpdate,
  retireUpdate,
  spawnChildUpdate,
} from '../../workflows/child-api';
import { germlineWorkflow } from '../../workflows/germline';
import { promoteUpdate } from '../../workflows/germline-api';
import { trainingWorkflow } from '../../workflows/training';
import { trainingCost } from '../../workflows/training-cost';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { depositUpdate, ledgerQuery, pauseSignal, statusQuery } from '../../workflows/budget-api';
import { germlineWorkflowId, childWorkflowId, trainingWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

async function fundedGermline(amount = '100000') {
  const germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount, currency: 'usd', reference: `seed-${germline.name}` });
  return germline;
}

function child(germline: string, name: string) {
  return env.client.workflow.getHandle(childWorkflowId(germline, name));
}

test('a spawned child holds its allowance as a reservation of the germline and works on a fork of the head', async () => {
  const germline = await fundedGermline();
  const dir = mkdtempSync(path.join(tmpdir(), 'head-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('head weights'));
  const head = await publishCheckpoint(env.store, `germline/${germline.name}`, dir, { tag: 'main' });
  const name = uniqueName('coder');

  const record = await updateBudget(germline.handle, spawnChildUpdate, {
    name,
    allowance: '5000',
    purpose: 'programming',
  });
  expect(record).toMatchObject({
    name,
    workflowId: childWorkflowId(germline.name, name),
    allowance: '5000',
    state: 'active',
  });
  const books = await germline.handle.query(statusQuery);
  expect(books.openReservations).toEqual([
    expect.objectContaining({ id: record.reservationId, amount: '5000', ref: `child/${name}` }),
  ]);
  expect(books.available).toBe('95000');

  const status = await eventually(async () => {
    const s = await child(germline.name, name).query(childStatusQuery);
    return s.branch ? s : undefined;
  }, 'the child to fork its branch');
  expect(status).toMatchObject({
    state: 'active',
    allowance: '5000',
    available: '5000',
    spent: '0',
    branch: `children/${name}:main`,
  });
  expect((await env.store.getManifest(`children/${name}`, 'main'))?.digest).toBe(head.digest);
  expect(await germline.handle.query(childrenQuery)).toEqual([record]);
  // Started by the germline's workflow, it reads as what it is in the Temporal UI's list.
  expect(await (await child(germline.name, name).describe()).staticSummary()).toBe(
    `child ${name} of germline ${germline.name}: programming, an allowance of 50.00 USD`,
  );
});

test('a child pays for its own training run; retiring it settles exactly what it spent in the germline', async () => {
  const germline = await fundedGermline();
  const name = uniqueName('animator');
  const record = await updateBudget(germline.handle, spawnChildUpdate, {
    name,
    allowance: '3000',
    purpose: '3D animation',
  });

  const id = uniqueName('child-run');
  const run = await env.client.workflow.start(trainingWorkflow, {
    workflowId: trainingWorkflowId(id),
    taskQueue: env.taskQueue,
    args: [
      {
        version: 1,
        id,
        payer: childWorkflowId(germline.name, name),
        currency: 'usd',
        output: { repo: `children/${name}`, branch: 'main' },
        runner: 'local',
        command: tinyTrainerCommand(['--steps', '100']),
        gpus: 1,
        maxCost: '1000',
        ratePerGpuHour: '3600',
        maxDurationSeconds: 600,
        maxPreemptions: 1,
      },
    ],
  });
  const result = await run.result();
  expect(result.state).toBe('succeeded');
  const cost = BigInt(result.cost!);
  expect(cost).toBe(trainingCost(result.gpuSeconds!, 3600n, 1000n));

  const before = await child(germline.name, name).query(childStatusQuery);
  expect(before).toMatchObject({ spent: cost.toString(), available: (3000n - cost).toString() });
  const retired = (await child(germline.name, name).executeUpdate(retireUpdate, {
    args: ['its breed is done'],
  })) as ChildStatus;
  expect(retired).toMatchObject({ state: 'retired', spent: cost.toString(), endReason: 'its breed is done' });

  // The child's signal reaches the germline right after it retires.
  const books = await eventually(async () => {
    const b = await germline.handle.query(statusQuery);
    return b.openReservations.length === 0 ? b : undefined;
  }, 'the germline to settle the allowance');
  expect(books.spent).toBe(cost.toString());
  expect(books.available).toBe((100000n - cost).toString());
  const settled = (await germline.handle.query(ledgerQuery, 100)).find(
    (e) => e.kind === 'settle' && e.reservationId === record.reservationId,
  );
  expect(settled).toMatchObject({ amount: '3000', spent: cost.toString() });
  expect((await germline.handle.query(childrenQuery))[0]).toMatchObject({
    state: 'retired',
    spent: cost.toString(),
    reason: 'its breed is done',
  });
  // A retired child spends nothing more.
  const late = await child(germline.name, name)
    .executeUpdate(retireUpdate, { args: ['again'] })
    .catch((e: unknown) => e);
  expect(late).toBeInstanceOf(Error);
});

test('leave: funding ends, the allowance is settled to the cent, the branch goes to its new owner, the reason is recorded', async () => {
  const germline = await fundedGermline();
  const dir = mkdtempSync(path.join(tmpdir(), 'head-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('head weights'));
  const head = await publishCheckpoint(env.store, `germline/${germline.name}`, dir, { tag: 'main' });
  const name = uniqueName('tutor');
  await updateBudget(germline.handle, spawnChildUpdate, { name, allowance: '2500', purpose: 'teaching' });
  await eventually(
    async () => ((await child(germline.name, name).query(childStatusQuery)).branch ? true : undefined),
    'the fork',
  );

  const left = (await child(germline.name, name).executeUpdate(leaveUpdate, {
    args: [{ owner: 'alice', reason: 'wants to be a tutor on its own' }],
  })) as ChildStatus;
  expect(left).toMatchObject({
    state: 'left',
    owner: 'alice',
    endReason: 'wants to be a tutor on its own',
    spent: '0',
  });
  expect((await env.store.getManifest(`trainers/alice/${name}`, 'main'))?.digest).toBe(head.digest);
  const books = await eventually(async () => {
    const b = await germline.handle.query(statusQuery);
    return b.reserved === '0' ? b : undefined;
  }, 'the germline to settle the allowance');
  expect(books).toMatchObject({ available: '100000', spent: '0' });
  expect((await germline.handle.query(childrenQuery))[0]).toMatchObject({ state: 'left', owner: 'alice', spent: '0' });
});

test('a paused germline spawns nothing, and a refusal names every guardrail it crossed', async () => {
  const germline = await fundedGermline('1000');
  await germline.handle.signal(pauseSignal, 'audit');
  const refused = await updateBudget(germline.handle, spawnChildUpdate, {
    name: 'coder',
    allowance: '5000',
    purpose: 'programming',
  }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
  const message = (refused as WorkflowUpdateFailedError).cause!.message;
  expect(message).toContain('not-paused: the germline is paused');
  expect(message).toContain('available-funds: needs 50.00 USD, 10.00 USD available');
  expect(await germline.handle.query(childrenQuery)).toEqual([]);
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0');
});

test('100 children spawned and retired across continue-as-new stay tracked, and their allowances sum exactly', async () => {
  const germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  const firstRun = (await germline.handle.describe()).runId;
  const names = Array.from({ length: 100 }, (_, i) => `c${i}`);
  for (const [i, name] of names.entries()) {
    await updateBudget(germline.handle, spawnChildUpdate, { name, allowance: String(1000 + i), purpose: 'a breed' });
    // At most 8 funded at once (the default guardrail): retire the oldest as the next arrives.
    if (i >= 4) await child(germline.name, names[i - 4]!).executeUpdate(retireUpdate, { args: ['made room'] });
  }
  for (const name of names.slice(-4)) await child(germline.name, name).executeUpdate(retireUpdate, { args: ['done'] });

  expect((await germline.handle.describe()).runId).not.toBe(firstRun); // it continued as new on the way
  // Tracked as the readers list them: the germline's own children and those it archived in
  // PostgreSQL when it continued as new (its carried state holds only what ended since).
  const records = await eventually(async () => {
    const { children: r } = await listChildren(env.db, germline.name, await germline.handle.query(childrenQuery));
    return r.length === names.length && r.every((c) => c.state === 'retired') ? r : undefined;
  }, 'every child retired in the germline');
  expect(records.map((c) => c.name)).toEqual(names);
  expect(await env.db.archivedChild.count({ where: { germline: germline.name } })).toBeGreaterThan(0);
  const allowances = records.reduce((sum, c) => sum + BigInt(c.allowance), 0n);
  expect(allowances).toBe(names.reduce((sum, _n, i) => sum + BigInt(1000 + i), 0n));
  const books = await germline.handle.query(statusQuery);
  expect(books).toMatchObject({ available: '1000000', reserved: '0', spent: '0' });
}, 300_000);

test('promotion: a checkpoint below the eval gate is refused with the gate and the score; one above becomes the head with its lineage', async () => {
  const name = uniqueName('gated');
  const handle = await env.client.workflow.start(germlineWorkflow, {
    workflowId: germlineWorkflowId(name),
    taskQueue: env.taskQueue,
    args: [{ name, currency: 'usd', evalGate: { metric: 'loss', atMost: 2 } }],
  });
  const publish = async (tag: string, loss: number) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'candidate-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights at loss ${loss}`));
    return publishCheckpoint(env.store, 'trainers/alice/coder', dir, {
      tag,
      parent: 'sha256:' + 'a'.repeat(64),
      annotations: { [ANNOTATION.metrics]: JSON.stringify({ loss, step: 300 }) },
    });
  };
  await publish('weak', 2.5);
  const strong = await publish('strong', 1.5);

  const refused = await updateBudget(handle, promoteUpdate, { repo: 'trainers/alice/coder', reference: 'weak' }).catch(
    (e: unknown) => e,
  );
  expect((refused as WorkflowUpdateFailedError).cause?.message).toBe(
    'trainers/alice/coder:weak is not promoted: loss 2.5 fails the eval gate (loss at most 2)',
  );
  expect(await env.store.getManifest(`germline/${name}`, 'main')).toBeUndefined();

  const promoted = await updateBudget(handle, promoteUpdate, { repo: 'trainers/alice/coder', reference: 'strong' });
  expect(promoted).toMatchObject({
    digest: strong.digest,
    metrics: { loss: 1.5, step: 300 },
    gate: 'loss 1.5 passes the eval gate (loss at most 2)',
  });
  const head = await env.store.getManifest(`germline/${name}`, 'main');
  expect(head?.digest).toBe(strong.digest);
  expect(JSON.parse(head!.bytes.toString()).annotations[ANNOTATION.parent]).toBe('sha256:' + 'a'.repeat(64));

  const unknown = await updateBudget(handle, promoteUpdate, { repo: 'trainers/alice/coder', reference: 'nope' }).catch(
    (e: unknown) => e,
  );
  expect((unknown as WorkflowUpdateFailedError).cause?.message).toContain('trainers/alice/coder has no nope');
});

test('two spawns of one name at once: one child, one reservation; the other is refused', async () => {
  const germline = await fundedGermline();
  const outcomes = await Promise.allSettled([
    updateBudget(germline.handle, spawnChildUpdate, { name: 'twin', allowance: '1000', purpose: 'a' }),
    updateBudget(germline.handle, spawnChildUpdate, { name: 'twin', allowance: '1000', purpose: 'b' }),
  ]);
  expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
  const refusal = (outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult)
    .reason as WorkflowUpdateFailedError;
  expect(refusal.cause?.message).toMatch(/a child named twin exists already/);
  const books = await germline.handle.query(statusQuery);
  expect(books.openReservations).toHaveLength(1);
  expect(books.reserved).toBe('1000');
  expect(await germline.handle.query(childrenQuery)).toHaveLength(1);
});
