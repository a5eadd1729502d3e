// Every workflow type the worker registers, run for real on the dev server and then replayed from
// its recorded history against the workflow bundle: a germline (autonomy settings, a child spawned
// and retired, a promotion), the child, a training run of the tiny trainer paid by the child, a
// daily gpc tag (directly and through its Schedule), a trainer's credit, an instance (a renewed
// lease, asleep, woken, stopped), a fresh germline's genesis, a learn from feedback and a probe. A
// type the worker registers without a history replayed here fails the test by name.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { publishCheckpoint } from '../../store/checkpoint';
import { creditHandle } from '../../platform/credit';
import { backfillDaily, dailyScheduleId, ensureDailySchedule } from '../../temporal/schedules';
import * as registered from '../../workflows';
import { setAutonomyUpdate } from '../../workflows/autonomy-api';
import { type ChildStatus, childStatusQuery, retireUpdate, spawnChildUpdate } from '../../workflows/child-api';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { promoteUpdate } from '../../workflows/germline-api';
import { trainingWorkflow } from '../../workflows/training';
import { testGlobals } from '../setup/globals';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { depositUpdate, statusQuery } from '../../workflows/budget-api';
import {
  childWorkflowId,
  dailyGpcWorkflowId,
  genesisWorkflowId,
  instanceWorkflowId,
  learnWorkflowId,
  allotmentWorkflowId,
  trainingWorkflowId,
} from '../../workflows/names';
import type { genesisWorkflow } from '../../workflows/genesis';
import { learnWorkflow } from '../../workflows/learn';
import { datasetBuildsWorkflow, probeSweepWorkflow } from '../../workflows/maintenance';
import { allotmentWorkflow } from '../../workflows/allotment';
import { sponsorHandle } from '../../platform/sponsors';
import { ensureGenesis } from '../../temporal/germline-client';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { instanceStatusQuery, stopInstanceUpdate, wakeInstanceUpdate } from '../../workflows/instance-api';
import { updateBudget } from '../../temporal/budget-client';
import { requireManifest } from '../../store/checkpoint';
import { startProbe } from '../../temporal/probe-client';
import type { probeWorkflow } from '../../workflows/probe';

jest.setTimeout(120_000);

let env: TestEnvironment;
let schedule: string | undefined;

let instanceRunner: LocalInstanceRunner;

beforeAll(async () => {
  instanceRunner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'replay-instances-')),
    defaultCommand: [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')],
  });
  env = await testEnvironment({ instanceRunners: { local: instanceRunner } });
  await env.startWorker();
});

afterAll(async () => {
  if (schedule)
    await env.client.schedule
      .getHandle(schedule)
      .delete()
      .catch(() => undefined);
  for (const id of (await instanceRunner?.list()) ?? []) await instanceRunner.stop(id);
  await env?.close();
});

interface Recorded {
  workflowId: string;
  runId?: string;
}

const typeOf = (history: temporal.api.history.v1.IHistory) =>
  history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '(no start event)';

async function waitClosed(workflowId: string, runId?: string): Promise<void> {
  await eventually(
    async () =>
      (await env.client.workflow.getHandle(workflowId, runId).describe()).status.name === 'RUNNING' ? undefined : true,
    `${workflowId} to close`,
    60_000,
  );
}

test('the histories of every workflow type replay without a determinism error', async () => {
  const recorded: Recorded[] = [];
  const { name, handle } = await env.startGermline(uniqueName('replay'));
  recorded.push({ workflowId: handle.workflowId });
  await updateBudget(handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
  await updateBudget(handle, setAutonomyUpdate, { tickIntervalSeconds: null, approvalThreshold: '90000' });
  const head = mkdtempSync(path.join(tmpdir(), 'replay-head-'));
  writeFileSync(path.join(head, 'notes.txt'), 'head weights');
  await publishCheckpoint(env.store, `germline/${name}`, head, { tag: 'main' });

  // A child, paying for a training run of the tiny trainer from its allowance, then retired.
  const child = 'coder';
  await updateBudget(handle, spawnChildUpdate, { name: child, allowance: '3000', purpose: 'programming' });
  const childHandle = env.client.workflow.getHandle(childWorkflowId(name, child));
  recorded.push({ workflowId: childHandle.workflowId });
  await eventually(
    async () => ((await childHandle.query(childStatusQuery)).branch ? true : undefined),
    'the child to fork its branch',
  );
  const runId = uniqueName('replay-run');
  const run = await env.client.workflow.start(trainingWorkflow, {
    workflowId: trainingWorkflowId(runId),
    taskQueue: env.taskQueue,
    args: [
      {
        version: 1,
        id: runId,
        payer: childWorkflowId(name, child),
        currency: 'usd',
        output: { repo: `children/${child}-${name}`, branch: 'main' },
        runner: 'local',
        command: tinyTrainerCommand(['--steps', '60', '--save-every', '30']),
        gpus: 1,
        maxCost: '1000',
        ratePerGpuHour: '3600',
        maxDurationSeconds: 600,
        maxPreemptions: 1,
      },
    ],
  });
  recorded.push({ workflowId: run.workflowId });
  expect(await run.result()).toMatchObject({ state: 'succeeded' });
  // The germline promotes the run's output (no eval gate here), and the child retires with what it spent.
  expect(
    await updateBudget(handle, promoteUpdate, { repo: `children/${child}-${name}`, reference: 'main' }),
  ).toMatchObject({ gate: 'no eval gate' });
  const retired = (await childHandle.executeUpdate(retireUpdate, { args: ['replayed'] })) as ChildStatus;
  expect(retired.state).toBe('retired');
  await eventually(
    async () => ((await handle.query(statusQuery)).reserved === '0' ? true : undefined),
    'the germline to settle the retired child',
  );

  // A daily tag started directly, and one through the Schedule (its workflow starts the day's as a child).
  const day = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: dailyGpcWorkflowId(name, '2026-11-25'),
    taskQueue: env.taskQueue,
    args: [{ germline: name, day: '2026-11-25' }],
  });
  expect(day.status).toBe('published');
  recorded.push({ workflowId: dailyGpcWorkflowId(name, '2026-11-25') });
  await ensureDailySchedule(env.client, { germline: name, taskQueue: env.taskQueue });
  schedule = dailyScheduleId(name);
  await backfillDaily(env.client, name, '2020-01-02', '2020-01-02');
  const action = await eventually(
    async () => (await env.client.schedule.getHandle(schedule!).describe()).info.recentActions[0]?.action,
    'the schedule to start its workflow',
    45_000,
  );
  recorded.push({ workflowId: action.workflow.workflowId, runId: action.workflow.firstExecutionRunId });
  await waitClosed(action.workflow.workflowId, action.workflow.firstExecutionRunId);
  recorded.push({ workflowId: dailyGpcWorkflowId(name, '2020-01-02') });
  await waitClosed(dailyGpcWorkflowId(name, '2020-01-02'));

  // An instance of the head: a lease renewed, asleep when idle, woken, stopped.
  const instance = uniqueName('replay-inst');
  await launchInstance(env.client, env.taskQueue, {
    version: 1,
    id: instance,
    image: { repo: `germline/${name}`, reference: 'main' },
    payer: handle.workflowId,
    currency: 'usd',
    visibility: 'public',
    runner: 'local',
    gpus: 1,
    ratePerGpuHour: '3600',
    idleTimeoutSeconds: 2,
    maxDurationSeconds: 600,
    maxCost: '1000',
    leaseSeconds: 1,
    checkSeconds: 1,
  });
  recorded.push({ workflowId: instanceWorkflowId(instance) });
  const instanceState = async (state: string) =>
    eventually(
      async () =>
        (await instanceHandle(env.client, instance).query(instanceStatusQuery)).state === state ? true : undefined,
      `instance ${instance} to be ${state}`,
      30_000,
    );
  await instanceState('sleeping');
  await instanceHandle(env.client, instance).executeUpdate(wakeInstanceUpdate);
  await instanceHandle(env.client, instance).executeUpdate(stopInstanceUpdate, { args: [{ by: 'replay' }] });
  await waitClosed(instanceWorkflowId(instance));

  // A fresh germline's genesis (its first run and today's tag), and a learn from feedback with none to learn.
  const fresh = await env.startGermline(uniqueName('genesis'));
  await updateBudget(fresh.handle, depositUpdate, { amount: '5000', currency: 'usd', reference: 'seed' });
  await ensureGenesis(env.client, {
    germline: fresh.name,
    taskQueue: env.taskQueue,
    training: {
      version: 1,
      id: uniqueName('genesis-run'),
      payer: fresh.handle.workflowId,
      currency: 'usd',
      output: { repo: `germline/${fresh.name}`, branch: 'main' },
      runner: 'local',
      command: tinyTrainerCommand(['--steps', '30', '--save-every', '30']),
      gpus: 1,
      maxCost: '1000',
      ratePerGpuHour: '3600',
      maxDurationSeconds: 600,
      maxPreemptions: 0,
    },
  });
  const genesis = await env.client.workflow.getHandle<typeof genesisWorkflow>(genesisWorkflowId(fresh.name)).result();
  expect(genesis.daily).toMatchObject({ status: 'published' });
  recorded.push({ workflowId: genesisWorkflowId(fresh.name) });
  const learnRun = uniqueName('learn');
  const learned = await env.client.workflow.execute(learnWorkflow, {
    workflowId: learnWorkflowId(learnRun),
    taskQueue: env.taskQueue,
    args: [
      {
        germline: fresh.name,
        runId: learnRun,
        maxCost: '1000',
        currency: 'usd',
        evalGate: null,
        decision: {
          id: `${fresh.name}/1/0`,
          policy: 'rules',
          observationDigest: 'sha256:replay',
          proposal: { kind: 'learn', maxCost: '1000', records: 1 },
        },
      },
    ],
  });
  expect(learned.outcome).toBe('nothing-new');
  recorded.push({ workflowId: learnWorkflowId(learnRun) });

  // A trainer's credit: started as the platform starts it, with a deposit booked.
  const trainer = uniqueName('tr');
  const credit = await creditHandle(env.client, env.taskQueue, trainer, 'usd');
  recorded.push({ workflowId: credit.workflowId });
  await updateBudget(credit, depositUpdate, { amount: '2000', currency: 'usd', reference: 'paid-in' });

  // An allotment of that credit for priced calls: reserved, open a second, settled with nothing used.
  const allotment = uniqueName('allotment');
  await env.db.usageAllotment.create({
    data: { id: allotment, payer: credit.workflowId, handle: trainer, currency: 'usd', state: 'opening' },
  });
  const opening = await env.client.workflow.execute(allotmentWorkflow, {
    workflowId: allotmentWorkflowId(allotment),
    taskQueue: env.taskQueue,
    args: [
      {
        id: allotment,
        payer: credit.workflowId,
        currency: 'usd',
        amount: '100',
        openSeconds: 1,
        germline: fresh.name,
        feePercent: 10,
      },
    ],
  });
  expect(opening.state).toBe('open');
  expect(await env.db.usageAllotment.findUnique({ where: { id: allotment } })).toMatchObject({
    state: 'settled',
    spent: 0n,
  });
  recorded.push({ workflowId: allotmentWorkflowId(allotment) });

  // A sponsor's fund, started as the platform starts it, with a deposit booked.
  const fund = await sponsorHandle(env.client, env.taskQueue, uniqueName('sponsor'), 'usd');
  recorded.push({ workflowId: fund.workflowId });
  await updateBudget(fund, depositUpdate, { amount: '5000', currency: 'usd', reference: 'paid-in' });

  // A probe of the germline's head: this worker runs no probes, so its one attempt fails and it ends as an error.
  const probed = await requireManifest(env.store, `germline/${name}`, 'main');
  const probe = await startProbe(env.client, env.taskQueue, {
    version: 1,
    repo: `germline/${name}`,
    digest: probed.digest,
    germline: name,
    trigger: 'manual',
    attempts: 1,
  });
  expect(await env.client.workflow.getHandle<typeof probeWorkflow>(probe.workflowId).result()).toMatchObject({
    state: 'error',
  });
  recorded.push({ workflowId: probe.workflowId });

  // The upkeep schedules' workflows (probes are off on this worker; no feedback to build from).
  for (const upkeep of [probeSweepWorkflow, datasetBuildsWorkflow] as const) {
    const workflowId = uniqueName(upkeep.name);
    await env.client.workflow.execute(upkeep, { workflowId, taskQueue: env.taskQueue, args: [{ germline: name }] });
    recorded.push({ workflowId });
  }

  const histories = await Promise.all(
    recorded.map(async ({ workflowId, runId }) => ({
      workflowId,
      history: await env.client.workflow.getHandle(workflowId, runId).fetchHistory(),
    })),
  );
  const types = new Map(histories.map((h) => [h.workflowId, typeOf(h.history)]));

  // Every workflow type the worker registers has a history here.
  const missing = Object.keys(registered).filter((type) => ![...types.values()].includes(type));
  expect(missing).toEqual([]);

  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: { codePath: testGlobals().workflowBundlePath } },
    histories,
  )) {
    replayed += 1;
    if (result.error) failures.push(`${types.get(result.workflowId)} ${result.workflowId}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed).toBe(histories.length);

  // The replayer does report a history that the code does not produce: the germline's replayed as a credit's
  // (the SDK logs the expected "Nondeterminism error" as a WARN).
  const germlineHistory = histories[0]!.history;
  const forged = structuredClone(germlineHistory);
  forged.events![0]!.workflowExecutionStartedEventAttributes!.workflowType!.name = 'creditWorkflow';
  let forgedError: Error | undefined;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: { codePath: testGlobals().workflowBundlePath } },
    [{ workflowId: 'forged', history: forged }],
  ))
    forgedError = result.error;
  expect(forgedError).toBeDefined();
});
