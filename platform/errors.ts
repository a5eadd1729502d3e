// A refusal by the platform's own rules (the hub, the marketplace, trainers' credit): its code says
// what kind, so the API, the pages and the upload routes each answer it in their own form.
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
export const REFUSAL_STATUS: Record<RefusalCode, number> = { BAD_USER_INPUT: 400, FORBIDDEN: 403, NOT_FOUND: 404, CONFLICT: 409 };
