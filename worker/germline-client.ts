// Starting and addressing germline/<name> from outside the workflow (up, CLI, tests, platform).
import { type Client, type WorkflowHandle, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
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

/** How often a budget update is sent again when it is lost in a continue-as-new. */
const UPDATE_ATTEMPTS = 8;

/**
 * Sends a budget update to the germline, sending it again when it was lost while the germline
 * continued as new: the server rejects an update that arrived in the closing workflow task as
 * "UnprocessedUpdate", and may briefly answer "not found" between two runs. Sending again is safe
 * because every budget update is idempotent: deposits by reference, reserves by ref, settle and
 * release by reservation id, and a policy change sets values.
 */
export async function updateGermline<Ret, Arg>(handle: GermlineHandle, update: UpdateDefinition<Ret, [Arg]>, arg: Arg): Promise<Ret> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.executeUpdate(update, { args: [arg] });
    } catch (error) {
      const lostInContinueAsNew =
        error instanceof WorkflowNotFoundError ||
        (error instanceof WorkflowUpdateFailedError &&
          error.cause instanceof ApplicationFailure &&
          error.cause.type === 'UnprocessedUpdate');
      if (!lostInContinueAsNew || attempt >= UPDATE_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
    }
  }
}
