// The platform's refusals, and the one mapping from any refusal below (the platform's own rules,
// accounts, the store, money, Stripe input, a workflow's update validator) to what a caller is
// told: an HTTP status, a code, a message. GraphQL, the pages, the upload and recording routes,
// the Stripe webhook, sign-in and the CLI all answer through toRefusal; anything it does not know
// is a real fault.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { CheckpointError } from '../store/checkpoint';
import { StoreError } from '../store/types';
import { FAILURE } from '../workflows/failures';
import { MoneyError } from '../workflows/money';

/** A refusal by the platform's own rules (the hub, the marketplace, trainers' credit). */
export type RefusalCode = 'BAD_USER_INPUT' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT';

export class PlatformError extends Error {
  override name = 'PlatformError';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

/** The HTTP status of each kind of refusal. */
export const REFUSAL_STATUS: Record<RefusalCode, number> = {
  BAD_USER_INPUT: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
};

export class AccountError extends Error {
  override name = 'AccountError';
  constructor(
    readonly code: 'INVALID_INPUT' | 'HANDLE_TAKEN' | 'EMAIL_TAKEN' | 'BAD_CREDENTIALS',
    message: string,
  ) {
    super(message);
  }
}

/** A payment the platform will not ask Stripe for (an amount out of range, a breed that cannot be sold). */
export class StripeInputError extends Error {
  override name = 'StripeInputError';
}

/** What a caller is told: the HTTP status, a GraphQL-style code, and the message (which says what to do). */
export interface Refusal {
  status: number;
  code: 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE';
  message: string;
  /** The refusing part's own, finer code where it has one (HANDLE_TAKEN, TAG_IMMUTABLE, InsufficientFunds). */
  reason?: string;
}

const CODE_OF_STATUS: Record<number, Refusal['code']> = {
  400: 'BAD_USER_INPUT',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  503: 'UNAVAILABLE',
};

const STATUS_OF_CODE: Record<AccountError['code'] | StoreError['code'], number> = {
  INVALID_INPUT: 400,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  BAD_CREDENTIALS: 401,
  DENIED: 403,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  HANDLE_TAKEN: 409,
  EMAIL_TAKEN: 409,
  TAG_IMMUTABLE: 409,
  UNREACHABLE: 503,
};

/** Update failures that mean something else than "this request is wrong". */
const STATUS_OF_FAILURE: Record<string, number> = {
  [FAILURE.notAwaitingApproval]: 404,
  [FAILURE.journalUnavailable]: 503,
};

const refusal = (status: number, message: string, reason?: string): Refusal => ({
  status,
  code: CODE_OF_STATUS[status]!,
  message,
  ...(reason ? { reason } : {}),
});

/** The refusal `error` stands for, or undefined when it is not one a caller can act on (a fault). */
export function toRefusal(error: unknown): Refusal | undefined {
  if (error instanceof PlatformError) return refusal(REFUSAL_STATUS[error.code], error.message);
  if (error instanceof AccountError || error instanceof StoreError)
    return refusal(STATUS_OF_CODE[error.code], error.message, error.code);
  if (error instanceof MoneyError) return refusal(400, error.message, 'INVALID_AMOUNT');
  if (error instanceof CheckpointError || error instanceof StripeInputError) return refusal(400, error.message);
  // A workflow's update validator refused (the budget's rules, an approval that waits no more).
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
    return refusal(
      STATUS_OF_FAILURE[error.cause.type ?? ''] ?? 400,
      error.cause.message,
      error.cause.type ?? undefined,
    );
  }
  return undefined;
}
