// The Temporal Schedules computatrum keeps: daily-gpc/<germline> at COMPUTATRUM_DAILY_TAG_CRON
// (default 00:00 UTC every day), and the upkeep beside it: probe-sweep/<germline> and
// dataset-builds/<germline> at their own crons. Created at `up`, or brought back to this definition
// if they exist (so `up` twice is a no-op, and a changed expression updates the schedule in place).
//
// Overlap BUFFER_ALL: after an outage or a backfill the days run one after another, in order, and
// none is dropped; each day's workflow id is the day, so a day runs at most once anyway.
// Catch-up window 7 days: a server down over a week-end still publishes every missed day; older
// gaps are filled on purpose with `computatrum backfill`.
import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, type ScheduleOptions } from '@temporalio/client';
import { GermlineId } from '../workflows/search-attributes';
import { dailyScheduleSummary, upkeepSummary } from '../workflows/summaries';

export const dailyScheduleId = (germline: string) => `daily-gpc/${germline}`;

/** When the daily tag is made unless configured: midnight, UTC. */
export const DEFAULT_DAILY_TAG_CRON = '0 0 * * *';

function dailySchedule(germline: string, taskQueue: string, cron: string): ScheduleOptions {
  return {
    scheduleId: dailyScheduleId(germline),
    spec: { cronExpressions: [cron], timezone: 'UTC' },
    action: {
      type: 'startWorkflow',
      workflowType: 'dailyGpcScheduleWorkflow',
      workflowId: dailyScheduleId(germline),
      staticSummary: dailyScheduleSummary(germline),
      taskQueue,
      args: [{ germline }],
      typedSearchAttributes: [{ key: GermlineId, value: germline }],
    },
    policies: { overlap: ScheduleOverlapPolicy.BUFFER_ALL, catchupWindow: '7 days', pauseOnFailure: false },
  };
}

export async function ensureDailySchedule(
  client: Client,
  options: { germline: string; taskQueue: string; cron?: string },
): Promise<'created' | 'updated'> {
  return ensureSchedule(
    client,
    dailySchedule(options.germline, options.taskQueue, options.cron ?? DEFAULT_DAILY_TAG_CRON),
  );
}

/** Creates the schedule, or brings an existing one back to this definition (in place: its history stays). */
async function ensureSchedule(client: Client, desired: ScheduleOptions): Promise<'created' | 'updated'> {
  try {
    await client.schedule.create(desired);
    return 'created';
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule.getHandle(desired.scheduleId).update((current) => ({
      ...current,
      spec: desired.spec,
      action: desired.action,
      policies: { ...current.policies, ...desired.policies },
    }));
    return 'updated';
  }
}

/** The germline's upkeep beside the daily tag (workflows/maintenance.ts), each on its own schedule. */
export const UPKEEP = {
  probeSweep: {
    id: (germline: string) => `probe-sweep/${germline}`,
    workflowType: 'probeSweepWorkflow',
    what: 'the probe sweep (breed versions and the newest gpc tag never probed)',
    setting: 'COMPUTATRUM_PROBE_SWEEP_CRON',
  },
  datasetBuilds: {
    id: (germline: string) => `dataset-builds/${germline}`,
    workflowType: 'datasetBuildsWorkflow',
    what: 'the dataset builds (feedback not learned yet)',
    setting: 'COMPUTATRUM_DATASET_BUILD_CRON',
  },
} as const;

export type UpkeepJob = keyof typeof UPKEEP;

function upkeepSchedule(job: UpkeepJob, germline: string, taskQueue: string, cron: string): ScheduleOptions {
  const { id, workflowType, what } = UPKEEP[job];
  return {
    scheduleId: id(germline),
    spec: { cronExpressions: [cron], timezone: 'UTC' },
    action: {
      type: 'startWorkflow',
      workflowType,
      workflowId: id(germline),
      staticSummary: upkeepSummary(germline, what),
      taskQueue,
      args: [{ germline }],
      typedSearchAttributes: [{ key: GermlineId, value: germline }],
    },
    // One at a time; a run missed while the server was down is made up once, not once per miss.
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false },
  };
}

/** Creates or updates the upkeep schedules at their configured crons; answers what each became. */
export async function ensureUpkeepSchedules(
  client: Client,
  options: { germline: string; taskQueue: string; crons: Record<UpkeepJob, string> },
): Promise<Record<UpkeepJob, 'created' | 'updated'>> {
  const outcome = {} as Record<UpkeepJob, 'created' | 'updated'>;
  for (const job of Object.keys(UPKEEP) as UpkeepJob[])
    outcome[job] = await ensureSchedule(
      client,
      upkeepSchedule(job, options.germline, options.taskQueue, options.crons[job]),
    );
  return outcome;
}

/** Runs the daily workflow for every day from `from` to `to` (inclusive, YYYY-MM-DD). */
export async function backfillDaily(client: Client, germline: string, from: string, to: string): Promise<number> {
  const start = new Date(`${from}T00:00:00Z`);
  const end = new Date(`${to}T00:00:00Z`);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()))
    throw new Error(`days must be YYYY-MM-DD, got ${from} and ${to}`);
  if (end < start) throw new Error(`--to ${to} is before --from ${from}`);
  // The range is closed at the start and open at the end: reach one second past the last midnight.
  await client.schedule.getHandle(dailyScheduleId(germline)).backfill({
    start,
    end: new Date(end.getTime() + 1000),
    overlap: ScheduleOverlapPolicy.BUFFER_ALL,
  });
  return Math.round((end.getTime() - start.getTime()) / 86_400_000) + 1;
}
