// Workflow time, read in one place: deterministic inside the sandbox (the SDK replaces Date with
// the time of the workflow task being replayed), passed from here to pure code as a value.

/** Workflow time: deterministic inside the sandbox, replayed from history. */
export function now(): Date {
  // eslint-disable-next-line no-restricted-syntax -- the one place workflow time is read
  return new Date();
}
