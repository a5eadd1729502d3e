// Daily gpc tagging on the real engine: the Temporal Schedule, its backfill, the day workflow,
// the checkpoint store and the Checkpoint rows in PostgreSQL.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { publishCheckpoint } from '../../store/checkpoint';
import { backfillDaily, dailyScheduleId, ensureDailySchedule } from '../../temporal/schedules';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';

let env: TestEnvironment;
const schedules: string[] = [];

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  for (const id of schedules)
    await env.client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await env?.close();
});

async function germlineWithHead(): Promise<{ germline: string; digest: string }> {
  const germline = uniqueName('daily');
  const dir = mkdtempSync(path.join(tmpdir(), 'head-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline}`));
  const { digest } = await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'main' });
  return { germline, digest };
}

async function schedule(germline: string): Promise<void> {
  await ensureDailySchedule(env.client, { germline, taskQueue: env.taskQueue });
  schedules.push(dailyScheduleId(germline));
}

function checkpointRows(germline: string) {
  return env.db.checkpoint.findMany({ where: { repository: `germline/${germline}` }, orderBy: { tag: 'asc' } });
}

test('the schedule runs daily at 00:00 UTC, and creating it twice leaves one unchanged schedule', async () => {
  const { germline } = await germlineWithHead();
  expect(await ensureDailySchedule(env.client, { germline, taskQueue: env.taskQueue })).toBe('created');
  schedules.push(dailyScheduleId(germline));
  expect(await ensureDailySchedule(env.client, { germline, taskQueue: env.taskQueue })).toBe('updated');
  const description = await env.client.schedule.getHandle(dailyScheduleId(germline)).describe();
  expect(description.spec.calendars).toEqual([
    expect.objectContaining({ hour: [{ start: 0, end: 0, step: 1 }], minute: [{ start: 0, end: 0, step: 1 }] }),
  ]);
  expect(description.spec.timezone).toBe('UTC');
  expect(description.policies).toMatchObject({
    overlap: ScheduleOverlapPolicy.BUFFER_ALL,
    catchupWindow: 7 * 24 * 3600 * 1000,
  });
  const ids: string[] = [];
  for await (const listed of env.client.schedule.list())
    if (listed.scheduleId === dailyScheduleId(germline)) ids.push(listed.scheduleId);
  expect(ids).toEqual([dailyScheduleId(germline)]);
});

test('a changed cron expression updates the schedule in place: the next runs move to the new time', async () => {
  const { germline } = await germlineWithHead();
  expect(await ensureDailySchedule(env.client, { germline, taskQueue: env.taskQueue })).toBe('created');
  schedules.push(dailyScheduleId(germline));
  const handle = env.client.schedule.getHandle(dailyScheduleId(germline));
  const before = (await handle.describe()).info.nextActionTimes;
  expect(before.every((time) => time.toISOString().endsWith('T00:00:00.000Z'))).toBe(true);
  expect(await ensureDailySchedule(env.client, { germline, taskQueue: env.taskQueue, cron: '30 2 * * *' })).toBe(
    'updated',
  );
  const after = await handle.describe();
  expect(after.info.nextActionTimes.length).toBeGreaterThan(0);
  expect(after.info.nextActionTimes.every((time) => time.toISOString().endsWith('T02:30:00.000Z'))).toBe(true);
  // The same schedule, not a second one.
  const ids: string[] = [];
  for await (const listed of env.client.schedule.list())
    if (listed.scheduleId === dailyScheduleId(germline)) ids.push(listed.scheduleId);
  expect(ids).toEqual([dailyScheduleId(germline)]);
});

test('a backfill of 3 days gives 3 immutable tags on the head, with distinct nicknames, rows and model cards', async () => {
  const { germline, digest } = await germlineWithHead();
  await schedule(germline);
  expect(await backfillDaily(env.client, germline, '2026-11-20', '2026-11-22')).toBe(3);
  const rows = await eventually(
    async () => {
      const found = await checkpointRows(germline);
      return found.length === 3 ? found : undefined;
    },
    '3 daily checkpoints',
    45_000,
  );
  expect(rows.map((r) => r.tag)).toEqual(['gpc-2026-11-20', 'gpc-2026-11-21', 'gpc-2026-11-22']);
  expect(rows.every((r) => r.status === 'published' && r.digest === digest)).toBe(true);
  expect(new Set(rows.map((r) => r.nickname)).size).toBe(3);
  for (const row of rows) expect(row.nickname).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
  expect(await env.store.listTags(`germline/${germline}`)).toEqual([
    'gpc-2026-11-20',
    'gpc-2026-11-21',
    'gpc-2026-11-22',
    'main',
  ]);
  const card = path.join(env.dataDir, 'model-cards', 'germline', germline, 'gpc-2026-11-21.md');
  expect(readFileSync(card, 'utf8')).toContain(`- digest: \`${digest}\``);
});

test('the same day run twice gives one tag and one row', async () => {
  const { germline } = await germlineWithHead();
  await schedule(germline);
  const first = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: uniqueName('day-run'),
    taskQueue: env.taskQueue,
    args: [{ germline, day: '2026-11-23' }],
  });
  const second = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: uniqueName('day-run'),
    taskQueue: env.taskQueue,
    args: [{ germline, day: '2026-11-23' }],
  });
  expect(second).toEqual(first);
  // And through the schedule: the day's workflow id is the day, so a second backfill does nothing new.
  await backfillDaily(env.client, germline, '2026-11-24', '2026-11-24');
  await backfillDaily(env.client, germline, '2026-11-24', '2026-11-24');
  const day = await env.client.workflow.getHandle(`daily-gpc/${germline}/2026-11-24`);
  await eventually(
    async () => ((await day.describe().catch(() => undefined))?.status.name === 'COMPLETED' ? true : undefined),
    'the day workflow to complete',
    45_000,
  );
  // Started by the schedule's run as a child, it still reads as what it is in the Temporal UI's list.
  expect(await (await day.describe()).staticSummary()).toBe(
    `daily gpc tag of germline ${germline} for 2026-11-24: gpc-2026-11-24 on its head`,
  );
  const rows = await checkpointRows(germline);
  expect(rows.map((r) => r.tag)).toEqual(['gpc-2026-11-23', 'gpc-2026-11-24']);
  expect(await env.store.listTags(`germline/${germline}`)).toEqual(['gpc-2026-11-23', 'gpc-2026-11-24', 'main']);
});

test('a day without a head checkpoint is recorded as skipped, with the reason', async () => {
  const germline = uniqueName('headless');
  const result = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: uniqueName('day-run'),
    taskQueue: env.taskQueue,
    args: [{ germline, day: '2026-11-25' }],
  });
  expect(result).toMatchObject({
    status: 'skipped',
    tag: 'gpc-2026-11-25',
    reason: `no head checkpoint yet: push one to germline/${germline}:main`,
  });
  expect(await checkpointRows(germline)).toEqual([
    expect.objectContaining({ status: 'skipped', tag: 'gpc-2026-11-25' }),
  ]);
});
