// child/<germline>/<child>: a child computatrum. It holds its allowance as a budget of its own
// (the same reserve/settle updates as the germline, so training runs can be paid by it), works on
// its own branch forked from the germline's head, and ends in one of two ways: `retire` (the
// germline stops funding it; its checkpoints stay published) or `leave` (voluntary emancipation:
// its branch is handed to a named owner). Either way it waits for its open reservations to close,
// then tells the germline what it spent, and the germline settles the allowance exactly.
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckpointActivities } from '../activities/checkpoints';
import { Budget, initialBudgetState } from './budget';
import { serveBudget } from './serve-budget';
import {
  type ChildInput,
  type ChildLifecycle,
  childEndedSignal,
  type ChildStatus,
  childStatusQuery,
  leaveUpdate,
  retireRequestedSignal,
  retireUpdate,
} from './child-api';
import { ChildName, ChildState, GermlineId } from './search-attributes';
import { germlineWorkflowId, childRepository, ACCOUNT_HANDLE, trainerRepository } from './names';
import { now } from './clock';

const { forkBranch } = proxyActivities<CheckpointActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

export async function childWorkflow(input: ChildInput): Promise<ChildStatus> {
  const { workflowId } = workflowInfo();
  const book = `${input.germline}/${input.name}`;
  const budget = new Budget(input.state?.budget ?? initialBudgetState(book, input.currency));
  let lifecycle: ChildLifecycle = input.state?.lifecycle ?? 'active';
  let branch = input.state?.branch;
  let ending: { how: 'retired' | 'left'; reason: string; owner?: string } | undefined;

  function state(): ChildLifecycle {
    return lifecycle === 'active' && budget.paused ? 'paused' : lifecycle;
  }
  let shown: string | undefined;
  function showState(): void {
    if (state() === shown) return;
    shown = state();
    upsertSearchAttributes([{ key: ChildState, value: shown }]);
  }
  function status(): ChildStatus {
    const books = budget.status(now());
    return {
      germline: input.germline,
      name: input.name,
      purpose: input.purpose,
      state: state(),
      // Everything deposited in its books: the allowance at spawn and any funding since.
      allowance: books.deposited,
      spent: books.spent,
      reserved: books.reserved,
      available: books.available,
      ...(branch ? { branch } : {}),
      ...(ending?.owner ? { owner: ending.owner } : {}),
      ...(ending ? { endReason: ending.reason } : {}),
    };
  }

  upsertSearchAttributes([
    { key: GermlineId, value: input.germline },
    { key: ChildName, value: input.name },
  ]);
  showState();
  const { readyToContinueAsNew } = serveBudget(budget, { book, onChange: showState });
  setHandler(childStatusQuery, status);

  const ended = () => lifecycle === 'retired' || lifecycle === 'left';
  function checkNotEnding(): void {
    if (ending)
      throw ApplicationFailure.create({
        type: 'ChildEnding',
        nonRetryable: true,
        message: `${input.name} is already ${lifecycle}`,
      });
  }
  setHandler(
    retireUpdate,
    async (reason) => {
      ending = { how: 'retired', reason };
      await condition(ended);
      return status();
    },
    { validator: (_reason: string) => checkNotEnding() },
  );
  setHandler(retireRequestedSignal, (reason) => {
    if (!ending) ending = { how: 'retired', reason };
  });
  setHandler(
    leaveUpdate,
    async ({ owner, reason }) => {
      ending = { how: 'left', reason, owner };
      await condition(ended);
      return status();
    },
    {
      validator: ({ owner, reason }) => {
        checkNotEnding();
        if (!ACCOUNT_HANDLE.test(owner ?? ''))
          throw ApplicationFailure.create({
            type: 'InvalidRequest',
            nonRetryable: true,
            message: `owner "${owner}" must be a handle: lowercase letters, digits and dashes`,
          });
        if (!reason?.trim())
          throw ApplicationFailure.create({
            type: 'InvalidRequest',
            nonRetryable: true,
            message: 'leaving needs a reason, for the record',
          });
      },
    },
  );

  if (!input.state) {
    // The allowance arrives as the first deposit of the child's books, once.
    budget.deposit(
      { amount: input.allowance, currency: input.currency, reference: `allowance/${input.reservationId}` },
      `${workflowId}/allowance`,
      now(),
    );
    showState();
    const forked = await forkBranch({
      from: { repo: `germline/${input.germline}`, reference: 'main' },
      to: { repo: childRepository(input.name), branch: 'main' },
    });
    if (forked) branch = `${childRepository(input.name)}:main`;
  }

  await condition(() => ending !== undefined || workflowInfo().continueAsNewSuggested);
  if (!ending) {
    await readyToContinueAsNew();
    await continueAsNew<typeof childWorkflow>({
      ...input,
      state: { budget: budget.snapshot({ nextGeneration: true }), lifecycle, ...(branch ? { branch } : {}) },
    });
  }

  // Ending: no new spending; runs in flight settle first, so the germline learns the final spend.
  const end = ending!;
  lifecycle = end.how === 'retired' ? 'retiring' : 'leaving';
  budget.pause();
  showState();
  await condition(() => budget.status(now()).openReservations.length === 0 && budget.journalPending === 0);
  if (end.how === 'left' && branch) {
    await forkBranch({
      from: { repo: childRepository(input.name), reference: 'main' },
      to: { repo: trainerRepository(end.owner!, input.name), branch: 'main' },
    });
  }
  const spent = budget.status(now()).spent;
  await getExternalWorkflowHandle(germlineWorkflowId(input.germline)).signal(childEndedSignal, {
    name: input.name,
    how: end.how,
    reservationId: input.reservationId,
    spent,
    reason: end.reason,
    ...(end.owner ? { owner: end.owner } : {}),
  });
  lifecycle = end.how;
  showState();
  await condition(() => allHandlersFinished() && budget.journalPending === 0);
  return status();
}
