// Hosted instances on the real engine: the instance workflow, the payer's budget and journal, the
// local instance runner with a real process that meets the instance contract (test/helpers/
// echo-instance.js), the OCI layout store and PostgreSQL. Leases are seconds long here so that
// renewals, refusals and idleness happen within a test.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { publishCheckpoint } from '../../store/checkpoint';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { updateBudget } from '../../temporal/budget-client';
import { depositUpdate, ledgerQuery, statusQuery } from '../../workflows/budget-api';
import {
  type InstanceRequest,
  instanceStatusQuery,
  stopInstanceUpdate,
  wakeInstanceUpdate,
} from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { reconciledBooks } from '../helpers/budget';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, type TestWorker, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

let env: TestEnvironment;
let worker: TestWorker;
let runner: LocalInstanceRunner;

beforeAll(async () => {
  const instancesDir = mkdtempSync(path.join(tmpdir(), 'computatrum-instances-'));
  runner = new LocalInstanceRunner({ dataDir: instancesDir, defaultCommand: ECHO_INSTANCE });
  env = await testEnvironment({
    instanceRunners: { local: runner },
    germlineInstance: { currency: 'usd', ratePerGpuHour: 3600n, maxCost: 500n, idleTimeoutSeconds: 0, runner: 'local' },
  });
  worker = await env.startWorker();
});

afterAll(async () => {
  for (const id of await runner.list()) await runner.stop(id);
  await env?.close();
});

/** A germline funded with `amount` minor units, and an image in its repository. */
async function germlineWithImage(amount: string) {
  const { name, handle } = await env.startGermline();
  await updateBudget(handle, depositUpdate, { amount, currency: 'usd', reference: `seed-${name}` });
  const dir = mkdtempSync(path.join(tmpdir(), 'image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${name}`));
  const image = await publishCheckpoint(env.store, `germline/${name}`, dir, { tag: 'main' });
  return { name, handle, image };
}

function request(germline: string, overrides: Partial<InstanceRequest> = {}): InstanceRequest {
  return {
    version: 1,
    id: uniqueName('inst'),
    image: { repo: `germline/${germline}`, reference: 'main' },
    payer: germlineWorkflowId(germline),
    currency: 'usd',
    visibility: 'public',
    runner: 'local',
    gpus: 1,
    // 36.00 per GPU-hour: one cent per GPU-second, so every charge is easy to check.
    ratePerGpuHour: '3600',
    idleTimeoutSeconds: 0,
    maxDurationSeconds: 3600,
    maxCost: '100000',
    leaseSeconds: 2,
    checkSeconds: 1,
    ...overrides,
  };
}

const stateOf = (id: string) => instanceHandle(env.client, id).query(instanceStatusQuery);

async function reach(id: string, state: string) {
  return eventually(
    async () => {
      const status = await stateOf(id);
      return status.state === state ? status : undefined;
    },
    `instance ${id} to be ${state}`,
    30_000,
  );
}

test('an instance serves, renews its lease, and is charged for exactly the seconds it was ready when stopped', async () => {
  const germline = await germlineWithImage('100000');
  const input = request(germline.name, { gpus: 2 });
  await launchInstance(env.client, env.taskQueue, input);
  const ready = await reach(input.id, 'ready');
  expect(ready.digest).toBe(germline.image.digest);
  const models = (await (await fetch(`${ready.endpoint}/v1/models`)).json()) as { data: { id: string }[] };
  expect(models.data[0]!.id).toBe(`germline/${germline.name}:main`);

  // A lease renewed at least once: two leases of 2 s, one reservation each.
  await eventually(async () => ((await stateOf(input.id)).billedSeconds >= 2 ? true : undefined), 'a renewal');
  const stopped = await instanceHandle(env.client, input.id).executeUpdate(stopInstanceUpdate, {
    args: [{ by: 'alice' }],
  });
  expect(stopped.state).toBe('stopped');
  expect(stopped.reason).toBe('stopped by alice');
  expect(stopped.reserved).toBe('0');
  // Whole seconds × GPUs × one cent: the charge is the billed seconds, twice.
  expect(BigInt(stopped.cost)).toBe(BigInt(stopped.billedSeconds * 2));
  await expect(fetch(`${ready.endpoint}/v1/models`)).rejects.toThrow();

  const budget = await germline.handle.query(statusQuery);
  expect(budget.spent).toBe(stopped.cost);
  expect(budget.reserved).toBe('0');
  const ledger = await germline.handle.query(ledgerQuery, 100);
  const leases = ledger.filter((e) => e.kind === 'reserve' && e.purpose?.startsWith(`instance ${input.id}`));
  const settles = ledger.filter((e) => e.kind === 'settle');
  expect(leases.length).toBeGreaterThanOrEqual(2);
  expect(settles.length).toBe(leases.length);
  expect((await reconciledBooks(env.db, germline.handle, germline.name)).agrees).toBe(true);
  const row = await env.db.instance.findUniqueOrThrow({ where: { id: input.id } });
  expect(row).toMatchObject({ state: 'stopped', cost: BigInt(stopped.cost), billedSeconds: stopped.billedSeconds });
});

test('a payer whose funds run out refuses the renewal: the instance stops, and it never spent more than was reserved', async () => {
  // 5 cents: two leases of 2 s at one cent a second, and not a third.
  const germline = await germlineWithImage('5');
  const input = request(germline.name);
  await launchInstance(env.client, env.taskQueue, input);
  const ready = await reach(input.id, 'ready');
  const ended = await reach(input.id, 'stopped');
  expect(ended.reason).toMatch(/refused the next lease/);
  expect(BigInt(ended.cost)).toBeLessThanOrEqual(5n);
  expect(BigInt(ended.cost)).toBe(BigInt(ended.billedSeconds));
  await expect(fetch(`${ready.endpoint}/v1/models`)).rejects.toThrow();
  const budget = await germline.handle.query(statusQuery);
  expect(budget.reserved).toBe('0');
  expect(BigInt(budget.spent) + BigInt(budget.available)).toBe(5n);
  expect((await reconciledBooks(env.db, germline.handle, germline.name)).agrees).toBe(true);
});

test('an idle instance sleeps with nothing reserved, and a wake brings it back ready', async () => {
  const germline = await germlineWithImage('100000');
  const input = request(germline.name, { idleTimeoutSeconds: 1, leaseSeconds: 60 });
  await launchInstance(env.client, env.taskQueue, input);
  const first = await reach(input.id, 'ready');
  const asleep = await reach(input.id, 'sleeping');
  expect(asleep.reserved).toBe('0');
  expect(asleep.endpoint).toBeUndefined();
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0');
  await expect(fetch(`${first.endpoint}/v1/models`)).rejects.toThrow();

  const awake = await instanceHandle(env.client, input.id).executeUpdate(wakeInstanceUpdate);
  expect(awake.state).toBe('ready');
  expect((await fetch(`${awake.endpoint}/v1/models`)).status).toBe(200);
  const stopped = await instanceHandle(env.client, input.id).executeUpdate(stopInstanceUpdate, {
    args: [{ by: 'op' }],
  });
  expect(stopped.state).toBe('stopped');
  expect((await germline.handle.query(statusQuery)).spent).toBe(stopped.cost);
});

test('a restarted worker adopts the running process, and the open lease is settled once', async () => {
  const germline = await germlineWithImage('100000');
  const input = request(germline.name, { leaseSeconds: 60 });
  await launchInstance(env.client, env.taskQueue, input);
  const ready = await reach(input.id, 'ready');
  await worker.stop();
  worker = await env.startWorker();
  expect((await fetch(`${ready.endpoint}/v1/models`)).status).toBe(200);
  const stopped = await instanceHandle(env.client, input.id).executeUpdate(stopInstanceUpdate, {
    args: [{ by: 'op' }],
  });
  const ledger = await germline.handle.query(ledgerQuery, 100);
  expect(ledger.filter((e) => e.kind === 'settle')).toHaveLength(1);
  expect((await germline.handle.query(statusQuery)).spent).toBe(stopped.cost);
});

test('bad launches fail with the reason and reserve nothing: an unknown image, an absurd GPU count, a negative cap', async () => {
  const germline = await germlineWithImage('1000');
  for (const [overrides, reason] of [
    [{ image: { repo: 'germline/nowhere', reference: 'main' } }, /nowhere/],
    [{ gpus: 1000 }, /gpus is a whole number from 1 to 16/],
    [{ maxCost: '-5' }, /maxCost/],
  ] as const) {
    const input = request(germline.name, overrides);
    const handle = await launchInstance(env.client, env.taskQueue, input);
    const result = await handle.result();
    expect(result.state).toBe('failed');
    expect(result.reason).toMatch(reason);
  }
  const budget = await germline.handle.query(statusQuery);
  expect(budget.reserved).toBe('0');
  expect(budget.available).toBe('1000');
});

test("each new gpc tag moves the germline's public instance: the new day serves, the old one stops", async () => {
  const germline = await germlineWithImage('100000');
  const tagDay = (day: string) =>
    env.client.workflow.execute(dailyGpcWorkflow, {
      workflowId: uniqueName('day-run'),
      taskQueue: env.taskQueue,
      args: [{ germline: germline.name, day }],
    });
  expect((await tagDay('2026-11-29')).status).toBe('published');
  const first = await reach(`${germline.name}-gpc-2026-11-29`, 'ready');
  expect(first).toMatchObject({ visibility: 'public', payer: germlineWorkflowId(germline.name) });
  expect(first.image).toBe(`germline/${germline.name}:gpc-2026-11-29`);

  expect((await tagDay('2026-11-30')).status).toBe('published');
  const second = await reach(`${germline.name}-gpc-2026-11-30`, 'ready');
  expect(second.owner).toBeUndefined();
  const replaced = await reach(first.id, 'stopped');
  expect(replaced.reason).toBe(`stopped by ${germlineWorkflowId(germline.name)}: replaced by ${second.id}`);
  await instanceHandle(env.client, second.id).executeUpdate(stopInstanceUpdate, { args: [{ by: 'op' }] });
});
