// Budget changes asked of a budget-holding workflow (germline/<name>) from activities, through the
// Temporal client: workflows cannot send updates to other workflows themselves. Each update is
// idempotent (reserve by ref, settle by reservation id), so a retried activity books nothing twice.
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { MinorUnits } from '../workflows/money';
import type { ReserveResult, SettleResult } from '../workflows/budget-api';
import { reserveUpdate, settleUpdate } from '../workflows/budget-api';
import { updateBudget } from '../temporal/budget-client';

interface ReserveInput {
  payer: string;
  ref: string;
  amount: MinorUnits;
  purpose: string;
}
interface SettleInput {
  payer: string;
  reservationId: string;
  actual: MinorUnits;
}

export interface BudgetActivities {
  /** Reserves from the payer's budget (a training run's cap, an instance's lease). */
  reserveFromBudget(input: ReserveInput): Promise<ReserveResult>;
  settleWithBudget(input: SettleInput): Promise<SettleResult>;
  /** The names training runs were started with: their histories replay with these. */
  reserveForTraining(input: ReserveInput): Promise<ReserveResult>;
  settleForTraining(input: SettleInput): Promise<SettleResult>;
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
  const reserve = ({ payer, ref, amount, purpose }: ReserveInput) =>
    askBudget(() => updateBudget(handle(payer), reserveUpdate, { ref, amount, purpose }));
  const settle = ({ payer, reservationId, actual }: SettleInput) =>
    askBudget(() => updateBudget(handle(payer), settleUpdate, { reservationId, actual }));
  return {
    reserveFromBudget: reserve,
    settleWithBudget: settle,
    reserveForTraining: reserve,
    settleForTraining: settle,
  };
}
