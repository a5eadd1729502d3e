// What every budget-holding workflow does (germline/<name>, child/<germline>/<child>, credit/<handle>):
// takes budget changes as updates with synchronous validators and answers each one as soon as it is
// applied, which is when Temporal has made it durable in the workflow's history. The PostgreSQL
// journal is a projection of that history: a writer books accepted changes in sequence order, in
// batches, moments later (status and reconcile show how many are pending). Answering before the
// journal keeps every update one workflow task long, so a burst of callers is answered in bounded
// time whatever the database is doing; a journal that keeps failing is shown (status, the
// BudgetState search attribute, /healthz) and refuses new money in, never silently.
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  currentUpdateInfo,
  log,
  metricMeter,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { JournalActivities } from '../activities/journal';
import { type Budget, BudgetRejection } from './budget';
import { failureMessage } from './failures';
import {
  type LedgerEntry,
  depositUpdate,
  ledgerQuery,
  pauseSignal,
  releaseUpdate,
  reserveUpdate,
  resumeSignal,
  setPolicyUpdate,
  settleUpdate,
} from './budget-api';
import { now } from './clock';
import { formatMoney } from './money';

// A few quick retries ride out a database restart; after them the failure is shown and the writer
// tries again on a slower timer, for as long as it takes. (Local activities would save a server
// round trip per batch, but SDK 1.24's core mishandles them under bursts of concurrent updates:
// "unprocessed protocol messages"; measured, not used.)
const { recordJournalEntries } = proxyActivities<JournalActivities>({
  // A batch is one transaction of at most JOURNAL_BATCH small rows: seconds at worst. A batch lost
  // with a stopped worker is retried after this, so it is short.
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '8 seconds', maximumAttempts: 4 },
});
const RETRY_FAILING_JOURNAL = '30 seconds';

/** Entries booked per activity call: concurrent updates share one database transaction. */
const JOURNAL_BATCH = 250;

/** Prometheus counter (runtime/metrics.ts serves it) of reservations refused, labelled by the rejection's reason. */
export const RESERVATIONS_REFUSED_METRIC = 'computatrum_budget_reservations_refused';

/** Workflows started before answers stopped waiting for the journal replay as they ran. */
const ANSWER_WHEN_DURABLE = 'budget-answers-when-durable';

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

export interface ServedBudget {
  /** Gives an accepted change's result (and refreshes what the workflow shows). */
  accepted<T>(change: { result: T; entry?: LedgerEntry }): Promise<T>;
  /** `<workflowId>/<updateId>` of the update being handled: the journal's idempotency key. */
  updateKey(): string;
  /**
   * Resolves when the workflow may continue as new: the journal writer stopped after its batch in
   * flight (what is not booked yet is carried in the state and booked by the next run), every
   * update handler finished, and `ready()` holds, all in the activation that continues as new.
   */
  readyToContinueAsNew(ready?: () => boolean): Promise<void>;
}

/**
 * Registers the budget's updates, signals and ledger query on this workflow and starts its journal
 * writer. `onChange` runs after every accepted change (e.g. to refresh a search attribute).
 */
export function serveBudget(budget: Budget, options: { book: string; onChange?: () => void }): ServedBudget {
  const { workflowId } = workflowInfo();
  // The Temporal UI's current details: where the money stands, read from the list without a query.
  const showDetails = () => {
    const status = budget.status(now());
    const money = (amount: string) => formatMoney(amount, status.currency);
    setCurrentDetails(
      `**${status.state}** · ${money(status.available)} available, ${money(status.reserved)} reserved in ${status.openReservations.length} reservation(s), ${money(status.spent)} spent of ${money(status.deposited)} deposited` +
        (status.journalPending ? ` · ${status.journalPending} change(s) waiting for the journal` : ''),
    );
  };
  const onChange = () => {
    showDetails();
    options.onChange?.();
  };
  showDetails();
  // Asked once, as the run starts: a patch marker written from inside an update handler breaks replay.
  const answerWhenDurable = patched(ANSWER_WHEN_DURABLE);
  // Metrics are not in the history: a replay counts nothing again.
  const reservationsRefused = metricMeter.createCounter(
    RESERVATIONS_REFUSED_METRIC,
    '',
    'reservations a budget refused',
  );

  function updateKey(): string {
    const update = currentUpdateInfo();
    if (!update) throw new Error('budget changes must arrive as updates, which carry an update id');
    return `${workflowId}/${update.id}`;
  }

  async function accepted<T>(change: { result: T; entry?: LedgerEntry }): Promise<T> {
    onChange();
    const sequence = change.entry?.sequence;
    if (sequence !== undefined && !answerWhenDurable) await condition(() => budget.isJournaled(sequence));
    return change.result;
  }

  setHandler(depositUpdate, (request) => accepted(asFailure(() => budget.deposit(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkDeposit(request)),
  });
  setHandler(reserveUpdate, (request) => accepted(asFailure(() => budget.reserve(request, updateKey(), now()))), {
    validator: (request) =>
      asFailure(() => {
        try {
          budget.checkReserve(request, now());
        } catch (error) {
          if (error instanceof BudgetRejection) reservationsRefused.add(1, { reason: error.reason });
          throw error;
        }
      }),
  });
  setHandler(settleUpdate, (request) => accepted(asFailure(() => budget.settle(request, updateKey(), now()))), {
    validator: (request) => asFailure(() => budget.checkSettle(request)),
  });
  setHandler(releaseUpdate, (request) => accepted(asFailure(() => budget.release(request, updateKey(), now()))), {
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

  let writing = false;
  let stopped = false;
  void (async () => {
    for (;;) {
      await condition(() => budget.journalPending > 0 && !stopped);
      writing = true;
      const batch = budget.unjournaled().slice(0, JOURNAL_BATCH);
      try {
        await recordJournalEntries({ germline: options.book, currency: budget.currency, entries: batch });
        budget.markJournaled(batch[batch.length - 1]!.sequence);
        showDetails();
        if (budget.journalFailure) {
          budget.journalRecovered();
          log.info('the journal books changes again', { book: options.book });
          onChange();
        }
      } catch (error) {
        // Database clients quote the failed call over many lines; its last line says why.
        const why =
          failureMessage(error)
            .trim()
            .split('\n')
            .filter((line) => line.trim())
            .at(-1) ?? 'unknown error';
        budget.journalFailed(why, now());
        log.error('the journal cannot book accepted changes; new deposits and reservations are refused until it can', {
          book: options.book,
          pending: budget.journalPending,
          error: failureMessage(error),
        });
        onChange();
        writing = false;
        await sleep(RETRY_FAILING_JOURNAL);
      } finally {
        writing = false;
      }
    }
  })();

  async function readyToContinueAsNew(ready: () => boolean = () => true): Promise<void> {
    if (!answerWhenDurable) {
      // A run begun before answers stopped waiting: its handlers wait for their entries, so it
      // continues as new, as it always did, once everything is booked.
      await condition(() => allHandlersFinished() && ready() && budget.journalPending === 0);
      return;
    }
    stopped = true;
    await condition(() => !writing);
    await condition(() => allHandlersFinished() && ready());
  }

  return { accepted, updateKey, readyToContinueAsNew };
}
