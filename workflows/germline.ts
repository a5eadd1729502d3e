// germline/<name>: the entity that holds the LLC's budget. The workflow serializes every money
// decision (updates with synchronous validators), books each accepted change in the PostgreSQL
// journal through an activity, and continues as new when history grows, carrying plain JSON state.
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  currentUpdateInfo,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { JournalActivities } from '../activities/journal';
import { Budget, BudgetRejection, initialBudgetState, type LedgerEntry } from './budget';
import {
  depositUpdate,
  type GermlineInput,
  ledgerQuery,
  pauseSignal,
  releaseUpdate,
  reserveUpdate,
  resumeSignal,
  setPolicyUpdate,
  settleUpdate,
  statusQuery,
} from './germline-api';
import { BudgetState, GermlineId } from './search-attributes';

// The journal must eventually hold every accepted change, so its writes retry without a limit.
// (Local activities would save a server round trip per batch, but SDK 1.24's core mishandles
// them under bursts of concurrent updates: "unprocessed protocol messages"; measured, not used.)
const { recordJournalEntries } = proxyActivities<JournalActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** Entries booked per activity call: concurrent updates share one database transaction. */
const JOURNAL_BATCH = 250;

/** Budget rejections reach callers as non-retryable failures typed by reason (e.g. InsufficientFunds). */
function asFailure<T>(action: () => T): T {
  try {
    return action();
  } catch (error) {
    if (error instanceof BudgetRejection) {
      throw ApplicationFailure.create({ type: error.reason, message: error.message, nonRetryable: true });
    }
    throw error;
  }
}

/** Workflow time: deterministic inside the sandbox, replayed from history. */
function now(): Date {
  // eslint-disable-next-line no-restricted-syntax -- the one place workflow time is read
  return new Date();
}

export async function germlineWorkflow(input: GermlineInput): Promise<void> {
  const budget = new Budget(input.state ?? initialBudgetState(input.name, input.currency, input.policy));
  const { workflowId } = workflowInfo();

  function idempotencyKey(): string {
    const update = currentUpdateInfo();
    if (!update) throw new Error('budget changes must arrive as updates, which carry an update id');
    return `${workflowId}/${update.id}`;
  }

  let shownLabel: string | undefined = workflowInfo().typedSearchAttributes.get(BudgetState);
  function showBudgetState(): void {
    const label = budget.label();
    if (label === shownLabel) return;
    upsertSearchAttributes([{ key: BudgetState, value: label }]);
    shownLabel = label;
  }

  /** Answers an update only once its change is in the journal, so callers never see unbooked money. */
  async function afterJournal<T>(change: { result: T; entry?: LedgerEntry }): Promise<T> {
    showBudgetState();
    const sequence = change.entry?.sequence;
    if (sequence !== undefined) await condition(() => budget.isJournaled(sequence));
    return change.result;
  }

  setHandler(depositUpdate, (request) => afterJournal(asFailure(() => budget.deposit(request, idempotencyKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkDeposit(request)),
  });
  setHandler(reserveUpdate, (request) => afterJournal(asFailure(() => budget.reserve(request, idempotencyKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkReserve(request, now())),
  });
  setHandler(settleUpdate, (request) => afterJournal(asFailure(() => budget.settle(request, idempotencyKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkSettle(request)),
  });
  setHandler(releaseUpdate, (request) => afterJournal(asFailure(() => budget.release(request, idempotencyKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkRelease(request)),
  });
  setHandler(setPolicyUpdate, (change) => asFailure(() => budget.setPolicy(change)), {
    validator: (change) => asFailure(() => budget.checkPolicy(change)),
  });
  setHandler(pauseSignal, () => {
    budget.pause();
    showBudgetState();
  });
  setHandler(resumeSignal, () => {
    budget.resume();
    showBudgetState();
  });
  setHandler(statusQuery, () => budget.status(now()));
  setHandler(ledgerQuery, (limit) => budget.ledger(limit));

  if (workflowInfo().typedSearchAttributes.get(GermlineId) !== input.name) {
    upsertSearchAttributes([{ key: GermlineId, value: input.name }]);
  }
  showBudgetState();

  // The journal writer: books accepted changes in sequence order, in batches, for the whole run.
  void (async () => {
    for (;;) {
      await condition(() => budget.journalPending > 0);
      const batch = budget.unjournaled().slice(0, JOURNAL_BATCH);
      await recordJournalEntries({ germline: input.name, currency: budget.currency, entries: batch });
      budget.markJournaled(batch[batch.length - 1]!.sequence);
    }
  })();

  await condition(() => workflowInfo().continueAsNewSuggested);
  // Every update answered and every change booked before the state moves to the next run.
  await condition(() => allHandlersFinished() && budget.journalPending === 0);
  await continueAsNew<typeof germlineWorkflow>({ ...input, state: budget.snapshot({ nextGeneration: true }) });
}
