// The worker stops in the middle of a stream of budget changes and another one takes over:
// every change is applied and booked exactly once.
import { reconciledBooks } from '../helpers/budget';
import { type TestEnvironment, testEnvironment } from '../helpers/temporal';
import { depositUpdate, ledgerQuery, reserveUpdate, settleUpdate, statusQuery } from '../../workflows/budget-api';
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;
beforeAll(async () => {
  env = await testEnvironment();
});
afterAll(async () => {
  await env?.close();
});

test('a worker stopped mid-sequence and replaced loses nothing and doubles nothing', async () => {
  const first = await env.startWorker();
  const { name, handle } = await env.startGermline();
  const rounds = 12;
  let completed = 0;
  let halfway!: () => void;
  const reachedHalfway = new Promise<void>((resolve) => (halfway = resolve));

  const sequence = (async () => {
    for (let i = 0; i < rounds; i++) {
      await updateBudget(handle, depositUpdate, { amount: '1000', currency: 'usd', reference: `wire-${i}` });
      const { reservationId } = await updateBudget(handle, reserveUpdate, {
        amount: '600',
        ref: `job-${i}`,
        purpose: 'training',
      });
      await updateBudget(handle, settleUpdate, { reservationId, actual: '250' });
      completed += 1;
      if (completed === rounds / 2) halfway();
    }
  })();

  await reachedHalfway;
  await first.stop(); // the rest of the sequence waits for a worker
  expect(completed).toBeLessThan(rounds);
  await env.startWorker();
  await sequence;

  const status = await handle.query(statusQuery);
  expect(status).toMatchObject({
    deposited: String(rounds * 1000),
    spent: String(rounds * 250),
    reserved: '0',
    available: String(rounds * 750),
    sequence: rounds * 3,
  });
  const ledger = await handle.query(ledgerQuery);
  expect(ledger.map((e) => e.sequence)).toEqual(Array.from({ length: rounds * 3 }, (_, i) => i + 1));
  const books = await reconciledBooks(env.db, handle, name);
  expect(books.rows.filter((r) => !r.agrees)).toEqual([]);
  expect(books.agrees).toBe(true);
});
