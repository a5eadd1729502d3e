// Budget changes asked of a budget-holding workflow (germline/<name>) from activities, through the
// Temporal client: workflows cannot send updates to other workflows themselves. Each update is
// idempotent (reserve by ref, settle by reservation id), so a retried activity books nothing twice.
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { MinorUnits } from '../workflows/money';
import type { ReserveResult, SettleResult } from '../workflows/budget-api';
import { reserveUpdate, settleUpdate } from '../workflows/budget-api';
import { updateBudget } from '../temporal/budget-client';

export interface BudgetActivities {
  reserveForTraining(input: {
    payer: string;
    ref: string;
    amount: MinorUnits;
    purpose: string;
  }): Promise<ReserveResult>;
  settleForTraining(input: { payer: string; reservationId: string; actual: MinorUnits }): Promise<SettleResult>;
}

/** A budget's refusal (InsufficientFunds, Paused, ...) reaches the caller's workflow as a final failure of the same type. */
async function askBudget<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.create({
        type: error.cause.type ?? 'BudgetRejected',
        message: error.cause.message,
        nonRetryable: true,
      });
    }
    throw error;
  }
}

export function createBudgetActivities(client: Client): BudgetActivities {
  const handle = (payer: string) => client.workflow.getHandle(payer);
  return {
    reserveForTraining: ({ payer, ref, amount, purpose }) =>
      askBudget(() => updateBudget(handle(payer), reserveUpdate, { ref, amount, purpose })),
    settleForTraining: ({ payer, reservationId, actual }) =>
      askBudget(() => updateBudget(handle(payer), settleUpdate, { reservationId, actual })),
  };
}
