// Training runs' loss curves (the TrainingLossPoint rows): the points a run's progress lines reported,
// appended with its progress by activities/training.ts, and read back downsampled for the charts of
// the operator console and the hub. Keyed by run and step, so a retried attempt adds nothing twice.
import { Prisma } from '@prisma/client';
import type { Database } from './prisma';

export interface LossPoint {
  step: number;
  loss: number;
}

/** Points drawn of one run at most: enough for a curve a few hundred pixels wide. */
export const DRAWN_LOSS_POINTS = 200;

/** Past this many steps a run keeps a point only every 1/THINNING of its steps so far (a few thousand points for 10⁹ steps). */
const THINNING = 256;

/** The largest step an Int column holds. */
const MAX_STEP = 2 ** 31 - 1;

/**
 * Whether the point at `step` is kept, `lastKept` the step of the last one kept: every step up to
 * THINNING, then points ever further apart as the run grows, so long runs stay bounded.
 */
export function lossPointKept(step: number, lastKept: number | undefined): boolean {
  if (lastKept === undefined || step < lastKept) return true;
  return step - lastKept >= Math.max(1, Math.ceil(step / THINNING));
}

/** Collects the points a run reports between two writes of its progress, thinned as they come. */
export class LossPointBuffer {
  private pending: LossPoint[] = [];
  private lastKept: number | undefined;

  /** A progress report: a point when it has a step and a finite loss not seen yet. */
  offer(progress: { step?: number; loss?: number }): void {
    const { step, loss } = progress;
    if (step === undefined || loss === undefined || !Number.isFinite(loss)) return;
    if (!Number.isSafeInteger(step) || step < 0 || step > MAX_STEP) return;
    if (!lossPointKept(step, this.lastKept)) return;
    this.lastKept = step;
    this.pending.push({ step, loss });
  }

  /** The points collected since the last call. */
  take(): LossPoint[] {
    const points = this.pending;
    this.pending = [];
    return points;
  }

  /** Points taken whose write failed: the next write carries them. */
  putBack(points: LossPoint[]): void {
    this.pending = [...points, ...this.pending];
  }
}

/** Appends points to a run's curve; a step it holds already keeps its first loss. */
export async function recordLossPoints(db: Database, runId: string, points: LossPoint[]): Promise<void> {
  if (points.length === 0) return;
  await db.trainingLossPoint.createMany({
    data: points.map((p) => ({ runId, step: p.step, loss: p.loss })),
    skipDuplicates: true,
  });
}

/**
 * The loss curves of runs, by run id, each in step order and downsampled in PostgreSQL to at most
 * `maxPoints` evenly spaced points, its first and last always among them. Runs without points are absent.
 */
export async function lossCurves(
  db: Database,
  runIds: string[],
  maxPoints = DRAWN_LOSS_POINTS,
): Promise<Map<string, LossPoint[]>> {
  const ids = [...new Set(runIds)];
  const curves = new Map<string, LossPoint[]>();
  if (ids.length === 0) return curves;
  const most = Math.max(2, Math.floor(maxPoints));
  // Every stride-th point from the first (stride = ⌈(n − 1) / (most − 1)⌉), plus the last: at most `most`.
  const rows = await db.$queryRaw<Array<{ runId: string; step: number; loss: number }>>(Prisma.sql`
    SELECT "runId", "step", "loss" FROM (
      SELECT "runId", "step", "loss",
        row_number() OVER (PARTITION BY "runId" ORDER BY "step") - 1 AS i,
        count(*) OVER (PARTITION BY "runId") AS n
      FROM "TrainingLossPoint" WHERE "runId" IN (${Prisma.join(ids)})
    ) ranked
    WHERE n <= ${most} OR i = n - 1 OR i % ceil((n - 1)::numeric / ${most - 1})::bigint = 0
    ORDER BY "runId", "step"`);
  for (const row of rows) {
    const curve = curves.get(row.runId) ?? [];
    if (curve.length === 0) curves.set(row.runId, curve);
    curve.push({ step: Number(row.step), loss: Number(row.loss) });
  }
  return curves;
}
