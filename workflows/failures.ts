// What a failed activity or child workflow means, as workflows report it: the innermost cause's
// message and type, not "Activity task failed".
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';

function innermost(error: unknown): unknown {
  let cause = error;
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause) cause = cause.cause;
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
