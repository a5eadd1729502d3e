// The germline's budget on the real engine: a Temporal dev server, a real worker, and the journal
// in a real PostgreSQL. Activities are the production ones.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { budgetRefusal, reconciledBooks } from '../helpers/budget';
import { type GermlineHandle } from '../../temporal/germline-client';
import { testGlobals } from '../setup/globals';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, type TestWorker } from '../helpers/temporal';
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
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;
let worker: TestWorker;
const germlines: string[] = [];

beforeAll(async () => {
  env = await testEnvironment();
  worker = await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

async function newGermline(prefix: string): Promise<{ name: string; handle: GermlineHandle }> {
  const germline = await env.startGermline(`${prefix}-${Math.random().toString(36).slice(2, 8)}`);
  germlines.push(germline.handle.workflowId);
  return germline;
}

const deposit = (handle: GermlineHandle, amount: string, reference: string) =>
  updateBudget(handle, depositUpdate, { amount, currency: 'usd', reference });
const reserve = (handle: GermlineHandle, amount: string, ref: string, purpose = 'training run') =>
  updateBudget(handle, reserveUpdate, { amount, ref, purpose });

async function expectBooksAgree(name: string, handle: GermlineHandle): Promise<void> {
  const result = await reconciledBooks(env.db, handle, name);
  expect(result.rows.filter((row) => !row.agrees)).toEqual([]);
  expect(result.agrees).toBe(true);
}

test('a deposit sent twice with the same reference is booked once', async () => {
  const { name, handle } = await newGermline('deposit');
  const first = await deposit(handle, '10000', 'wire-1');
  const second = await deposit(handle, '10000', 'wire-1');
  expect(first).toMatchObject({ duplicate: false, available: '10000' });
  expect(second).toMatchObject({ duplicate: true, sequence: first.sequence, available: '10000' });

  const reused = await budgetRefusal(deposit(handle, '500', 'wire-1'));
  expect(reused.type).toBe('DuplicateReference');
  expect(reused.message).toContain('already used for a deposit of 100.00 USD');

  const status = await handle.query(statusQuery);
  expect(status).toMatchObject({ deposited: '10000', balance: '10000', available: '10000', sequence: 1 });
  await expectBooksAgree(name, handle);
});

test('a reserve over the available funds is rejected with the shortfall, and changes nothing', async () => {
  const { name, handle } = await newGermline('shortfall');
  await deposit(handle, '10000', 'd1');
  const refused = await budgetRefusal(reserve(handle, '15000', 'job-1'));
  expect(refused.type).toBe('InsufficientFunds');
  expect(refused.message).toBe('insufficient funds: requested 150.00 USD, available 100.00 USD (short by 50.00 USD)');
  expect(await handle.query(statusQuery)).toMatchObject({ reserved: '0', available: '10000', sequence: 1 });
  await expectBooksAgree(name, handle);
});

test('bad amounts and unknown reservations are refused with what was wrong', async () => {
  const { handle } = await newGermline('bad-input');
  for (const amount of ['0', '-5', '12.50', 'NaN', '']) {
    const refused = await budgetRefusal(deposit(handle, amount, `ref-${amount}`));
    expect(refused.type).toBe('InvalidRequest');
    expect(refused.message).toMatch(/amount must/);
  }
  const wrongCurrency = await budgetRefusal(
    updateBudget(handle, depositUpdate, { amount: '100', currency: 'eur', reference: 'x' }),
  );
  expect(wrongCurrency.type).toBe('CurrencyMismatch');
  const unknown = await budgetRefusal(updateBudget(handle, settleUpdate, { reservationId: 'r999', actual: '1' }));
  expect(unknown).toEqual({
    type: 'UnknownReservation',
    message: expect.stringContaining('reservation r999 is not open'),
  });
});

test('settling below the reservation releases the rest; settling above it is refused', async () => {
  const { name, handle } = await newGermline('settle');
  await deposit(handle, '10000', 'd1');
  const { reservationId } = await reserve(handle, '4000', 'job-1');
  expect(await handle.query(statusQuery)).toMatchObject({ reserved: '4000', available: '6000', balance: '10000' });

  const above = await budgetRefusal(updateBudget(handle, settleUpdate, { reservationId, actual: '4001' }));
  expect(above.type).toBe('SettleAboveReservation');
  expect(above.message).toContain('it reserved only 40.00 USD');

  const settled = await updateBudget(handle, settleUpdate, { reservationId, actual: '2500' });
  expect(settled).toEqual({ reservationId, duplicate: false, spent: '2500', released: '1500', available: '7500' });
  // A retried settle is answered again and books nothing; another amount is refused.
  expect(await updateBudget(handle, settleUpdate, { reservationId, actual: '2500' })).toMatchObject({
    duplicate: true,
    released: '1500',
  });
  const changed = await budgetRefusal(updateBudget(handle, settleUpdate, { reservationId, actual: '2000' }));
  expect(changed).toEqual({ type: 'AlreadyClosed', message: expect.stringContaining('already settled at 25.00 USD') });
  expect(await handle.query(statusQuery)).toMatchObject({
    reserved: '0',
    spent: '2500',
    balance: '7500',
    available: '7500',
  });

  const second = await reserve(handle, '1000', 'job-2');
  const released = await updateBudget(handle, releaseUpdate, { reservationId: second.reservationId });
  expect(released).toMatchObject({ released: '1000', available: '7500' });
  expect(await updateBudget(handle, releaseUpdate, { reservationId: second.reservationId })).toMatchObject({
    duplicate: true,
  });
  const settleReleased = await budgetRefusal(
    updateBudget(handle, settleUpdate, { reservationId: second.reservationId, actual: '0' }),
  );
  expect(settleReleased.type).toBe('AlreadyClosed');

  const kinds = (await handle.query(ledgerQuery)).map((entry) => entry.kind);
  expect(kinds).toEqual(['deposit', 'reserve', 'settle', 'reserve', 'release']);
  await expectBooksAgree(name, handle);
});

test('pause refuses new reservations until resume; the daily and per-reservation caps hold', async () => {
  const { name, handle } = await newGermline('policy');
  await deposit(handle, '100000', 'd1');
  await handle.signal(pauseSignal, 'audit');
  const paused = await budgetRefusal(reserve(handle, '100', 'p1'));
  expect(paused.type).toBe('Paused');
  expect((await deposit(handle, '100', 'd2')).duplicate).toBe(false); // money still comes in
  await handle.signal(resumeSignal);

  await updateBudget(handle, setPolicyUpdate, { dailySpendCap: '5000', perReservationCap: '3000' });
  const tooBig = await budgetRefusal(reserve(handle, '3001', 'c1'));
  expect(tooBig.type).toBe('ReservationCapExceeded');
  await reserve(handle, '3000', 'c2');
  const overDay = await budgetRefusal(reserve(handle, '2500', 'c3'));
  expect(overDay.type).toBe('DailyCapExceeded');
  expect(overDay.message).toContain('30.00 USD of 50.00 USD already committed');
  expect(overDay.message).toContain('over by 5.00 USD');
  await reserve(handle, '2000', 'c4');

  const badPolicy = await budgetRefusal(updateBudget(handle, setPolicyUpdate, { dailySpendCap: '-1' }));
  expect(badPolicy.type).toBe('InvalidRequest');
  const unknownKey = await budgetRefusal(updateBudget(handle, setPolicyUpdate, { weeklyCap: '1' } as never));
  expect(unknownKey.message).toContain('unknown policy key "weeklyCap"');
  await expectBooksAgree(name, handle);
});

test('150 concurrent reserves asking for 1.5x the funds never overspend, and the journal equals the workflow', async () => {
  const { name, handle } = await newGermline('concurrent');
  await deposit(handle, '50000', 'd1');
  const outcomes = await Promise.allSettled(Array.from({ length: 150 }, (_, i) => reserve(handle, '500', `job-${i}`)));
  const accepted = outcomes.filter((o) => o.status === 'fulfilled');
  const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  // Every refusal is the budget's own; anything else (a busy server the client gave up on) is named here.
  const otherFailures = rejected
    .map((r) => r.reason as WorkflowUpdateFailedError)
    .filter((error) => !(error.cause instanceof ApplicationFailure && error.cause.type === 'InsufficientFunds'))
    .map((error) => `${error.name}: ${error.message} / ${error.cause?.message}`);
  expect([...new Set(otherFailures)]).toEqual([]);
  expect(accepted).toHaveLength(100);
  const ids = new Set(
    accepted.map((o) => (o as PromiseFulfilledResult<{ reservationId: string }>).value.reservationId),
  );
  expect(ids.size).toBe(100);

  const status = await handle.query(statusQuery);
  expect(status).toMatchObject({ reserved: '50000', available: '0', balance: '50000', state: 'empty' });
  expect(status.openReservations).toHaveLength(100);
  await expectBooksAgree(name, handle);
}, 180_000); // many updates wait for the germline's 10 in-flight slots: slow on a loaded machine, never wrong

test('continue-as-new keeps balances, open reservations and idempotency memory', async () => {
  const { name, handle } = await newGermline('carry');
  const firstRunId = (await handle.describe()).runId;
  await deposit(handle, '50000', 'first-deposit');
  const kept = await reserve(handle, '1234', 'kept-open');
  // Enough history to pass the test server's low continue-as-new threshold several times.
  for (let i = 0; i < 40; i++) {
    const { reservationId } = await reserve(handle, '100', `cycle-${i}`);
    await updateBudget(handle, settleUpdate, { reservationId, actual: '60' });
  }
  const status = await handle.query(statusQuery);
  expect(status.generation).toBeGreaterThan(0);
  const description = await handle.describe();
  expect(description.runId).not.toBe(firstRunId);

  expect(status).toMatchObject({ deposited: '50000', spent: String(40 * 60), reserved: '1234' });
  expect(status.openReservations.map((r) => r.id)).toEqual([kept.reservationId]);
  expect(await deposit(handle, '50000', 'first-deposit')).toMatchObject({ duplicate: true });
  expect(await reserve(handle, '1234', 'kept-open')).toMatchObject({
    duplicate: true,
    reservationId: kept.reservationId,
  });
  await updateBudget(handle, settleUpdate, { reservationId: kept.reservationId, actual: '1000' });
  expect(await handle.query(statusQuery)).toMatchObject({ reserved: '0', spent: String(40 * 60 + 1000) });
  await expectBooksAgree(name, handle);
});

test('operators find germlines in the Temporal UI by GermlineId and BudgetState', async () => {
  const { name, handle } = await newGermline('search');
  await deposit(handle, '100', 'd1');
  await handle.signal(pauseSignal);
  const query = `GermlineId = "${name}" AND BudgetState = "paused"`;
  const found = await eventually(async () => {
    const ids: string[] = [];
    for await (const execution of env.client.workflow.list({ query })) ids.push(execution.workflowId);
    return ids.length > 0 ? ids : undefined;
  }, `a visibility record for ${query}`);
  expect(found).toEqual([handle.workflowId]);
});

test('every history recorded above replays without determinism errors', async () => {
  const histories = [];
  for (const workflowId of germlines) {
    for await (const execution of env.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
      histories.push({
        workflowId,
        history: await env.client.workflow.getHandle(workflowId, execution.runId).fetchHistory(),
      });
    }
  }
  expect(histories.length).toBeGreaterThan(germlines.length); // continue-as-new left several runs
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: { codePath: testGlobals().workflowBundlePath } },
    histories,
  )) {
    expect(result.error).toBeUndefined();
    replayed += 1;
  }
  expect(replayed).toBe(histories.length);
  expect(worker.worker.getState()).toBe('RUNNING');
});
