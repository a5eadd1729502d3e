// The worker of a serving instance is killed with -9 in the middle of a lease period (a host or the
// OOM killer, not a graceful shutdown): the instance serves on without it, the next worker process
// adopts it (its start-up sweep keeps it: its workflow still runs), and every lease, the one open at the
// kill included, is settled exactly once: nothing charged twice, nothing left reserved, the journal
// agrees. Both workers are OS processes of their own (test/helpers/worker-process.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { launchInstance } from '../../temporal/instance-client';
import { depositUpdate, type LedgerEntry, ledgerQuery, statusQuery } from '../../workflows/budget-api';
import { type InstanceRequest, instanceStatusQuery, stopInstanceUpdate } from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { reconciledBooks } from '../helpers/budget';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { startWorkerProcess, type WorkerProcess, type WorkerProcessOptions } from '../helpers/worker-process';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];
/** Long enough that the kill and the next worker's start fall well inside the first one. */
const LEASE_SECONDS = 10;

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let workerOptions: WorkerProcessOptions;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  env = await testEnvironment();
  const instancesDir = mkdtempSync(path.join(tmpdir(), 'computatrum-instances-'));
  // The test's own view of the workers' instance folder: to check on the process and clean up.
  runner = new LocalInstanceRunner({ dataDir: instancesDir, defaultCommand: ECHO_INSTANCE });
  workerOptions = {
    taskQueue: env.taskQueue,
    dataDir: env.dataDir,
    storeDir: env.store.location,
    instancesDir,
    instanceCommand: ECHO_INSTANCE,
  };
});

afterAll(async () => {
  for (const worker of workers) await worker.stop();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id, { graceMs: 0 });
  await env?.close();
});

async function startWorker(): Promise<WorkerProcess> {
  const worker = await startWorkerProcess(workerOptions);
  workers.push(worker);
  return worker;
}

/** A germline funded with `amount` minor units, and an image in its repository. */
async function germlineWithImage(amount: string) {
  const { name, handle } = await env.startGermline();
  await updateBudget(handle, depositUpdate, { amount, currency: 'usd', reference: `seed-${name}` });
  const dir = mkdtempSync(path.join(tmpdir(), 'image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${name}`));
  await publishCheckpoint(env.store, `germline/${name}`, dir, { tag: 'main' });
  return { name, handle };
}

function request(germline: string): InstanceRequest {
  return {
    version: 1,
    id: uniqueName('killed'),
    image: { repo: `germline/${germline}`, reference: 'main' },
    payer: germlineWorkflowId(germline),
    currency: 'usd',
    visibility: 'public',
    runner: 'local',
    gpus: 2,
    // One cent per GPU-second.
    ratePerGpuHour: '3600',
    idleTimeoutSeconds: 0,
    maxDurationSeconds: 3600,
    maxCost: '100000',
    leaseSeconds: LEASE_SECONDS,
    // No check inside a lease: between its start and its end the workflow only waits, so the kill
    // interrupts a wait and never an activity (whose retry would wait out its one-minute timeout).
    checkSeconds: 600,
  };
}

/** The instance's leases in the payer's ledger: each reservation and the entries that closed it. */
function leasesOf(ledger: LedgerEntry[], id: string) {
  const reserves = ledger.filter((e) => e.kind === 'reserve' && e.purpose?.startsWith(`instance ${id}:`));
  const ids = new Set(reserves.map((r) => r.reservationId));
  const closes = ledger.filter((e) => e.kind !== 'reserve' && e.kind !== 'deposit' && ids.has(e.reservationId));
  return { reserves, closes };
}

test('a worker killed with -9 mid-lease: the next worker adopts the instance, and each lease is settled exactly once', async () => {
  const first = await startWorker();
  const germline = await germlineWithImage('100000');
  const input = request(germline.name);
  const handle = await launchInstance(env.client, env.taskQueue, input);
  const ready = await eventually(
    async () => {
      const status = await handle.query(instanceStatusQuery);
      return status.state === 'ready' ? status : undefined;
    },
    'the instance ready',
    60_000,
  );

  // Mid-lease: the first lease reserved, not settled, and no activity in flight (the worker waits for its end).
  await eventually(async () => {
    const { raw } = await handle.describe();
    return (raw.pendingActivities ?? []).length === 0 ? true : undefined;
  }, 'the workflow waiting out its first lease');
  const before = leasesOf(await germline.handle.query(ledgerQuery, 500), input.id);
  expect(before.reserves).toHaveLength(1);
  expect(before.closes).toEqual([]);
  await first.kill();

  // No worker runs: the instance serves on.
  expect((await fetch(`${ready.endpoint}/v1/models`)).status).toBe(200);
  expect(await runner.check(input.id)).toEqual({ state: 'ready', endpoint: ready.endpoint });

  const second = await startWorker();
  // Its start-up sweep kept the instance: its workflow still runs.
  expect(second.swept).toEqual([]);
  // The first lease ends under the second worker: it checks the adopted process, settles, and renews.
  const renewed = await eventually(
    async () => {
      const { reserves, closes } = leasesOf(await germline.handle.query(ledgerQuery, 500), input.id);
      const status = await handle.query(instanceStatusQuery);
      return reserves.length >= 2 && closes.length >= 1 && status.state === 'ready' ? status : undefined;
    },
    'the first lease settled and the second reserved by the second worker',
    60_000,
  );
  expect(renewed.endpoint).toBe(ready.endpoint);
  expect(renewed.billedSeconds).toBe(LEASE_SECONDS);

  const stopped = await handle.executeUpdate(stopInstanceUpdate, { args: [{ by: 'op' }] });
  expect(stopped).toMatchObject({ state: 'stopped', reason: 'stopped by op', reserved: '0' });
  await expect(fetch(`${ready.endpoint}/v1/models`)).rejects.toThrow();
  expect(await runner.check(input.id)).toMatchObject({ state: 'gone' });

  // Every lease closed exactly once, by a settle within what it reserved; none left open.
  const { reserves, closes } = leasesOf(await germline.handle.query(ledgerQuery, 500), input.id);
  expect(reserves).toHaveLength(2);
  expect(new Set(reserves.map((r) => r.reservationId)).size).toBe(2);
  expect(closes.map((c) => c.kind)).toEqual(['settle', 'settle']);
  for (const reserve of reserves) {
    const settles = closes.filter((c) => c.reservationId === reserve.reservationId);
    expect(settles).toHaveLength(1);
    expect(BigInt(settles[0]!.spent!)).toBeLessThanOrEqual(BigInt(reserve.amount));
  }
  // The first lease, open at the kill, paid in full (it ran to its end); the charges are what the instance says it cost.
  const firstSettle = closes.find((c) => c.reservationId === reserves[0]!.reservationId)!;
  expect(firstSettle.spent).toBe(String(LEASE_SECONDS * input.gpus));
  const spent = closes.reduce((sum, c) => sum + BigInt(c.spent!), 0n);
  expect(spent.toString()).toBe(stopped.cost);
  expect(BigInt(stopped.cost)).toBe(BigInt(stopped.billedSeconds * input.gpus));

  const budget = await germline.handle.query(statusQuery);
  expect(budget).toMatchObject({ reserved: '0', spent: stopped.cost });
  expect(BigInt(budget.available) + BigInt(budget.spent)).toBe(100_000n);
  expect((await reconciledBooks(env.db, germline.handle, germline.name)).agrees).toBe(true);
  const row = await env.db.instance.findUniqueOrThrow({ where: { id: input.id } });
  expect(row).toMatchObject({ state: 'stopped', cost: BigInt(stopped.cost), billedSeconds: stopped.billedSeconds });
}, 180_000);
