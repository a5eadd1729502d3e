// Where an error from below becomes an error a GraphQL client can act on: toRefusal
// (platform/errors.ts) says what it means; its code goes into `extensions.code`.
import { ErrorWithProps } from 'mercurius';
import { type Refusal, toRefusal } from '../errors';

/** An error a client can act on: its `extensions.code` says which kind. */
export function apiError(code: Refusal['code'], message: string): ErrorWithProps {
  return new ErrorWithProps(message, { code });
}

/** Rethrows `error` as the refusal it stands for; anything else stays a fault. */
export function refused(error: unknown): never {
  const refusal = toRefusal(error);
  throw refusal ? apiError(refusal.code, refusal.message) : error;
}
