// What tests ask of a budget workflow: the books as the journal holds them once it has caught up
// (updates are answered when durable in history, and the journal writer books them moments later),
// and the refusal a client sees for a refused update.
import { type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Database } from '../../db/prisma';
import { journalBalances, reconcile, type Reconciliation } from '../../activities/journal';
import { eventually } from './eventually';
import { statusQuery } from '../../workflows/budget-api';

export async function reconciledBooks(db: Database, handle: WorkflowHandle, book: string): Promise<Reconciliation> {
  return eventually(
    async () => {
      const status = await handle.query(statusQuery);
      if (status.journalPending > 0) return undefined;
      return reconcile(status, await journalBalances(db, book));
    },
    `the journal of ${book} to book every accepted change`,
    60_000,
  );
}

/** The failure a client sees for a refused update: its type (the budget's reason) and message. */
export async function budgetRefusal(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (error as WorkflowUpdateFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    return { type: (cause as ApplicationFailure).type ?? undefined, message: cause!.message };
  }
  throw new Error('expected the update to be refused, but it was accepted');
}
