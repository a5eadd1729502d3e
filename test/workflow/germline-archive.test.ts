// The germline stays small as it grows: before it continues as new it archives its ended children in
// PostgreSQL and carries only the live ones (and bounded memories of its budget). Driven on the real
// engine: children spawned and retired, the germline pushed through continue-as-new (the test server
// suggests it after a few hundred events), then what an operator sees: the carried input's size in
// the history, every child still listed (workflow + PostgreSQL) by the CLI and GraphQL, a page at a
// time, live children that still spend and retire, archived names that stay taken, and an archive
// activity that fails after writing and is retried without writing twice.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../worker/worker';
import { listChildren } from '../../db/germline-archive';
import { type GermlineHandle } from '../../temporal/germline-client';
import { updateBudget } from '../../temporal/budget-client';
import { setAutonomyUpdate } from '../../workflows/autonomy-api';
import { depositUpdate, reserveUpdate, setPolicyUpdate, settleUpdate, statusQuery } from '../../workflows/budget-api';
import {
  type ChildRecord,
  type ChildStatus,
  childrenQuery,
  childStatusQuery,
  retireUpdate,
  spawnChildUpdate,
} from '../../workflows/child-api';
import { germlineWorkflow } from '../../workflows/germline';
import type { GermlineInput } from '../../workflows/germline-api';
import { childWorkflowId, germlineWorkflowId } from '../../workflows/names';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

jest.setTimeout(300_000);

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

const SPAWNED = 24;
const KEPT = ['c21', 'c22', 'c23'];

async function spawnableGermline(): Promise<{ name: string; handle: GermlineHandle }> {
  const germline = await env.startGermline(uniqueName('archive'));
  await updateBudget(germline.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  await updateBudget(germline.handle, setAutonomyUpdate, {
    maxChildren: SPAWNED + 10,
    minRunwayDays: 0,
    tickIntervalSeconds: null,
  });
  return germline;
}

/** Sends no-op policy updates until the germline has continued as new; returns the run it continued from. */
async function continueAsNew(handle: GermlineHandle): Promise<string> {
  const { runId } = await handle.describe();
  const generation = (await handle.query(statusQuery)).generation;
  for (let i = 0; i < 400; i++) {
    await updateBudget(handle, setPolicyUpdate, { dailySpendCap: null });
    if ((await handle.query(statusQuery)).generation > generation) return runId!;
  }
  throw new Error('the germline did not continue as new after 400 updates');
}

/** What a run carried into the next, as the server recorded it, and the size of that payload. */
async function carried(workflowId: string, runId: string): Promise<{ input: GermlineInput; bytes: number }> {
  const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  const event = history.events?.find((e) => e.workflowExecutionContinuedAsNewEventAttributes);
  const payload = event!.workflowExecutionContinuedAsNewEventAttributes!.input!.payloads![0]!;
  return { input: defaultPayloadConverter.fromPayload<GermlineInput>(payload), bytes: payload.data!.length };
}

async function retire(germline: string, child: string): Promise<void> {
  const status = (await env.client.workflow
    .getHandle(childWorkflowId(germline, child))
    .executeUpdate(retireUpdate, { args: ['archived by the test'] })) as ChildStatus;
  expect(status.state).toBe('retired');
}

async function settledTo(handle: GermlineHandle, open: number): Promise<void> {
  await eventually(
    async () => ((await handle.query(statusQuery)).openReservations.length === open ? true : undefined),
    `the germline to settle down to ${open} open reservations`,
  );
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof WorkflowUpdateFailedError)) throw new Error(`expected a refusal, got ${String(error)}`);
  return error.cause?.message ?? error.message;
}

/** The real CLI against this test's Temporal and PostgreSQL, for one germline. */
async function cli(germline: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [path.join(__dirname, '..', '..', 'bin', 'computatrum.js'), ...args],
    {
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'archive-cli-')),
        COMPUTATRUM_GERMLINE: germline,
        TEMPORAL_ADDRESS: testGlobals().temporalAddress,
        DATABASE_URL: testGlobals().databaseUrl,
      },
    },
  );
  return stdout;
}

test('ended children move to PostgreSQL at continue-as-new: the carried state stays small, every child is still listed, live ones keep working, names stay taken', async () => {
  const { name, handle } = await spawnableGermline();
  const names = Array.from({ length: SPAWNED }, (_, i) => `c${i}`);
  for (const child of names)
    await updateBudget(handle, spawnChildUpdate, { name: child, allowance: '1000', purpose: `breed ${child}` });
  for (const child of names.filter((c) => !KEPT.includes(c))) await retire(name, child);
  await settledTo(handle, KEPT.length);

  const before = await handle.query(statusQuery);
  const from = await continueAsNew(handle);
  const { input, bytes } = await carried(germlineWorkflowId(name), from);
  // Only the live children are carried; the ended ones are counted, and are rows in PostgreSQL.
  expect(input.children!.map((c) => c.name)).toEqual(KEPT);
  expect(input.archivedChildren).toBe(SPAWNED - KEPT.length);
  expect(bytes).toBeLessThan(64 * 1024);
  const rows = await env.db.archivedChild.findMany({ where: { germline: name }, orderBy: { sequence: 'asc' } });
  expect(rows.map((r) => [r.name, r.state, r.spent?.toString()])).toEqual(
    names.filter((c) => !KEPT.includes(c)).map((c) => [c, 'retired', '0']),
  );
  // The books are as they were: the archive moved records, not money.
  const after = await handle.query(statusQuery);
  expect({ reserved: after.reserved, spent: after.spent, available: after.available }).toEqual({
    reserved: before.reserved,
    spent: before.spent,
    available: before.available,
  });

  // The workflow answers for the live ones; every reader lists all of them, in spawn order.
  expect((await handle.query(childrenQuery)).map((c) => c.name)).toEqual(KEPT);
  const live = await handle.query(childrenQuery);
  const all = await listChildren(env.db, name, live);
  expect(all.children.map((c) => `${c.name}:${c.state}`)).toEqual(
    names.map((c) => `${c}:${KEPT.includes(c) ? 'active' : 'retired'}`),
  );
  expect(all.children[0]).toMatchObject({
    purpose: 'breed c0',
    allowance: '1000',
    spent: '0',
    reason: 'archived by the test',
  });
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await listChildren(env.db, name, live, { first: 10, ...(cursor ? { after: cursor } : {}) });
    pages.push(page.children.map((c) => c.name));
    cursor = page.next;
  } while (cursor);
  expect(pages.map((p) => p.length)).toEqual([10, 10, 4]);
  expect(pages.flat()).toEqual(names);

  const app = await testPlatform(env, name);
  try {
    const ask = async (query: string) => {
      const response = await app.inject({ method: 'POST', url: '/api/graphql', payload: { query } });
      return response.json() as { data?: { children: Array<{ name: string; state: string }> }; errors?: unknown[] };
    };
    const first = await ask('{ children(first: 20) { name state } }');
    expect(first.errors).toBeUndefined();
    expect(first.data!.children.map((c) => c.name)).toEqual(names.slice(0, 20));
    const rest = await ask('{ children(first: 20, after: "c19") { name state } }');
    expect(rest.data!.children).toEqual([
      { name: 'c20', state: 'retired' },
      ...KEPT.map((c) => ({ name: c, state: 'active' })),
    ]);
    expect(
      ((await ask('{ children(after: "nobody") { name } }')).errors as Array<{ message: string }>)[0]!.message,
    ).toMatch(/no child named nobody/);
  } finally {
    await app.close();
  }
  const listed = await cli(name, 'children', '--first', '30');
  for (const child of names)
    expect(listed).toMatch(new RegExp(`^${child}\\s+${KEPT.includes(child) ? 'active' : 'retired'}\\s`, 'm'));
  const json = JSON.parse(await cli(name, 'children', '--json', '--first', '5', '--after', 'c2')) as ChildRecord[];
  expect(json.map((c) => c.name)).toEqual(['c3', 'c4', 'c5', 'c6', 'c7']);

  // A live child still spends from its own books and retires; the germline settles it exactly.
  const kept = env.client.workflow.getHandle(childWorkflowId(name, 'c21'));
  await updateBudget(kept, depositUpdate, { amount: '500', currency: 'usd', reference: 'more-for-c21' });
  const { reservationId } = await updateBudget(kept, reserveUpdate, { amount: '700', ref: 'work', purpose: 'work' });
  await updateBudget(kept, settleUpdate, { reservationId, actual: '300' });
  expect(await kept.query(childStatusQuery)).toMatchObject({ allowance: '1500', spent: '300', state: 'active' });
  await retire(name, 'c21');
  await settledTo(handle, KEPT.length - 1);
  expect((await handle.query(statusQuery)).spent).toBe((BigInt(before.spent) + 300n).toString());
  expect((await handle.query(childrenQuery)).find((c) => c.name === 'c21')).toMatchObject({
    state: 'retired',
    spent: '300',
  });

  // Archived names stay taken; a new name is spawned as before.
  expect(
    await refusal(updateBudget(handle, spawnChildUpdate, { name: 'c0', allowance: '1000', purpose: 'again' })),
  ).toMatch(/a child named c0 exists already/);
  expect(
    await updateBudget(handle, spawnChildUpdate, { name: 'fresh', allowance: '1000', purpose: 'new' }),
  ).toMatchObject({
    name: 'fresh',
    state: 'active',
  });

  // The next continue-as-new archives c21 too, and nothing twice.
  const next = await continueAsNew(handle);
  const again = await carried(germlineWorkflowId(name), next);
  expect(again.input.children!.map((c) => c.name)).toEqual(['c22', 'c23', 'fresh']);
  expect(await env.db.archivedChild.count({ where: { germline: name } })).toBe(SPAWNED - KEPT.length + 1);
  for (const child of ['c22', 'c23', 'fresh'])
    await env.client.workflow.getHandle(childWorkflowId(name, child)).terminate('test done');
  await handle.terminate('test done');

  // The run that archived replays from its history (the archive activity and the patch marker in it).
  const history = await env.client.workflow.getHandle(germlineWorkflowId(name), from).fetchHistory();
  await Worker.runReplayHistory({ workflowBundle: { codePath: testGlobals().workflowBundlePath } }, history, from);
});

test('a germline carrying ended children from older code archives them; an archive activity that fails after writing is retried and writes nothing twice', async () => {
  // A worker of its own, whose archive activity writes and then fails its first attempt.
  const connection = await NativeConnection.connect({ address: testGlobals().temporalAddress });
  const taskQueue = uniqueName('archive-flaky');
  const activities = createActivities({
    db: env.db,
    store: env.store,
    dataDir: env.dataDir,
    client: env.client,
    runners: {},
  });
  let attempts = 0;
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue,
    workflowBundle: { codePath: testGlobals().workflowBundlePath },
    activities: {
      ...activities,
      async archiveEndedChildren(input: Parameters<typeof activities.archiveEndedChildren>[0]) {
        const result = await activities.archiveEndedChildren(input);
        if (++attempts === 1) throw new Error('the connection dropped after the commit');
        return result;
      },
    },
  });
  await worker.runUntil(async () => {
    const name = uniqueName('archive-old');
    const old = (child: string, state: ChildRecord['state'], reservation: number): ChildRecord => ({
      name: child,
      workflowId: childWorkflowId(name, child),
      purpose: 'from older code',
      allowance: '100',
      reservationId: `r${reservation}`,
      state,
      ...(state === 'active' ? {} : { spent: '40', reason: 'done' }),
      ...(state === 'left' ? { owner: 'alice' } : {}),
    });
    // As a germline of the code before the archive carried them: every child, ended ones included.
    const handle = await env.client.workflow.start(germlineWorkflow, {
      workflowId: germlineWorkflowId(name),
      taskQueue,
      args: [
        {
          name,
          currency: 'usd',
          decider: { policy: 'rules', tickIntervalSeconds: null },
          children: [old('old-a', 'retired', 1), old('old-b', 'left', 2)],
        },
      ],
    });
    const from = await continueAsNew(handle);
    expect(attempts).toBe(2);
    const { input } = await carried(germlineWorkflowId(name), from);
    expect(input.children).toEqual([]);
    expect(input.archivedChildren).toBe(2);
    const rows = await env.db.archivedChild.findMany({ where: { germline: name }, orderBy: { sequence: 'asc' } });
    expect(rows.map((r) => [r.name, r.state, r.owner, r.spent?.toString()])).toEqual([
      ['old-a', 'retired', null, '40'],
      ['old-b', 'left', 'alice', '40'],
    ]);
    const listed = await listChildren(env.db, name, await handle.query(childrenQuery));
    expect(listed.children).toEqual([old('old-a', 'retired', 1), old('old-b', 'left', 2)]);
    await handle.terminate('test done');
  });
  await connection.close();
});
