// What a refusal from below (the hub, the marketplace, the store, Stripe, the germline) means to a
// person filling in a form: an HTTP status and the message to show. Anything else is a real fault.
import { CheckpointError } from '../../store/checkpoint';
import { StoreError } from '../../store/types';
import { MoneyError } from '../../workflows/money';
import { AccountError } from '../accounts';
import { PlatformError } from '../errors';
import { StripeInputError } from '../stripe';

export interface Refusal {
  status: number;
  message: string;
}

const BY_CODE: Record<string, number> = {
  BAD_USER_INPUT: 400,
  INVALID_INPUT: 400,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  BAD_CREDENTIALS: 401,
  FORBIDDEN: 403,
  DENIED: 403,
  NOT_FOUND: 404,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  CONFLICT: 409,
  HANDLE_TAKEN: 409,
  EMAIL_TAKEN: 409,
  TAG_IMMUTABLE: 409,
};

/** The refusal `error` stands for, or undefined when it is not one a person can act on. */
export function refusalOf(error: unknown): Refusal | undefined {
  if (error instanceof PlatformError || error instanceof AccountError || error instanceof StoreError) {
    const status = BY_CODE[error.code];
    return status ? { status, message: error.message } : undefined;
  }
  if (error instanceof CheckpointError || error instanceof StripeInputError || error instanceof MoneyError) return { status: 400, message: error.message };
  // The germline's update validators refuse with a reason (e.g. an approval of a decision that waits no more).
  const cause = (error as { cause?: { message?: string; type?: string } }).cause;
  if (error instanceof Error && error.name === 'WorkflowUpdateFailedError' && cause?.message) return { status: cause.type === 'NotAwaitingApproval' ? 404 : 400, message: cause.message };
  return undefined;
}
