// What every budget-holding workflow does (germline/<name>, child/<germline>/<child>): takes budget
// changes as updates with synchronous validators, books each accepted change in the PostgreSQL
// journal through an activity, and answers an update only once its change is booked.
import { ApplicationFailure, condition, currentUpdateInfo, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { JournalActivities } from '../activities/journal';
import { type Budget, BudgetRejection, type LedgerEntry } from './budget';
import { depositUpdate, ledgerQuery, pauseSignal, releaseUpdate, reserveUpdate, resumeSignal, setPolicyUpdate, settleUpdate } from './germline-api';

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
export function asFailure<T>(action: () => T): T {
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
export function now(): Date {
  // eslint-disable-next-line no-restricted-syntax -- the one place workflow time is read
  return new Date();
}

export interface ServedBudget {
  /** Waits until the change is in the journal, then gives its result. */
  afterJournal<T>(change: { result: T; entry?: LedgerEntry }): Promise<T>;
  /** `<workflowId>/<updateId>` of the update being handled: the journal's idempotency key. */
  updateKey(): string;
}

/**
 * Registers the budget's updates, signals and ledger query on this workflow and starts its journal
 * writer, which books accepted changes in sequence order, in batches, for the whole run.
 * `onChange` runs after every accepted change (e.g. to refresh a search attribute).
 */
export function serveBudget(budget: Budget, options: { book: string; onChange?: () => void }): ServedBudget {
  const { workflowId } = workflowInfo();
  const onChange = options.onChange ?? (() => undefined);

  function updateKey(): string {
    const update = currentUpdateInfo();
    if (!update) throw new Error('budget changes must arrive as updates, which carry an update id');
    return `${workflowId}/${update.id}`;
  }

  async function afterJournal<T>(change: { result: T; entry?: LedgerEntry }): Promise<T> {
    onChange();
    const sequence = change.entry?.sequence;
    if (sequence !== undefined) await condition(() => budget.isJournaled(sequence));
    return change.result;
  }

  setHandler(depositUpdate, (request) => afterJournal(asFailure(() => budget.deposit(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkDeposit(request)),
  });
  setHandler(reserveUpdate, (request) => afterJournal(asFailure(() => budget.reserve(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkReserve(request, now())),
  });
  setHandler(settleUpdate, (request) => afterJournal(asFailure(() => budget.settle(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkSettle(request)),
  });
  setHandler(releaseUpdate, (request) => afterJournal(asFailure(() => budget.release(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkRelease(request)),
  });
  setHandler(setPolicyUpdate, (change) => asFailure(() => budget.setPolicy(change)), {
    validator: (change) => asFailure(() => budget.checkPolicy(change)),
  });
  setHandler(pauseSignal, () => {
    budget.pause();
    onChange();
  });
  setHandler(resumeSignal, () => {
    budget.resume();
    onChange();
  });
  setHandler(ledgerQuery, (limit) => budget.ledger(limit));

  void (async () => {
    for (;;) {
      await condition(() => budget.journalPending > 0);
      const batch = budget.unjournaled().slice(0, JOURNAL_BATCH);
      await recordJournalEntries({ germline: options.book, currency: budget.currency, entries: batch });
      budget.markJournaled(batch[batch.length - 1]!.sequence);
    }
  })();

  return { afterJournal, updateKey };
}
