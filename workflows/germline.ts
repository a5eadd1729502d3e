// germline/<name>: the entity that holds the LLC's budget. The workflow serializes every money
// decision (updates with synchronous validators, served by budget-entity.ts), books each accepted
// change in the PostgreSQL journal through an activity, and continues as new when history grows,
// carrying plain JSON state.
import { allHandlersFinished, condition, continueAsNew, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { Budget, initialBudgetState } from './budget';
import { now, serveBudget } from './budget-entity';
import { type GermlineInput, statusQuery } from './germline-api';
import { BudgetState, GermlineId } from './search-attributes';

export async function germlineWorkflow(input: GermlineInput): Promise<void> {
  const budget = new Budget(input.state ?? initialBudgetState(input.name, input.currency, input.policy));

  let shownLabel: string | undefined = workflowInfo().typedSearchAttributes.get(BudgetState);
  function showBudgetState(): void {
    const label = budget.label();
    if (label === shownLabel) return;
    upsertSearchAttributes([{ key: BudgetState, value: label }]);
    shownLabel = label;
  }

  setHandler(statusQuery, () => budget.status(now()));
  if (workflowInfo().typedSearchAttributes.get(GermlineId) !== input.name) {
    upsertSearchAttributes([{ key: GermlineId, value: input.name }]);
  }
  showBudgetState();
  serveBudget(budget, { book: input.name, onChange: showBudgetState });

  await condition(() => workflowInfo().continueAsNewSuggested);
  // Every update answered and every change booked before the state moves to the next run.
  await condition(() => allHandlersFinished() && budget.journalPending === 0);
  await continueAsNew<typeof germlineWorkflow>({ ...input, state: budget.snapshot({ nextGeneration: true }) });
}
