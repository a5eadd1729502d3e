// Starting and addressing germline/<name> from outside the workflow (up, CLI, tests, platform).
import { type Client, type WorkflowHandle, WorkflowNotFoundError } from '@temporalio/client';
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import type { germlineWorkflow } from '../workflows/germline';
import { BudgetState, GermlineId } from '../workflows/search-attributes';
import { statusQuery } from '../workflows/budget-api';
import { germlineWorkflowId } from '../workflows/names';

export type GermlineHandle = WorkflowHandle<typeof germlineWorkflow>;

export function germlineHandle(client: Client, name: string): GermlineHandle {
  return client.workflow.getHandle<typeof germlineWorkflow>(germlineWorkflowId(name));
}

/**
 * Starts germline/<name> unless it runs already (then nothing changes). A germline that exists but
 * has closed is not replaced by an empty one: its money would vanish from the workflow's view.
 */
export async function ensureGermline(
  client: Client,
  options: { name: string; currency: string; taskQueue: string },
): Promise<{ handle: GermlineHandle; started: boolean }> {
  const workflowId = germlineWorkflowId(options.name);
  const existing = germlineHandle(client, options.name);
  try {
    const description = await existing.describe();
    if (description.status.name === 'RUNNING') return { handle: existing, started: false };
    throw new Error(
      `${workflowId} exists but is ${description.status.name}; a closed germline is never replaced by an empty one. ` +
        `Its books are in the journal (computatrum ledger). Inspect it in the Temporal UI, or choose another ` +
        `COMPUTATRUM_GERMLINE name.`,
    );
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
  }
  const handle = await client.workflow.start<typeof germlineWorkflow>('germlineWorkflow', {
    workflowId,
    taskQueue: options.taskQueue,
    args: [{ name: options.name, currency: options.currency }],
    // Two `up`s racing both end up with the one running germline.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [
      { key: GermlineId, value: options.name },
      { key: BudgetState, value: 'empty' },
    ],
  });
  return { handle, started: true };
}

export async function germlineStatus(client: Client, name: string) {
  return germlineHandle(client, name).query(statusQuery);
}

/** How long /healthz waits for the germline to answer. */
const HEALTH_QUERY_MS = 5_000;

/**
 * Throws, saying why, when the germline's journal has stopped booking accepted changes (for
 * /healthz). A germline that is not started yet is healthy.
 */
export async function assertJournalBooks(client: Client, name: string): Promise<void> {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () =>
        reject(
          new Error(`${germlineWorkflowId(name)} did not answer in ${HEALTH_QUERY_MS / 1000} s: is a worker running?`),
        ),
      HEALTH_QUERY_MS,
    ).unref(),
  );
  const status = await Promise.race([germlineStatus(client, name), timeout]).catch((error: unknown) => {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  });
  const failure = status?.journalFailure;
  if (failure)
    throw new Error(
      `the journal has not booked changes since ${failure.since} (${failure.message}); ${status.journalPending} accepted change(s) wait`,
    );
}
