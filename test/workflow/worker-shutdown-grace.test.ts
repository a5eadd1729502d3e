// A worker told to stop (SIGTERM, as Kubernetes stops a pod) lets the activities it is running finish
// within its grace time (COMPUTATRUM_SHUTDOWN_GRACE_SECONDS) before it cancels them: here a training
// run's, which stops its trainer as soon as it is cancelled. With a grace time the run ends on its
// first attempt in the stopping worker; with none it is cancelled at once and the next worker runs
// it again. The stopping worker is an OS process of its own (test/helpers/worker-process.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { updateBudget } from '../../temporal/budget-client';
import { startTrainingRun } from '../../temporal/training-client';
import { depositUpdate } from '../../workflows/budget-api';
import { germlineWorkflowId } from '../../workflows/names';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { startWorkerProcess } from '../helpers/worker-process';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

const EventType = temporal.api.enums.v1.EventType;

jest.setTimeout(180_000);

/**
 * Starts a run on a worker process with `graceSeconds` (its own task queue), stops that worker
 * mid-run, and lets an in-process worker finish whatever is left.
 */
async function stopMidRun(graceSeconds: number) {
  const env: TestEnvironment = await testEnvironment();
  try {
    return await runAndStop(env, graceSeconds);
  } finally {
    await env.close();
  }
}

async function runAndStop(env: TestEnvironment, graceSeconds: number) {
  const worker = await startWorkerProcess({
    taskQueue: env.taskQueue,
    dataDir: env.dataDir,
    storeDir: env.store.location,
    instancesDir: mkdtempSync(path.join(tmpdir(), 'computatrum-grace-')),
    instanceCommand: ECHO_INSTANCE,
    shutdownGraceSeconds: graceSeconds,
  });
  const { name, handle } = await env.startGermline();
  await updateBudget(handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
  const id = uniqueName('grace');
  const run = await startTrainingRun(env.client, env.taskQueue, {
    version: 1,
    id,
    payer: germlineWorkflowId(name),
    currency: 'usd',
    output: { repo: `germline/${name}`, branch: 'main' },
    runner: 'local',
    command: tinyTrainerCommand(['--steps', '1500', '--save-every', '1500']),
    gpus: 1,
    maxCost: '10000',
    ratePerGpuHour: '3600',
    maxDurationSeconds: 600,
    maxPreemptions: 3,
  });
  // The trainer is stepping when the worker is told to stop.
  await eventually(async () => {
    const row = await env.db.trainingRun.findUnique({ where: { id } });
    return row?.state === 'running' && (row.step ?? 0) > 0 ? true : undefined;
  }, 'the trainer to be stepping');
  await worker.stop(90_000);
  await env.startWorker();
  const result = await run.result();
  // The attempt on which the trainer's activity completed, and which worker completed it.
  const history = (await run.fetchHistory()).events ?? [];
  const started = history.filter(
    (event) =>
      event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
      history.some(
        (scheduled) =>
          String(scheduled.eventId) === String(event.activityTaskStartedEventAttributes?.scheduledEventId) &&
          scheduled.activityTaskScheduledEventAttributes?.activityType?.name === 'runTraining',
      ),
  );
  const completed = history.find(
    (event) =>
      event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED &&
      started.some((s) => String(s.eventId) === String(event.activityTaskCompletedEventAttributes?.startedEventId)),
  );
  return {
    result,
    attempt: started.at(-1)?.activityTaskStartedEventAttributes?.attempt,
    completedBy: completed?.activityTaskCompletedEventAttributes?.identity ?? '',
    stoppedPid: worker.pid,
  };
}

test('SIGTERM mid-run with a grace time: the stopping worker lets the run finish on its first attempt, then exits', async () => {
  const { result, attempt, completedBy, stoppedPid } = await stopMidRun(60);
  expect(result).toMatchObject({ state: 'succeeded' });
  expect(attempt).toBe(1);
  expect(completedBy).toMatch(new RegExp(`^${stoppedPid}@`));
});

test('SIGTERM mid-run without one: the run is cancelled at once and the next worker resumes it', async () => {
  const { result, attempt, completedBy, stoppedPid } = await stopMidRun(0);
  expect(result).toMatchObject({ state: 'succeeded' });
  expect(attempt).toBeGreaterThan(1);
  expect(completedBy).not.toMatch(new RegExp(`^${stoppedPid}@`));
});
