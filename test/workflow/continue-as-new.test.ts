// The germline's continue-as-new carries all of its state: the test dev server suggests
// continue-as-new after a few hundred events (test/setup/global-setup.ts), so a germline is driven
// with deposits until its run id changes, and then everything set before is asked again through the
// server: policy, pause, what was committed today, closed reservations (a retried settle or release is
// answered identically), deposit idempotency, the newest reserve refs and closes (the state carries a
// bounded part of each memory), autonomy settings and a proposal waiting for approval.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { journalBalances, reconcile } from '../../activities/journal';
import { type GermlineHandle } from '../../temporal/germline-client';
import { approveUpdate, autonomyQuery, setAutonomyUpdate, tickUpdate } from '../../workflows/autonomy-api';
import { Budget, initialBudgetState } from '../../workflows/budget';
import { childrenQuery } from '../../workflows/child-api';
import { germlineWorkflow } from '../../workflows/germline';
import { type GermlineInput } from '../../workflows/germline-api';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import {
  depositUpdate,
  ledgerQuery,
  pauseSignal,
  releaseUpdate,
  reserveUpdate,
  resumeSignal,
  setPolicyUpdate,
  settleUpdate,
  statusQuery,
} from '../../workflows/budget-api';
import { germlineWorkflowId, childWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';

jest.setTimeout(120_000);

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

const deposit = (handle: GermlineHandle, amount: string, reference: string) =>
  updateBudget(handle, depositUpdate, { amount, currency: 'usd', reference });
const reserve = (handle: GermlineHandle, amount: string, ref: string) =>
  updateBudget(handle, reserveUpdate, { amount, ref, purpose: 'carried' });

async function rejection(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof WorkflowUpdateFailedError) || !(error.cause instanceof ApplicationFailure))
    throw new Error(`expected a refusal by the budget, got ${String(error)}`);
  return { type: error.cause.type ?? undefined, message: error.cause.message };
}

/** Deposits 0.01 at a time until the germline has continued as new; returns the run it continued from and how many deposits it took. */
async function driveUntilContinuedAsNew(
  handle: GermlineHandle,
  prefix: string,
): Promise<{ firstRunId: string; references: string[] }> {
  const firstRunId = (await handle.describe()).runId;
  const generation = (await handle.query(statusQuery)).generation;
  const references: string[] = [];
  // The server suggests continue-as-new after TEST_CONTINUE_AS_NEW_AFTER events: well under 200 deposits.
  for (let i = 0; i < 200; i++) {
    references.push(`${prefix}-${i}`);
    await deposit(handle, '1', references.at(-1)!);
    if ((await handle.query(statusQuery)).generation > generation) break;
  }
  expect((await handle.query(statusQuery)).generation).toBe(generation + 1);
  expect((await handle.describe()).runId).not.toBe(firstRunId);
  return { firstRunId, references };
}

/** The input the run `runId` continued as new with: the state exactly as it was carried. */
async function carriedInput(workflowId: string, runId: string): Promise<GermlineInput> {
  const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  const continued = history.events?.find(
    (e) => e.workflowExecutionContinuedAsNewEventAttributes,
  )?.workflowExecutionContinuedAsNewEventAttributes;
  expect(continued).toBeDefined();
  return defaultPayloadConverter.fromPayload<GermlineInput>(continued!.input!.payloads![0]!);
}

test('policy, pause, committed today, closed reservations, deposit memory, autonomy settings and a waiting approval survive continue-as-new', async () => {
  const { name, handle } = await env.startGermline(uniqueName('carry-all'));
  await deposit(handle, '100000', 'seed');

  // Autonomy: settings of every kind, and a spawn above the approval threshold, parked.
  const settings = {
    tickIntervalSeconds: null,
    approvalThreshold: '500',
    maxChildren: 3,
    minRunwayDays: 7,
    perChildAllowanceCap: '20000',
    rules: { purposes: ['tutor'], allowancePercent: 4 },
    evalGate: { metric: 'loss', atMost: 2.5 },
  };
  await updateBudget(handle, setAutonomyUpdate, settings);
  const parked = await handle.executeUpdate(tickUpdate, { args: [] });
  expect(parked.decisions).toEqual([
    expect.objectContaining({
      id: `${name}/1/0`,
      outcome: 'awaiting-approval',
      proposal: { kind: 'spawn', child: 'tutor', allowance: '4000', purpose: 'tutor breed' },
    }),
  ]);

  // The books: caps, one reservation open, one settled below its amount, one released.
  await updateBudget(handle, setPolicyUpdate, { dailySpendCap: '50000', perReservationCap: '20000' });
  const open = await reserve(handle, '3000', 'open-a');
  const toSettle = await reserve(handle, '2000', 'settled-b');
  const settled = await updateBudget(handle, settleUpdate, { reservationId: toSettle.reservationId, actual: '1500' });
  const toRelease = await reserve(handle, '1000', 'released-c');
  const released = await updateBudget(handle, releaseUpdate, { reservationId: toRelease.reservationId });
  expect(settled).toMatchObject({ duplicate: false, spent: '1500', released: '500' });
  expect(released).toMatchObject({ duplicate: false, released: '1000' });
  await handle.signal(pauseSignal, 'audit');

  const before = await handle.query(statusQuery);
  const autonomyBefore = await handle.query(autonomyQuery);
  expect(before).toMatchObject({
    paused: true,
    reserved: '3000',
    spent: '1500',
    policy: { dailySpendCap: '50000', perReservationCap: '20000' },
  });
  expect(autonomyBefore.pending).toHaveLength(1);
  // Read before the continue-as-new: the ledger query carries only the newest entries across it.
  const reservationDays = new Set(
    (await handle.query(ledgerQuery)).filter((e) => e.kind === 'reserve').map((e) => e.at.slice(0, 10)),
  );

  const { firstRunId, references } = await driveUntilContinuedAsNew(handle, 'fill');

  // What was carried, as the server recorded it.
  const carried = await carriedInput(germlineWorkflowId(name), firstRunId);
  expect(carried.state).toMatchObject({
    paused: true,
    policy: { dailySpendCap: '50000', perReservationCap: '20000' },
    generation: before.generation + 1,
  });
  expect(carried.autonomyState).toMatchObject({
    ticks: 1,
    pending: autonomyBefore.pending,
    limits: autonomyBefore.limits,
    decider: autonomyBefore.decider,
    evalGate: settings.evalGate,
  });
  // Committed on the day the germline reserved (its own clock): 3000 open + 1500 spent; the 500 and the 1000 returned.
  if (reservationDays.size === 1)
    expect(carried.state!.committedToday).toEqual({ day: [...reservationDays][0], amount: '4500' });

  const after = await handle.query(statusQuery);
  expect(after).toMatchObject({
    paused: true,
    state: 'paused',
    policy: before.policy,
    reserved: '3000',
    spent: '1500',
    deposited: String(100000 + references.length),
  });
  expect(after.openReservations).toEqual(before.openReservations);
  // The daily commitment counts on the day it was made: the same amount unless a UTC midnight came in between.
  expect(after.committedToday.amount).toBe(
    after.committedToday.day === carried.state!.committedToday.day ? carried.state!.committedToday.amount : '0',
  );

  // Paused still: no new reservation, but a retried one is answered with its reservation.
  expect((await rejection(reserve(handle, '100', 'new-after-can'))).type).toBe('Paused');
  expect(await reserve(handle, '3000', 'open-a')).toMatchObject({ duplicate: true, reservationId: open.reservationId });
  // Closed reservations answer retries identically; another close of them is refused.
  expect(await updateBudget(handle, settleUpdate, { reservationId: toSettle.reservationId, actual: '1500' })).toEqual({
    ...settled,
    duplicate: true,
    available: expect.any(String),
  });
  expect(await updateBudget(handle, releaseUpdate, { reservationId: toRelease.reservationId })).toEqual({
    ...released,
    duplicate: true,
    available: expect.any(String),
  });
  expect(
    (await rejection(updateBudget(handle, settleUpdate, { reservationId: toSettle.reservationId, actual: '1000' })))
      .type,
  ).toBe('AlreadyClosed');
  expect(
    (await rejection(updateBudget(handle, settleUpdate, { reservationId: toRelease.reservationId, actual: '0' }))).type,
  ).toBe('AlreadyClosed');
  // Deposits from before the continue-as-new are remembered by reference.
  const seed = await deposit(handle, '100000', 'seed');
  expect(seed).toMatchObject({ duplicate: true, sequence: 1 });
  expect(await deposit(handle, '1', references[0]!)).toMatchObject({ duplicate: true });
  expect((await rejection(deposit(handle, '2', references[0]!))).type).toBe('DuplicateReference');
  expect((await handle.query(statusQuery)).deposited).toBe(after.deposited);

  // Autonomy settings and the waiting approval are as they were, and the approval still works.
  const autonomyAfter = await handle.query(autonomyQuery);
  expect(autonomyAfter).toEqual(autonomyBefore);
  await handle.signal(resumeSignal);
  const approved = await handle.executeUpdate(approveUpdate, { args: [{ decisionId: `${name}/1/0`, by: 'carol' }] });
  expect(approved).toMatchObject({
    outcome: 'approved',
    reason: `approved by carol: spawned ${childWorkflowId(name, 'tutor')} with an allowance of 40.00 USD`,
  });
  expect(await handle.query(childrenQuery)).toEqual([
    expect.objectContaining({ name: 'tutor', allowance: '4000', state: 'active' }),
  ]);
  // The caps still hold after the continue-as-new.
  expect((await rejection(reserve(handle, '20001', 'too-big'))).type).toBe('ReservationCapExceeded');

  // The journal in PostgreSQL and the workflow agree (once what either run accepted is booked).
  const books = await eventually(async () => {
    const result = reconcile(await handle.query(statusQuery), await journalBalances(env.db, name));
    return result.agrees ? result : undefined;
  }, 'the journal to book every accepted change');
  expect(books.rows.filter((row) => !row.agrees)).toEqual([]);
  await handle.terminate('test done');
});

test('the germline carries the newest reserve refs and closed reservations (and every open one) across continue-as-new; older ones are forgotten', async () => {
  // The memories filled to their limit by the budget's own code (5000 reserves, each settled, one
  // left open early on), then handed to a germline as a carried state: forcing 5000 updates through a
  // server would take minutes. A run keeps 5000 of each; it carries the newest 300 (the journal in
  // PostgreSQL holds them all), so its state stays small.
  const LIMIT = 5000;
  const CARRIED = 300;
  const name = uniqueName('memory');
  const noon = new Date('2026-11-25T12:00:00Z');
  const budget = new Budget(initialBudgetState(name, 'usd'));
  budget.deposit({ amount: '1000000', currency: 'usd', reference: 'seed' }, 'pre/0', noon);
  const ids: string[] = [];
  let open = '';
  for (let i = 0; i <= LIMIT; i++) {
    const { reservationId } = budget.reserve(
      { amount: '10', ref: `ref-${i}`, purpose: 'fill' },
      `pre/r${i}`,
      noon,
    ).result;
    budget.settle({ reservationId, actual: '6' }, `pre/s${i}`, noon);
    ids.push(reservationId);
    if (i === 1)
      open = budget.reserve({ amount: '10', ref: 'kept-open', purpose: 'open' }, 'pre/open', noon).result.reservationId;
  }
  const state = budget.snapshot();
  // Booked already (this germline's journal starts empty; only what follows is booked).
  state.unjournaled = [];
  expect(state.reserveRefs).toHaveLength(LIMIT);
  expect(state.reserveRefs[0]![0]).toBe('kept-open'); // ref-0 and ref-1 were evicted by the newest
  expect(state.closed).toHaveLength(LIMIT);
  expect(state.closed[0]![0]).toBe(ids[1]);

  const handle = await env.client.workflow.start(germlineWorkflow, {
    workflowId: germlineWorkflowId(name),
    taskQueue: env.taskQueue,
    args: [{ name, currency: 'usd', state, decider: { policy: 'rules', tickIntervalSeconds: null } }],
  });
  const { firstRunId } = await driveUntilContinuedAsNew(handle, 'fill');
  const carried = (await carriedInput(germlineWorkflowId(name), firstRunId)).state!;
  expect(carried.reserveRefs).toEqual([state.reserveRefs[0], ...state.reserveRefs.slice(-CARRIED)]);
  expect(carried.closed).toEqual(state.closed.slice(-CARRIED));
  expect(carried.recent).toHaveLength(100);

  // After the continue-as-new: the open reservation's ref and the oldest carried ref and close still answer as duplicates...
  const oldest = LIMIT + 1 - CARRIED;
  expect(await reserve(handle, '10', 'kept-open')).toMatchObject({ duplicate: true, reservationId: open });
  expect(await reserve(handle, '10', `ref-${oldest}`)).toMatchObject({ duplicate: true, reservationId: ids[oldest] });
  expect(await updateBudget(handle, settleUpdate, { reservationId: ids[oldest]!, actual: '6' })).toMatchObject({
    duplicate: true,
    spent: '6',
    released: '4',
  });
  // ...the ones before them are forgotten: that close is unknown, that ref makes a new reservation.
  expect(
    (await rejection(updateBudget(handle, settleUpdate, { reservationId: ids[oldest - 1]!, actual: '6' }))).type,
  ).toBe('UnknownReservation');
  const reused = await reserve(handle, '20', `ref-${oldest - 1}`);
  expect(reused).toMatchObject({ duplicate: false });
  expect(ids).not.toContain(reused.reservationId);
  await eventually(
    async () => ((await handle.query(statusQuery)).journalPending === 0 ? true : undefined),
    'the journal to book every accepted change',
  );
  await handle.terminate('test done');
});
