// A burst against one budget from a plain Temporal client (no retries of our own): every caller
// gets an answer, accepted or refused for a budget reason, never a transport error, and the books
// agree afterwards. The test server suggests continue-as-new every few hundred events, so the burst
// also takes the germline into a new run.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eventually } from '../helpers/eventually';
import { reconciledBooks } from '../helpers/budget';
import { type TestEnvironment, testEnvironment } from '../helpers/temporal';
import { depositUpdate, reserveUpdate, statusQuery } from '../../workflows/budget-api';

jest.setTimeout(180_000);

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

test('500 concurrent reserves of 5.00 against 1,000.00: exactly 200 accepted, 300 refused with the shortfall, nothing else', async () => {
  const { name, handle } = await env.startGermline();
  // 1,000.00 in all, the last of it as concurrent deposits of 0.01 that bring the history close to
  // the server's suggestion to continue as new (TEST_CONTINUE_AS_NEW_AFTER events), which the burst then crosses.
  const cents = 170;
  await handle.executeUpdate(depositUpdate, {
    args: [{ amount: String(100000 - cents), currency: 'usd', reference: 'burst' }],
  });
  await Promise.all(
    Array.from({ length: cents }, (_, i) =>
      handle.executeUpdate(depositUpdate, { args: [{ amount: '1', currency: 'usd', reference: `cent-${i}` }] }),
    ),
  );
  const generationBefore = (await handle.query(statusQuery)).generation;

  const answers = await Promise.all(
    Array.from({ length: 500 }, async (_, i) => {
      try {
        const result = await handle.executeUpdate(reserveUpdate, {
          args: [{ amount: '500', ref: `burst-${i}`, purpose: 'burst' }],
        });
        return { kind: 'accepted' as const, id: result.reservationId };
      } catch (error) {
        if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
          return { kind: 'refused' as const, type: error.cause.type, message: error.cause.message };
        }
        return { kind: 'error' as const, message: String(error) };
      }
    }),
  );

  expect(answers.filter((a) => a.kind === 'error')).toEqual([]);
  const accepted = answers.filter((a) => a.kind === 'accepted');
  const refused = answers.filter((a) => a.kind === 'refused');
  expect(accepted).toHaveLength(200);
  expect(new Set(accepted.map((a) => a.id)).size).toBe(200);
  expect(refused).toHaveLength(300);
  for (const refusal of refused) {
    expect(refusal).toMatchObject({
      type: 'InsufficientFunds',
      message: expect.stringMatching(/available 0\.00 USD \(short by 5\.00 USD\)/),
    });
  }

  const status = await handle.query(statusQuery);
  expect(status).toMatchObject({ reserved: '100000', available: '0', deposited: '100000' });
  expect(status.openReservations).toHaveLength(200);
  // The burst takes the germline past the server's suggestion to continue as new: it does, with every reservation carried.
  const next = await eventually(async () => {
    const latest = await handle.query(statusQuery);
    return latest.generation > generationBefore ? latest : undefined;
  }, 'the germline to continue as new');
  expect(next.openReservations.map((r) => r.id).sort()).toEqual(status.openReservations.map((r) => r.id).sort());

  // The journal is a projection of the workflow's history: it catches up, and then agrees item by item.
  const books = await reconciledBooks(env.db, handle, name);
  expect(books.rows.filter((r) => !r.agrees)).toEqual([]);
  expect(books.agrees).toBe(true);
});
