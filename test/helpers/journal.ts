// The books as the journal holds them, once it has caught up with the workflow: budget updates are
// answered when they are durable in history, and the journal writer books them moments later.
import type { WorkflowHandle } from '@temporalio/client';
import type { Database } from '../../activities/db/prisma';
import { journalBalances, reconcile, type Reconciliation } from '../../activities/journal';
import { statusQuery } from '../../workflows/germline-api';
import { eventually } from './eventually';

export async function reconciledBooks(db: Database, handle: WorkflowHandle, book: string): Promise<Reconciliation> {
  return eventually(async () => {
    const status = await handle.query(statusQuery);
    if (status.journalPending > 0) return undefined;
    return reconcile(status, await journalBalances(db, book));
  }, `the journal of ${book} to book every accepted change`, 60_000);
}
