// Loss curves through the real progress path: the runTraining activity with the local runner and the
// real tiny trainer as a child process, writing to the test PostgreSQL; a retried attempt adds no point
// twice; and the curves read back downsampled for drawing.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createTrainingActivities } from '../../activities/training';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import type { TrainingOutcome } from '../../activities/runners/types';
import { openDatabase, type Database } from '../../db/prisma';
import { lossCurves, recordLossPoints } from '../../db/training-loss';
import { LayoutStore } from '../../store/layout';
import type { TrainingRequest } from '../../workflows/training-api';
import { localRunner } from '../../worker/runners';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

let db: Database;
let store: LayoutStore;
let dataDir: string;

beforeAll(async () => {
  db = openDatabase(testGlobals().databaseUrl);
  dataDir = mkdtempSync(path.join(tmpdir(), 'training-loss-'));
  store = await new LayoutStore(path.join(dataDir, 'store')).init();
});

afterAll(async () => {
  await db.$disconnect();
});

function request(): TrainingRequest {
  return {
    version: 1,
    id: uniqueName('loss'),
    payer: `germline/${uniqueName('g')}`,
    currency: 'usd',
    output: { repo: 'germline/loss-curves', branch: 'main' },
    runner: 'local',
    // 200 steps: a progress line (step and mean loss) every 10 steps, a checkpoint every 50.
    command: tinyTrainerCommand(['--steps', '200', '--save-every', '50']),
    gpus: 1,
    maxCost: '1000',
    ratePerGpuHour: '3600',
    maxDurationSeconds: 600,
    maxPreemptions: 3,
  };
}

const pointsOf = (runId: string) =>
  db.trainingLossPoint.findMany({ where: { runId }, orderBy: { step: 'asc' }, select: { step: true, loss: true } });

test('every progress line of the trainer is a point of the run’s loss curve; a retried attempt adds none twice', async () => {
  const activities = createTrainingActivities({
    db,
    store,
    runners: { local: localRunner({ dataDir, store, tickMs: 100 }) },
    // Row writes at most every 10 s: the points reported between two writes must all arrive.
    progressWriteMs: 10_000,
  });
  const run = request();
  await new MockActivityEnvironment().run(activities.prepareTrainingRun, run);
  const outcome = (await new MockActivityEnvironment().run(activities.runTraining, {
    request: run,
    maxGpuSeconds: 600,
  })) as TrainingOutcome;
  expect(outcome.state).toBe('succeeded');

  const points = await pointsOf(run.id);
  expect(points.map((p) => p.step)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
  expect(points.every((p) => Number.isFinite(p.loss) && p.loss > 0)).toBe(true);
  // The curve ends where the run's row says it ended, and the tiny model learns: its loss goes down.
  const row = await db.trainingRun.findUniqueOrThrow({ where: { id: run.id } });
  expect(row.step).toBe(200);
  expect(points.at(-1)!.loss).toBe(row.loss);
  expect(points.at(-1)!.loss).toBeLessThan(points[0]!.loss);

  // The activity again, as Temporal retries it: the trainer resumes from its last checkpoint.
  await new MockActivityEnvironment({ attempt: 2 }).run(activities.runTraining, { request: run, maxGpuSeconds: 600 });
  expect(await pointsOf(run.id)).toEqual(points);
});

test('a step recorded again keeps its first loss; curves are read downsampled, first and last kept', async () => {
  const short = uniqueName('short');
  const long = uniqueName('long');
  await recordLossPoints(db, short, [
    { step: 1, loss: 2.5 },
    { step: 2, loss: 2.25 },
  ]);
  await recordLossPoints(db, short, [
    { step: 2, loss: 9 },
    { step: 3, loss: 2 },
  ]);
  await recordLossPoints(
    db,
    long,
    Array.from({ length: 1_001 }, (_, i) => ({ step: i * 3, loss: 1 + 1 / (i + 1) })),
  );

  const curves = await lossCurves(db, [short, long, uniqueName('none')]);
  expect([...curves.keys()].sort()).toEqual([long, short].sort());
  expect(curves.get(short)).toEqual([
    { step: 1, loss: 2.5 },
    { step: 2, loss: 2.25 },
    { step: 3, loss: 2 },
  ]);
  const drawn = curves.get(long)!;
  expect(drawn.length).toBeLessThanOrEqual(200);
  expect(drawn.length).toBeGreaterThan(150);
  expect(drawn[0]).toEqual({ step: 0, loss: 2 });
  expect(drawn.at(-1)).toEqual({ step: 3_000, loss: 1 + 1 / 1_001 });
  expect(drawn.every((p, i) => i === 0 || p.step > drawn[i - 1]!.step)).toBe(true);
});
