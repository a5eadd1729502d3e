// Sending updates to the workflows that hold a budget (germline/<name>, child/<germline>/<child>,
// credit/<handle>) from outside them: the platform, the CLI, activities, benchmarks.
import {
  isGrpcServiceError,
  ServiceError,
  type WorkflowHandle,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure, type UpdateDefinition } from '@temporalio/common';
import { FAILURE } from '../workflows/failures';

/** How long a budget update is sent again before the germline's last answer reaches the caller. */
const RESEND_FOR_MS = 120_000;

/** gRPC codes the server answers while a germline is busy or between runs. */
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const ABORTED = 10;
const UNAVAILABLE = 14;

/**
 * True for an update that never reached the germline's code and may be sent again: it was lost
 * while the germline continued as new (the server rejects it as "UnprocessedUpdate", or briefly
 * answers "not found" or "update was aborted" between two runs), the server turned it away
 * because the germline already had its limit of updates in flight (RESOURCE_EXHAUSTED), or the
 * call timed out waiting on a busy germline (its answer is asked for again: updates are idempotent).
 */
function sendAgain(error: unknown): boolean {
  if (error instanceof WorkflowNotFoundError || error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  if (error instanceof WorkflowUpdateFailedError)
    return error.cause instanceof ApplicationFailure && error.cause.type === FAILURE.unprocessedUpdate;
  if (error instanceof ServiceError && isGrpcServiceError(error.cause))
    return [DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE].includes(error.cause.code);
  return false;
}

/**
 * Sends an update to a budget-holding workflow (a germline, a child, a trainer's credit: the
 * budget's own updates and theirs, such as spawnChild or promote), sending it again while the
 * workflow cannot take it yet (see sendAgain), with growing, jittered pauses so a burst of callers
 * spreads out. Sending again is
 * safe because every budget update is idempotent: deposits by reference, reserves by ref, settle
 * and release by reservation id, and a policy change sets values.
 */
export async function updateBudget<Ret, Arg>(
  handle: WorkflowHandle,
  update: UpdateDefinition<Ret, [Arg]>,
  arg: Arg,
): Promise<Ret> {
  const giveUpAt = Date.now() + RESEND_FOR_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.executeUpdate(update, { args: [arg] });
    } catch (error) {
      if (!sendAgain(error) || Date.now() >= giveUpAt) throw error;
      const pause = Math.min(1000, 25 * 2 ** Math.min(attempt, 6));
      await new Promise((resolve) => setTimeout(resolve, pause / 2 + Math.random() * (pause / 2)));
    }
  }
}
