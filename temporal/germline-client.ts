// Starting and addressing germline/<name> from outside the workflow (up, CLI, tests, platform).
import {
  type Client,
  isGrpcServiceError,
  ServiceError,
  type WorkflowHandle,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure, type UpdateDefinition, WorkflowIdConflictPolicy } from '@temporalio/common';
import type { germlineWorkflow } from '../workflows/germline';
import { germlineWorkflowId, statusQuery } from '../workflows/germline-api';
import { BudgetState, GermlineId } from '../workflows/search-attributes';

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

/** How long a budget update is sent again before the germline's last answer reaches the caller. */
const RESEND_FOR_MS = 120_000;

/** gRPC codes the server answers while a germline is busy or between runs. */
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const ABORTED = 10;
const UNAVAILABLE = 14;

/**
 * True for an update that never reached the germline's code and may be sent again: it was lost
 * while the germline continued as new (the server rejects it as "UnprocessedUpdate", or briefly
 * answers "not found" or "update was aborted" between two runs), the server turned it away
 * because the germline already had its limit of updates in flight (RESOURCE_EXHAUSTED), or the
 * call timed out waiting on a busy germline (its answer is asked for again: updates are idempotent).
 */
function sendAgain(error: unknown): boolean {
  if (error instanceof WorkflowNotFoundError || error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  if (error instanceof WorkflowUpdateFailedError) return error.cause instanceof ApplicationFailure && error.cause.type === 'UnprocessedUpdate';
  if (error instanceof ServiceError && isGrpcServiceError(error.cause)) return [DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE].includes(error.cause.code);
  return false;
}

/**
 * Sends a budget update to a budget workflow (the germline, a child, a trainer's credit), sending it again while the germline cannot take it yet
 * (see sendAgain), with growing, jittered pauses so a burst of callers spreads out. Sending again is
 * safe because every budget update is idempotent: deposits by reference, reserves by ref, settle
 * and release by reservation id, and a policy change sets values.
 */
export async function updateGermline<Ret, Arg>(handle: WorkflowHandle, update: UpdateDefinition<Ret, [Arg]>, arg: Arg): Promise<Ret> {
  const giveUpAt = Date.now() + RESEND_FOR_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.executeUpdate(update, { args: [arg] });
    } catch (error) {
      if (!sendAgain(error) || Date.now() >= giveUpAt) throw error;
      const pause = Math.min(1000, 25 * 2 ** Math.min(attempt, 6));
      await new Promise((resolve) => setTimeout(resolve, pause / 2 + Math.random() * (pause / 2)));
    }
  }
}

/** How long /healthz waits for the germline to answer. */
const HEALTH_QUERY_MS = 5_000;

/**
 * Throws, saying why, when the germline's journal has stopped booking accepted changes (for
 * /healthz). A germline that is not started yet is healthy.
 */
export async function assertJournalBooks(client: Client, name: string): Promise<void> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`germline/${name} did not answer in ${HEALTH_QUERY_MS / 1000} s: is a worker running?`)), HEALTH_QUERY_MS).unref());
  const status = await Promise.race([germlineStatus(client, name), timeout]).catch((error: unknown) => {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  });
  const failure = status?.journalFailure;
  if (failure) throw new Error(`the journal has not booked changes since ${failure.since} (${failure.message}); ${status.journalPending} accepted change(s) wait`);
}
