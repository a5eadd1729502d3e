// credit/<handle>: a trainer's credit, held as a budget of its own. It lives as long as the trainer
// does, taking deposits (paid Checkout Sessions) and the reservations of the training runs it pays.
import { condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { Budget, initialBudgetState } from './budget';
import { serveBudget } from './serve-budget';
import { type CreditInput } from './credit-api';
import { statusQuery } from './budget-api';
import { creditBook } from './names';
import { now } from './clock';

export async function creditWorkflow(input: CreditInput): Promise<void> {
  const budget = new Budget(input.state ?? initialBudgetState(creditBook(input.handle), input.currency));
  const { readyToContinueAsNew } = serveBudget(budget, { book: creditBook(input.handle) });
  setHandler(statusQuery, () => budget.status(now()));

  await condition(() => workflowInfo().continueAsNewSuggested);
  await readyToContinueAsNew();
  await continueAsNew<typeof creditWorkflow>({ ...input, state: budget.snapshot({ nextGeneration: true }) });
}
