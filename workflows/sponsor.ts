// sponsor/<name>: an organisation's fund for personal users' use, held as a budget of its own. It
// takes deposits (paid Checkout Sessions) and the reservations of the allotments its grant pays
// priced calls from; what it paid for is in UsageCharge (by sponsor), never in here.
import { condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { Budget, initialBudgetState } from './budget';
import { statusQuery, type BudgetState } from './budget-api';
import { now } from './clock';
import { sponsorBook } from './names';
import { serveBudget } from './serve-budget';

export interface SponsorInput {
  /** The sponsor's name: the workflow is `sponsor/<name>`, its journal book `sponsors/<name>`. */
  name: string;
  currency: string;
  /** Carried across continue-as-new; absent on the first run. */
  state?: BudgetState;
}

export async function sponsorWorkflow(input: SponsorInput): Promise<void> {
  const budget = new Budget(input.state ?? initialBudgetState(sponsorBook(input.name), input.currency));
  const { readyToContinueAsNew } = serveBudget(budget, { book: sponsorBook(input.name) });
  setHandler(statusQuery, () => budget.status(now()));

  await condition(() => workflowInfo().continueAsNewSuggested);
  await readyToContinueAsNew();
  await continueAsNew<typeof sponsorWorkflow>({ ...input, state: budget.snapshot({ nextGeneration: true }) });
}
