// allotment/<id>: credit reserved from a payer's budget for priced calls, metered by the gateway in
// PostgreSQL (db/usage.ts) and settled here. It reserves once, is open for calls until it expires or
// the gateway finds it full, then waits for the calls still in flight, settles what they used with the
// payer (once: settles are idempotent by reservation id), and books the trainers' earnings and the
// platform's fee. At hundreds of calls a second, the payer's budget sees two updates an allotment.
import { condition, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { BudgetActivities } from '../activities/budget';
import type { UsageActivities } from '../activities/usage';
import {
  allotmentOpenedUpdate,
  type AllotmentInput,
  type AllotmentOpening,
  closeAllotmentSignal,
} from './allotment-api';
import { now } from './clock';
import { failureMessage } from './failures';
import { allotmentReservationRef } from './names';

/** Bookkeeping: quick, idempotent, retried until it succeeds (money must never be left reserved). */
const bookkeeping = proxyActivities<UsageActivities & BudgetActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** A reservation the budget refuses is final (its failure is non-retryable); anything else is retried a while. */
const reserving = proxyActivities<BudgetActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

/** A call held longer than this has lost its gateway: its hold is released, uncharged. */
const STALE_CALL_MS = 15 * 60_000;

export async function allotmentWorkflow(input: AllotmentInput): Promise<AllotmentOpening> {
  let opening: AllotmentOpening | undefined;
  let closeAsked = false;
  setHandler(allotmentOpenedUpdate, async () => {
    await condition(() => opening !== undefined);
    return opening!;
  });
  setHandler(closeAllotmentSignal, () => {
    closeAsked = true;
  });

  let reservationId: string;
  try {
    ({ reservationId } = await reserving.reserveFromBudget({
      payer: input.payer,
      ref: allotmentReservationRef(input.id),
      amount: input.amount,
      purpose: `priced calls (allotment ${input.id})`,
    }));
  } catch (error) {
    opening = { state: 'refused', reason: failureMessage(error) };
    await bookkeeping.refuseAllotment({ id: input.id, reason: opening.reason });
    return opening;
  }
  const expiresAt = new Date(now().getTime() + input.openSeconds * 1000).toISOString();
  await bookkeeping.openAllotment({ id: input.id, reservationId, amount: input.amount, expiresAt });
  opening = { state: 'open', expiresAt };

  await condition(() => closeAsked, input.openSeconds * 1000);
  await bookkeeping.closeAllotment({ id: input.id });
  // Calls held when it closed finish against it; a call is short, so this is checked often at first.
  for (let wait = 500; ; wait = Math.min(wait * 2, 30_000)) {
    const staleBefore = new Date(now().getTime() - STALE_CALL_MS).toISOString();
    if ((await bookkeeping.heldCalls({ id: input.id, staleBefore })) === 0) break;
    await sleep(wait);
  }
  const { spent } = await bookkeeping.meteredSpend({ id: input.id });
  await bookkeeping.settleWithBudget({ payer: input.payer, reservationId, actual: spent });
  await bookkeeping.bookUsage({
    id: input.id,
    spent,
    currency: input.currency,
    germline: input.germline,
    feePercent: input.feePercent,
  });
  return opening;
}
