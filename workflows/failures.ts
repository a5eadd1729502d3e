// What a failed activity or child workflow means, as workflows report it: the innermost cause's
// message and type, not "Activity task failed".
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';

function innermost(error: unknown): unknown {
  let cause = error;
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause)
    cause = cause.cause;
  return cause;
}

export function failureMessage(error: unknown): string {
  const cause = innermost(error);
  return cause instanceof Error ? cause.message : String(cause);
}

export function failureType(error: unknown): string | undefined {
  const cause = innermost(error);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/**
 * Failure types that callers outside the workflows act on, shared by the code that throws them and
 * the code that reads them (every other type reaches a person as its message).
 */
export const FAILURE = {
  /** The server's: an update lost while its workflow continued as new; it may be sent again. */
  unprocessedUpdate: 'UnprocessedUpdate',
  /** The budget's journal cannot book: new money in is refused until it can (a retry later succeeds). */
  journalUnavailable: 'JournalUnavailable',
  /** An approval or rejection of a decision that waits no more. */
  notAwaitingApproval: 'NotAwaitingApproval',
} as const;
