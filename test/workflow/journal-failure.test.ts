// A journal that cannot book never wedges a budget silently: the germline keeps answering, shows
// the failure (status, the BudgetState search attribute, the health check), refuses new money in
// with a clear reason, still takes settles, and books everything once the database is back.
import { NativeConnection, type Worker } from '@temporalio/worker';
import { openDatabase } from '../../db/prisma';
import { assertJournalBooks } from '../../temporal/germline-client';
import { createWorker } from '../../worker/worker';
import { BudgetState } from '../../workflows/search-attributes';
import { eventually } from '../helpers/eventually';
import { budgetRefusal, reconciledBooks } from '../helpers/budget';
import { type TestEnvironment, testEnvironment } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';
import { depositUpdate, reserveUpdate, settleUpdate, statusQuery } from '../../workflows/budget-api';

jest.setTimeout(180_000);

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
});

afterAll(async () => {
  await env?.close();
});

/** A worker whose database is down: a PostgreSQL address where nothing listens. */
async function workerWithDatabaseDown(): Promise<{ stop(): Promise<void> }> {
  const connection = await NativeConnection.connect({ address: testGlobals().temporalAddress });
  const db = openDatabase('postgres://postgres@127.0.0.1:1/down');
  const worker: Worker = await createWorker({
    connection,
    namespace: 'default',
    taskQueue: env.taskQueue,
    activities: { db, store: env.store, dataDir: env.dataDir, client: env.client, runners: {} },
    workflowBundlePath: testGlobals().workflowBundlePath,
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await db.$disconnect();
    },
  };
}

test('with the database down the germline answers, shows the failure, refuses new money in, and books it all once the database is back', async () => {
  const down = await workerWithDatabaseDown();
  const { name, handle } = await env.startGermline();

  // Answered at once, though nothing can be booked.
  await handle.executeUpdate(depositUpdate, { args: [{ amount: '10000', currency: 'usd', reference: 'd1' }] });
  const { reservationId } = await handle.executeUpdate(reserveUpdate, {
    args: [{ amount: '3000', ref: 'job-1', purpose: 'training' }],
  });

  const failing = await eventually(
    async () => {
      const status = await handle.query(statusQuery);
      return status.journalFailure ? status : undefined;
    },
    'the journal failure to show',
    60_000,
  );
  expect(failing).toMatchObject({
    state: 'journal-failing',
    journalPending: 2,
    journalFailure: { failures: 1, message: expect.any(String) },
  });
  await expect(assertJournalBooks(env.client, name)).rejects.toThrow(
    /the journal has not booked changes since .*; 2 accepted change\(s\) wait/,
  );
  await eventually(
    async () =>
      (await handle.describe()).typedSearchAttributes.get(BudgetState) === 'journal-failing' ? true : undefined,
    'BudgetState journal-failing in visibility',
  );

  const deposit = await budgetRefusal(
    handle.executeUpdate(depositUpdate, { args: [{ amount: '500', currency: 'usd', reference: 'd2' }] }),
  );
  expect(deposit).toMatchObject({
    type: 'JournalUnavailable',
    message: expect.stringMatching(/has not booked changes since .*no new deposits until it books again/),
  });
  const reserve = await budgetRefusal(
    handle.executeUpdate(reserveUpdate, { args: [{ amount: '500', ref: 'job-2', purpose: 'training' }] }),
  );
  expect(reserve.type).toBe('JournalUnavailable');
  // A retry of what was accepted gets the same answer; a settle closes what was reserved.
  expect(
    await handle.executeUpdate(depositUpdate, { args: [{ amount: '10000', currency: 'usd', reference: 'd1' }] }),
  ).toMatchObject({ duplicate: true });
  expect(await handle.executeUpdate(settleUpdate, { args: [{ reservationId, actual: '1000' }] })).toMatchObject({
    spent: '1000',
    released: '2000',
  });

  // The database is back (a worker that reaches it): the writer retries on its timer and books everything, in order.
  await down.stop();
  await env.startWorker();
  const books = await reconciledBooks(env.db, handle, name);
  expect(books.rows.filter((r) => !r.agrees)).toEqual([]);
  const healed = await handle.query(statusQuery);
  expect(healed).toMatchObject({ state: 'funded', journalPending: 0, spent: '1000', available: '9000' });
  expect(healed.journalFailure).toBeUndefined();
  await expect(assertJournalBooks(env.client, name)).resolves.toBeUndefined();
  expect(
    await handle.executeUpdate(reserveUpdate, { args: [{ amount: '500', ref: 'job-2', purpose: 'training' }] }),
  ).toMatchObject({ amount: '500' });
});
