// The germline's budget as a pure state machine: every money rule lives here, so it can be tested
// without a server and replayed deterministically inside the germline workflow.
//
// Invariant, checked after every change: open reservations never exceed the funds held
// (deposited − spent), and nothing is negative.
import {
  DEFAULT_POLICY,
  type BudgetPolicy,
  type Reservation,
  type LedgerEntry,
  type BudgetState,
  type BudgetStatus,
  type JournalFailure,
  type BudgetStateLabel,
  type RejectionReason,
  type DepositRequest,
  type ReserveRequest,
  type SettleRequest,
  type ReleaseRequest,
  type PolicyChange,
  type DepositResult,
  type ReserveResult,
  type SettleResult,
  type ReleaseResult,
} from './budget-api';
import {
  AboveMaximumError,
  formatMaximum,
  formatMoney,
  isCurrency,
  MAX_MINOR_UNITS,
  MinorUnits,
  toMinor,
} from './money';
import { FAILURE } from './failures';

/** How many of its newest entries each memory of a budget carries across continue-as-new. */
export interface CarriedMemory {
  recent: number;
  reserveRefs: number;
  closed: number;
}

/** A request the budget refuses; the message says why and what to do. */
export class BudgetRejection extends Error {
  override name = 'BudgetRejection';
  constructor(
    readonly reason: RejectionReason,
    message: string,
  ) {
    super(message);
  }
}

const RECENT_LEDGER_LIMIT = 500;
const RESERVE_REF_MEMORY = 5_000;
const CLOSED_MEMORY = 5_000;
const MAX_TEXT = 200;
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

export function initialBudgetState(germline: string, currency: string, policy = DEFAULT_POLICY): BudgetState {
  return {
    germline,
    currency: currency.toLowerCase(),
    deposited: '0',
    spent: '0',
    reservations: [],
    policy,
    paused: false,
    deposits: {},
    reserveRefs: [],
    closed: [],
    committedToday: { day: '', amount: '0' },
    sequence: 0,
    nextReservation: 1,
    recent: [],
    unjournaled: [],
    generation: 0,
  };
}

/** Plain JSON copy (structuredClone is not in every workflow sandbox). */
function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10);
}

function requireText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_TEXT) {
    throw new BudgetRejection(
      'InvalidRequest',
      `${field} must be a non-empty string of at most ${MAX_TEXT} characters`,
    );
  }
  // PostgreSQL's text refuses NUL, which would stop the journal for every later change.
  if (CONTROL_CHARACTERS.test(value))
    throw new BudgetRejection('InvalidRequest', `${field} must not hold control characters; use printable text`);
  return value;
}

function positiveMinor(value: unknown, field: string, currency: string): bigint {
  const minor = nonNegativeMinor(value, field, currency);
  if (minor === 0n) throw new BudgetRejection('InvalidRequest', `${field} must be more than zero`);
  return minor;
}

/** Wire minor units, at most MAX_MINOR_UNITS (toMinor's message names the maximum). */
function nonNegativeMinor(value: unknown, field: string, currency: string): bigint {
  try {
    return toMinor(value, field, currency);
  } catch (error) {
    throw new BudgetRejection(
      error instanceof AboveMaximumError ? 'AboveMaximum' : 'InvalidRequest',
      (error as Error).message,
    );
  }
}

export class Budget {
  private readonly state: BudgetState;
  private readonly reserveRefIndex: Map<string, { reservationId: string; amount: MinorUnits }>;
  private readonly closedIndex: Map<string, { how: 'settle' | 'release'; spent: MinorUnits; released: MinorUnits }>;

  constructor(state: BudgetState) {
    this.state = clone(state);
    this.reserveRefIndex = new Map(
      state.reserveRefs.map(([ref, reservationId, amount]) => [ref, { reservationId, amount }]),
    );
    this.closedIndex = new Map(state.closed.map(([id, how, spent, released]) => [id, { how, spent, released }]));
    this.assertInvariant();
  }

  // ---- reads ----

  get germline(): string {
    return this.state.germline;
  }

  get paused(): boolean {
    return this.state.paused;
  }

  get currency(): string {
    return this.state.currency;
  }

  /** How many accepted changes wait to be booked in the journal. */
  get journalPending(): number {
    return this.state.unjournaled.length;
  }

  private get deposited(): bigint {
    return BigInt(this.state.deposited);
  }
  private get spent(): bigint {
    return BigInt(this.state.spent);
  }
  private get reserved(): bigint {
    return this.state.reservations.reduce((sum, r) => sum + BigInt(r.amount), 0n);
  }
  private get balance(): bigint {
    return this.deposited - this.spent;
  }
  private get available(): bigint {
    return this.balance - this.reserved;
  }

  private money(minor: bigint | string): string {
    return formatMoney(minor, this.state.currency);
  }

  label(): BudgetStateLabel {
    if (this.state.journalFailure) return 'journal-failing';
    if (this.state.paused) return 'paused';
    return this.available > 0n ? 'funded' : 'empty';
  }

  status(now: Date): BudgetStatus {
    return {
      germline: this.state.germline,
      currency: this.state.currency,
      paused: this.state.paused,
      state: this.label(),
      deposited: this.state.deposited,
      spent: this.state.spent,
      balance: this.balance.toString(),
      reserved: this.reserved.toString(),
      available: this.available.toString(),
      committedToday: { day: utcDay(now), amount: this.committedOn(utcDay(now)).toString() },
      policy: { ...this.state.policy },
      openReservations: this.state.reservations.map((r) => ({ ...r })),
      sequence: this.state.sequence,
      journalPending: this.state.unjournaled.length,
      ...(this.state.journalFailure ? { journalFailure: { ...this.state.journalFailure } } : {}),
      generation: this.state.generation,
    };
  }

  /** The latest entries, newest last. */
  ledger(limit = RECENT_LEDGER_LIMIT): LedgerEntry[] {
    return this.state.recent.slice(-Math.max(0, limit)).map((e) => ({ ...e }));
  }

  unjournaled(): LedgerEntry[] {
    return this.state.unjournaled.map((e) => ({ ...e }));
  }

  /** Called once the journal holds entries up to and including `sequence`. */
  markJournaled(sequence: number): void {
    this.state.unjournaled = this.state.unjournaled.filter((e) => e.sequence > sequence);
  }

  get journalFailure(): JournalFailure | undefined {
    return this.state.journalFailure;
  }

  /** The journal writer's batch failed after its retries. */
  journalFailed(message: string, now: Date): void {
    const earlier = this.state.journalFailure;
    this.state.journalFailure = {
      message: message.slice(0, 1000),
      since: earlier?.since ?? now.toISOString(),
      failures: (earlier?.failures ?? 0) + 1,
    };
  }

  journalRecovered(): void {
    delete this.state.journalFailure;
  }

  isJournaled(sequence: number): boolean {
    return !this.state.unjournaled.some((e) => e.sequence <= sequence);
  }

  /**
   * Plain JSON to carry across continue-as-new. `keep` bounds the memories carried (the newest
   * entries of each; the refs of open reservations always): what falls out is in the journal.
   */
  snapshot(options: { nextGeneration?: boolean; keep?: CarriedMemory } = {}): BudgetState {
    const copy = clone(this.state);
    if (options.nextGeneration) copy.generation += 1;
    const keep = options.keep;
    if (keep) {
      const newest = <T>(list: T[], count: number): T[] => list.slice(Math.max(0, list.length - count));
      copy.recent = newest(copy.recent, keep.recent);
      copy.closed = newest(copy.closed, keep.closed);
      const open = new Set(copy.reservations.map((r) => r.ref));
      const from = copy.reserveRefs.length - keep.reserveRefs;
      copy.reserveRefs = copy.reserveRefs.filter(([ref], i) => i >= from || open.has(ref));
    }
    return copy;
  }

  // ---- validations (synchronous, used as update validators; they change nothing) ----

  checkDeposit(request: DepositRequest): void {
    const amount = positiveMinor(request?.amount, 'amount', this.state.currency);
    const reference = requireText(request.reference, 'reference');
    if (typeof request.currency !== 'string' || !isCurrency(request.currency)) {
      throw new BudgetRejection('InvalidRequest', `currency must be a supported ISO code such as "usd"`);
    }
    if (request.currency.toLowerCase() !== this.state.currency) {
      throw new BudgetRejection(
        'CurrencyMismatch',
        `germline ${this.state.germline} keeps its budget in ${this.state.currency.toUpperCase()}; ` +
          `deposit ${request.currency.toUpperCase()} only after converting it`,
      );
    }
    const earlier = this.state.deposits[reference];
    if (earlier && BigInt(earlier.amount) !== amount) {
      throw new BudgetRejection(
        'DuplicateReference',
        `reference "${reference}" was already used for a deposit of ${this.money(earlier.amount)}; ` +
          `use a new reference for a different deposit`,
      );
    }
    if (earlier) return; // a retry of an accepted deposit: answered again
    this.checkJournalBooks('deposits');
    this.checkDepositedTotal(amount);
  }

  /** Everything a budget keeps (balance, spent, reservations) is at most what it took in, so that total is what is bounded. */
  private checkDepositedTotal(amount: bigint): void {
    const total = this.deposited + amount;
    if (total <= MAX_MINOR_UNITS) return;
    const room = MAX_MINOR_UNITS - this.deposited;
    throw new BudgetRejection(
      'AboveMaximum',
      `a deposit of ${this.money(amount)} would bring the total deposited in ${this.state.germline} to ${this.money(total)}, ` +
        `above the most one budget may take in (${formatMaximum(this.state.currency)}): ` +
        (room > 0n
          ? `deposit at most ${this.money(room)} here, and the rest in another budget`
          : 'it takes no more deposits; use another budget'),
    );
  }

  checkReserve(request: ReserveRequest, now: Date): void {
    const amount = positiveMinor(request?.amount, 'amount', this.state.currency);
    const ref = requireText(request.ref, 'ref');
    requireText(request.purpose, 'purpose');
    const earlier = this.reserveRefIndex.get(ref);
    if (earlier) {
      if (BigInt(earlier.amount) !== amount) {
        throw new BudgetRejection(
          'DuplicateReference',
          `ref "${ref}" already reserved ${this.money(earlier.amount)} as ${earlier.reservationId}; use a new ref`,
        );
      }
      return; // a retry of an accepted reserve: answered with the same reservation
    }
    this.checkJournalBooks('reservations');
    if (this.state.paused) {
      throw new BudgetRejection(
        'Paused',
        `germline ${this.state.germline} is paused: no new reservations until an operator resumes it`,
      );
    }
    const perReservationCap = this.state.policy.perReservationCap;
    if (perReservationCap !== null && amount > BigInt(perReservationCap)) {
      throw new BudgetRejection(
        'ReservationCapExceeded',
        `requested ${this.money(amount)} is above the per-reservation cap of ${this.money(perReservationCap)}`,
      );
    }
    const dailyCap = this.state.policy.dailySpendCap;
    const day = utcDay(now);
    const committed = this.committedOn(day);
    if (dailyCap !== null && committed + amount > BigInt(dailyCap)) {
      throw new BudgetRejection(
        'DailyCapExceeded',
        `daily spend cap reached: ${this.money(committed)} of ${this.money(dailyCap)} already committed on ${day}; ` +
          `requested ${this.money(amount)} is over by ${this.money(committed + amount - BigInt(dailyCap))}`,
      );
    }
    const available = this.available;
    if (amount > available) {
      throw new BudgetRejection(
        'InsufficientFunds',
        `insufficient funds: requested ${this.money(amount)}, available ${this.money(available)} ` +
          `(short by ${this.money(amount - available)})`,
      );
    }
  }

  checkSettle(request: SettleRequest): void {
    const actual = nonNegativeMinor(request?.actual, 'actual', this.state.currency);
    if (this.isRepeatedClose(request.reservationId, 'settle', actual.toString())) return;
    const reservation = this.openReservation(request.reservationId);
    if (actual > BigInt(reservation.amount)) {
      throw new BudgetRejection(
        'SettleAboveReservation',
        `cannot settle ${reservation.id} at ${this.money(actual)}: it reserved only ${this.money(reservation.amount)}; ` +
          `settle at most the reserved amount`,
      );
    }
  }

  checkRelease(request: ReleaseRequest): void {
    if (this.isRepeatedClose(request?.reservationId, 'release')) return;
    this.openReservation(request?.reservationId);
  }

  checkPolicy(change: PolicyChange): void {
    if (typeof change !== 'object' || change === null) {
      throw new BudgetRejection('InvalidRequest', 'policy change must be an object');
    }
    for (const key of Object.keys(change)) {
      if (!(key in DEFAULT_POLICY)) {
        throw new BudgetRejection(
          'InvalidRequest',
          `unknown policy key "${key}": known keys are ${Object.keys(DEFAULT_POLICY).join(', ')}`,
        );
      }
      const value = change[key as keyof BudgetPolicy];
      if (value !== null) nonNegativeMinor(value, key, this.state.currency);
    }
  }

  // ---- changes (each re-validates, applies, checks the invariant, and returns the ledger entry) ----

  deposit(request: DepositRequest, idempotencyKey: string, now: Date): { result: DepositResult; entry?: LedgerEntry } {
    this.checkDeposit(request);
    const earlier = this.state.deposits[request.reference];
    if (earlier) {
      return {
        result: {
          sequence: earlier.sequence,
          duplicate: true,
          balance: this.balance.toString(),
          available: this.available.toString(),
        },
      };
    }
    this.state.deposited = (this.deposited + BigInt(request.amount)).toString();
    const entry = this.record(
      { kind: 'deposit', amount: request.amount, reference: request.reference },
      idempotencyKey,
      now,
    );
    this.state.deposits[request.reference] = { amount: request.amount, sequence: entry.sequence };
    return {
      result: { sequence: entry.sequence, duplicate: false, balance: entry.balance, available: entry.available },
      entry,
    };
  }

  reserve(request: ReserveRequest, idempotencyKey: string, now: Date): { result: ReserveResult; entry?: LedgerEntry } {
    this.checkReserve(request, now);
    const earlier = this.reserveRefIndex.get(request.ref);
    if (earlier) {
      return {
        result: {
          reservationId: earlier.reservationId,
          amount: earlier.amount,
          duplicate: true,
          available: this.available.toString(),
        },
      };
    }
    const day = utcDay(now);
    const reservation: Reservation = {
      id: `r${this.state.nextReservation}`,
      ref: request.ref,
      purpose: request.purpose,
      amount: request.amount,
      day,
      createdAt: now.toISOString(),
    };
    this.state.nextReservation += 1;
    this.state.reservations.push(reservation);
    this.state.committedToday = { day, amount: (this.committedOn(day) + BigInt(request.amount)).toString() };
    this.rememberReserveRef(request.ref, reservation.id, request.amount);
    const entry = this.record(
      {
        kind: 'reserve',
        amount: request.amount,
        reservationId: reservation.id,
        reference: request.ref,
        purpose: request.purpose,
      },
      idempotencyKey,
      now,
    );
    return {
      result: { reservationId: reservation.id, amount: request.amount, duplicate: false, available: entry.available },
      entry,
    };
  }

  settle(request: SettleRequest, idempotencyKey: string, now: Date): { result: SettleResult; entry?: LedgerEntry } {
    this.checkSettle(request);
    const earlier = this.closedIndex.get(request.reservationId);
    if (earlier) {
      return {
        result: {
          reservationId: request.reservationId,
          duplicate: true,
          spent: earlier.spent,
          released: earlier.released,
          available: this.available.toString(),
        },
      };
    }
    const reservation = this.closeReservation(request.reservationId, 'settle', request.actual);
    const actual = BigInt(request.actual);
    const released = BigInt(reservation.amount) - actual;
    this.state.spent = (this.spent + actual).toString();
    this.uncommit(reservation, released);
    const entry = this.record(
      {
        kind: 'settle',
        amount: reservation.amount,
        spent: request.actual,
        reservationId: reservation.id,
        reference: reservation.ref,
      },
      idempotencyKey,
      now,
    );
    return {
      result: {
        reservationId: reservation.id,
        duplicate: false,
        spent: request.actual,
        released: released.toString(),
        available: entry.available,
      },
      entry,
    };
  }

  release(request: ReleaseRequest, idempotencyKey: string, now: Date): { result: ReleaseResult; entry?: LedgerEntry } {
    this.checkRelease(request);
    const earlier = this.closedIndex.get(request.reservationId);
    if (earlier) {
      return {
        result: {
          reservationId: request.reservationId,
          duplicate: true,
          released: earlier.released,
          available: this.available.toString(),
        },
      };
    }
    const reservation = this.closeReservation(request.reservationId, 'release', '0');
    this.uncommit(reservation, BigInt(reservation.amount));
    const entry = this.record(
      { kind: 'release', amount: reservation.amount, reservationId: reservation.id, reference: reservation.ref },
      idempotencyKey,
      now,
    );
    return {
      result: {
        reservationId: reservation.id,
        duplicate: false,
        released: reservation.amount,
        available: entry.available,
      },
      entry,
    };
  }

  setPolicy(change: PolicyChange): BudgetPolicy {
    this.checkPolicy(change);
    this.state.policy = { ...this.state.policy, ...change };
    return { ...this.state.policy };
  }

  pause(): void {
    this.state.paused = true;
  }

  resume(): void {
    this.state.paused = false;
  }

  // ---- internals ----

  /**
   * New deposits and reservations wait for a journal that books again: the workflow would take them,
   * but operators could not see them in PostgreSQL. Settles and releases are always taken.
   */
  private checkJournalBooks(what: string): void {
    const failure = this.state.journalFailure;
    if (!failure) return;
    throw new BudgetRejection(
      FAILURE.journalUnavailable,
      `the journal of ${this.state.germline} has not booked changes since ${failure.since} (${failure.message}); ` +
        `no new ${what} until it books again: try again later, and operators see it in computatrum status and /healthz`,
    );
  }

  private openReservation(reservationId: unknown): Reservation {
    const id = requireText(reservationId, 'reservationId');
    const reservation = this.state.reservations.find((r) => r.id === id);
    if (!reservation) {
      throw new BudgetRejection(
        'UnknownReservation',
        `reservation ${id} is not open (never made, or already settled or released); see the ledger`,
      );
    }
    return reservation;
  }

  private closeReservation(reservationId: string, how: 'settle' | 'release', spent: MinorUnits): Reservation {
    const reservation = this.openReservation(reservationId);
    this.state.reservations = this.state.reservations.filter((r) => r.id !== reservationId);
    const released = (BigInt(reservation.amount) - BigInt(spent)).toString();
    this.state.closed.push([reservationId, how, spent, released]);
    this.closedIndex.set(reservationId, { how, spent, released });
    while (this.state.closed.length > CLOSED_MEMORY) {
      const oldest = this.state.closed.shift();
      if (oldest) this.closedIndex.delete(oldest[0]);
    }
    return reservation;
  }

  /**
   * True when this exact settle or release was already applied (a retry): it is answered again.
   * A different close of an already closed reservation is refused.
   */
  private isRepeatedClose(reservationId: unknown, how: 'settle' | 'release', spent?: MinorUnits): boolean {
    const id = requireText(reservationId, 'reservationId');
    const earlier = this.closedIndex.get(id);
    if (!earlier) return false;
    if (earlier.how === how && (how === 'release' || earlier.spent === spent)) return true;
    throw new BudgetRejection(
      'AlreadyClosed',
      earlier.how === 'settle'
        ? `reservation ${id} was already settled at ${this.money(earlier.spent)}; it cannot be ${how === 'settle' ? 'settled again at another amount' : 'released'}`
        : `reservation ${id} was already released; it cannot be settled`,
    );
  }

  private committedOn(day: string): bigint {
    return this.state.committedToday.day === day ? BigInt(this.state.committedToday.amount) : 0n;
  }

  /** Money that went back to available no longer counts against the day it was reserved on. */
  private uncommit(reservation: Reservation, returned: bigint): void {
    if (this.state.committedToday.day !== reservation.day) return;
    const left = BigInt(this.state.committedToday.amount) - returned;
    this.state.committedToday = { day: reservation.day, amount: (left < 0n ? 0n : left).toString() };
  }

  private rememberReserveRef(ref: string, reservationId: string, amount: MinorUnits): void {
    this.state.reserveRefs.push([ref, reservationId, amount]);
    this.reserveRefIndex.set(ref, { reservationId, amount });
    while (this.state.reserveRefs.length > RESERVE_REF_MEMORY) {
      const oldest = this.state.reserveRefs.shift();
      if (oldest) this.reserveRefIndex.delete(oldest[0]);
    }
  }

  private record(
    change: Pick<LedgerEntry, 'kind' | 'amount' | 'spent' | 'reference' | 'reservationId' | 'purpose'>,
    idempotencyKey: string,
    now: Date,
  ): LedgerEntry {
    this.assertInvariant();
    this.state.sequence += 1;
    const entry: LedgerEntry = {
      sequence: this.state.sequence,
      at: now.toISOString(),
      idempotencyKey,
      balance: this.balance.toString(),
      available: this.available.toString(),
      ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)),
    } as LedgerEntry;
    this.state.recent.push(entry);
    if (this.state.recent.length > RECENT_LEDGER_LIMIT) this.state.recent.shift();
    this.state.unjournaled.push(entry);
    return entry;
  }

  /** A broken invariant is a bug, never a rejection: it must stop the workflow task, not book money. */
  private assertInvariant(): void {
    if (this.deposited < 0n || this.spent < 0n || this.reserved < 0n) {
      throw new Error(`budget invariant broken: negative totals in ${this.state.germline}`);
    }
    if (this.reserved > this.balance) {
      throw new Error(
        `budget invariant broken: reservations ${this.reserved} exceed funds ${this.balance} in ${this.state.germline}`,
      );
    }
  }
}

/** The double-entry legs of a ledger entry; they always sum to zero. */
export type JournalAccount = 'available' | 'reserved' | 'spent' | 'deposits';

export function postingsFor(entry: LedgerEntry): Array<{ account: JournalAccount; amount: bigint }> {
  const amount = BigInt(entry.amount);
  switch (entry.kind) {
    case 'deposit':
      return [
        { account: 'available', amount },
        { account: 'deposits', amount: -amount },
      ];
    case 'reserve':
      return [
        { account: 'reserved', amount },
        { account: 'available', amount: -amount },
      ];
    case 'settle': {
      const spent = BigInt(entry.spent ?? '0');
      return [
        { account: 'spent', amount: spent },
        { account: 'available', amount: amount - spent },
        { account: 'reserved', amount: -amount },
      ];
    }
    case 'release':
      return [
        { account: 'available', amount },
        { account: 'reserved', amount: -amount },
      ];
  }
}
