// The budget's messages and wire types: served by every budget-holding workflow (germline/<name>,
// child/<germline>/<child>, credit/<handle>) and sent by every caller (the platform, the CLI,
// activities, tests).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MinorUnits } from './money';
import { type FAILURE } from './failures';

export interface BudgetPolicy {
  /** Most that may be committed (reserved, then spent) per UTC day, in minor units; null: no cap. */
  dailySpendCap: MinorUnits | null;
  /** Most one reservation may hold, in minor units; null: no cap. */
  perReservationCap: MinorUnits | null;
}

export const DEFAULT_POLICY: BudgetPolicy = { dailySpendCap: null, perReservationCap: null };

export interface Reservation {
  id: string;
  ref: string;
  purpose: string;
  amount: MinorUnits;
  /** UTC day (YYYY-MM-DD) it counts against for the daily cap. */
  day: string;
  createdAt: string;
}

export type LedgerKind = 'deposit' | 'reserve' | 'settle' | 'release';

/** One accepted change, as the workflow records it and the journal books it. */
export interface LedgerEntry {
  sequence: number;
  kind: LedgerKind;
  /** Workflow time, ISO 8601. */
  at: string;
  /** Deposited, reserved, or (settle, release) the amount the reservation held. */
  amount: MinorUnits;
  /** settle only: what was actually spent; amount − spent went back to available. */
  spent?: MinorUnits;
  reference?: string;
  reservationId?: string;
  purpose?: string;
  /** `<workflowId>/<updateId>`: the journal's unique key, so retries never double-book. */
  idempotencyKey: string;
  /** Funds held after the change (deposited − spent). */
  balance: MinorUnits;
  available: MinorUnits;
}

export interface BudgetState {
  germline: string;
  currency: string;
  deposited: MinorUnits;
  spent: MinorUnits;
  reservations: Reservation[];
  policy: BudgetPolicy;
  paused: boolean;
  /** Every deposit reference ever seen: deposits stay idempotent for the germline's life. */
  deposits: Record<string, { amount: MinorUnits; sequence: number }>;
  /** Recent reserve refs → reservation, oldest first, so a retried reserve gets the same id. */
  reserveRefs: Array<[ref: string, reservationId: string, amount: MinorUnits]>;
  /** Recently closed reservations, oldest first, so a retried settle or release gets the same answer. */
  closed: Array<[reservationId: string, how: 'settle' | 'release', spent: MinorUnits, released: MinorUnits]>;
  committedToday: { day: string; amount: MinorUnits };
  sequence: number;
  nextReservation: number;
  /** The latest entries, newest last; the journal in PostgreSQL holds all of them. */
  recent: LedgerEntry[];
  /** Entries accepted but not yet confirmed written to the journal (the outbox). */
  unjournaled: LedgerEntry[];
  /** Set while the journal keeps refusing to book: new money in is refused until it books again. */
  journalFailure?: JournalFailure;
  /** How many times the germline continued as new. */
  generation: number;
}

export interface BudgetStatus {
  germline: string;
  currency: string;
  paused: boolean;
  state: BudgetStateLabel;
  deposited: MinorUnits;
  spent: MinorUnits;
  balance: MinorUnits;
  reserved: MinorUnits;
  available: MinorUnits;
  committedToday: { day: string; amount: MinorUnits };
  policy: BudgetPolicy;
  openReservations: Reservation[];
  sequence: number;
  journalPending: number;
  journalFailure?: JournalFailure;
  generation: number;
}

/** Why the journal writer stopped booking, since when (workflow time), and how often it failed since. */
export interface JournalFailure {
  message: string;
  since: string;
  failures: number;
}

/** Shown in the Temporal UI as the BudgetState search attribute. */
export type BudgetStateLabel = 'journal-failing' | 'paused' | 'funded' | 'empty';

export type RejectionReason =
  | 'InvalidRequest'
  | 'AboveMaximum'
  | 'CurrencyMismatch'
  | 'DuplicateReference'
  | 'InsufficientFunds'
  | 'DailyCapExceeded'
  | 'ReservationCapExceeded'
  | 'Paused'
  | 'UnknownReservation'
  | 'AlreadyClosed'
  | 'SettleAboveReservation'
  | typeof FAILURE.journalUnavailable;

export interface DepositRequest {
  amount: MinorUnits;
  currency: string;
  reference: string;
}
export interface ReserveRequest {
  purpose: string;
  amount: MinorUnits;
  /** Caller's idempotency reference: reserving again with the same ref returns the same reservation. */
  ref: string;
}
export interface SettleRequest {
  reservationId: string;
  actual: MinorUnits;
}
export interface ReleaseRequest {
  reservationId: string;
}
export type PolicyChange = Partial<BudgetPolicy>;

export interface DepositResult {
  sequence: number;
  duplicate: boolean;
  balance: MinorUnits;
  available: MinorUnits;
}
export interface ReserveResult {
  reservationId: string;
  amount: MinorUnits;
  duplicate: boolean;
  available: MinorUnits;
}
export interface SettleResult {
  reservationId: string;
  duplicate: boolean;
  spent: MinorUnits;
  released: MinorUnits;
  available: MinorUnits;
}
export interface ReleaseResult {
  reservationId: string;
  duplicate: boolean;
  released: MinorUnits;
  available: MinorUnits;
}

export const depositUpdate = defineUpdate<DepositResult, [DepositRequest]>('deposit');
export const reserveUpdate = defineUpdate<ReserveResult, [ReserveRequest]>('reserve');
export const settleUpdate = defineUpdate<SettleResult, [SettleRequest]>('settle');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const setPolicyUpdate = defineUpdate<BudgetPolicy, [PolicyChange]>('setPolicy');

export const pauseSignal = defineSignal<[reason?: string]>('pause');
export const resumeSignal = defineSignal('resume');

export const statusQuery = defineQuery<BudgetStatus>('status');
export const ledgerQuery = defineQuery<LedgerEntry[], [limit?: number]>('ledger');
