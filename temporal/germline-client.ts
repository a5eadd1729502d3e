// Starting and addressing germline/<name> from outside the workflow (up, CLI, tests, platform).
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  WorkflowNotFoundError,
} from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { genesisWorkflow } from '../workflows/genesis';
import type { germlineWorkflow } from '../workflows/germline';
import { BudgetState, GermlineId } from '../workflows/search-attributes';
import { type DepositResult, depositUpdate, statusQuery } from '../workflows/budget-api';
import { genesisWorkflowId, germlineWorkflowId } from '../workflows/names';
import type { TrainingRequest } from '../workflows/training-api';
import { updateBudget } from './budget-client';
import { genesisSummary, germlineSummary } from '../workflows/summaries';

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
    staticSummary: germlineSummary(options.name, options.currency),
    // Two `up`s racing both end up with the one running germline.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [
      { key: GermlineId, value: options.name },
      { key: BudgetState, value: 'empty' },
    ],
  });
  return { handle, started: true };
}

/** The reference of the germline's opening deposit: one per germline, whatever the amount. */
export const OPENING_BALANCE_REFERENCE = 'opening-balance';

/**
 * Deposits the opening balance when the germline's budget has never received a deposit; undefined
 * when it has (or the amount is 0). Idempotent by its reference, so two racing `up`s deposit once.
 */
export async function ensureOpeningBalance(
  client: Client,
  options: { name: string; currency: string; amount: bigint },
): Promise<DepositResult | undefined> {
  if (options.amount <= 0n) return undefined;
  const status = await germlineStatus(client, options.name);
  if (BigInt(status.deposited) > 0n) return undefined;
  return updateBudget(germlineHandle(client, options.name), depositUpdate, {
    amount: options.amount.toString(),
    currency: options.currency,
    reference: OPENING_BALANCE_REFERENCE,
  });
}

/**
 * Starts genesis/<germline> (workflows/genesis.ts): the first training run and today's gpc tag.
 * 'running' or 'done' when one runs or has succeeded already; a failed one is started again.
 */
export async function ensureGenesis(
  client: Client,
  options: { germline: string; taskQueue: string; training: TrainingRequest },
): Promise<'started' | 'running' | 'done'> {
  const workflowId = genesisWorkflowId(options.germline);
  try {
    await client.workflow.start<typeof genesisWorkflow>('genesisWorkflow', {
      workflowId,
      taskQueue: options.taskQueue,
      args: [{ germline: options.germline, training: options.training }],
      staticSummary: genesisSummary(options.germline, options.training),
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      typedSearchAttributes: [{ key: GermlineId, value: options.germline }],
    });
    return 'started';
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    const { status } = await client.workflow.getHandle(workflowId).describe();
    return status.name === 'RUNNING' ? 'running' : 'done';
  }
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
