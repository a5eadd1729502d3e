// The double-entry budget journal in PostgreSQL: append-only, one transaction per accepted budget
// change, keyed by `<workflowId>/<updateId>` so a retried activity books nothing twice.
import { log } from '@temporalio/activity';
import type { Database } from '../db/prisma';
import { metrics } from '../runtime/metrics';
import { type JournalAccount, postingsFor } from '../workflows/budget';
import { type LedgerEntry } from '../workflows/budget-api';

export interface RecordJournalInput {
  germline: string;
  currency: string;
  entries: LedgerEntry[];
}

export interface JournalActivities {
  recordJournalEntries(input: RecordJournalInput): Promise<void>;
}

export function createJournalActivities(db: Database): JournalActivities {
  return {
    async recordJournalEntries({ germline, currency, entries }) {
      const transactions = entries.map((entry) => ({
        id: entry.idempotencyKey,
        germline,
        kind: entry.kind,
        reference: entry.reference ?? null,
        reservationId: entry.reservationId ?? null,
        amount: BigInt(entry.amount),
        currency,
        sequence: BigInt(entry.sequence),
        occurredAt: new Date(entry.at),
      }));
      const postings = entries.flatMap((entry) =>
        postingsFor(entry).map((leg, index) => ({
          id: `${entry.idempotencyKey}#${index}`,
          transactionId: entry.idempotencyKey,
          germline,
          account: leg.account,
          amount: leg.amount,
        })),
      );
      // One database transaction per batch: all of it is booked, or none of it.
      const [booked] = await db.$transaction([
        db.journalTransaction.createMany({ data: transactions, skipDuplicates: true }),
        db.journalPosting.createMany({ data: postings, skipDuplicates: true }),
      ]);
      // The oldest entry of the batch waited longest: how far the books trail the workflow.
      if (entries[0]) metrics().journalLag.record(Math.max(0, Date.now() - Date.parse(entries[0].at)));
      log.info('journal booked', {
        germline,
        entries: entries.length,
        newlyBooked: booked.count,
        throughSequence: entries[entries.length - 1]?.sequence,
      });
    },
  };
}

export type JournalBalances = Record<JournalAccount, bigint> & { transactions: number; lastSequence: number };

/** Sums the journal's postings per account for one germline: the books as PostgreSQL holds them. */
export async function journalBalances(db: Database, germline: string): Promise<JournalBalances> {
  const sums = await db.journalPosting.groupBy({ by: ['account'], where: { germline }, _sum: { amount: true } });
  const totals = await db.journalTransaction.aggregate({ where: { germline }, _count: true, _max: { sequence: true } });
  const balance = (account: JournalAccount) => sums.find((s) => s.account === account)?._sum.amount ?? 0n;
  return {
    available: balance('available'),
    reserved: balance('reserved'),
    spent: balance('spent'),
    deposits: balance('deposits'),
    transactions: totals._count,
    lastSequence: Number(totals._max.sequence ?? 0n),
  };
}

export interface ReconciliationRow {
  item: string;
  workflow: string;
  journal: string;
  agrees: boolean;
}

export interface Reconciliation {
  agrees: boolean;
  /** Changes the workflow accepted that the journal writer has not booked yet. */
  journalPending: number;
  rows: ReconciliationRow[];
}

/** Compares the workflow's budget with the journal's books, item by item. */
export function reconcile(
  status: {
    available: string;
    reserved: string;
    spent: string;
    deposited: string;
    sequence: number;
    journalPending: number;
  },
  books: JournalBalances,
): Reconciliation {
  const row = (item: string, workflow: bigint | number, journal: bigint | number): ReconciliationRow => ({
    item,
    workflow: workflow.toString(),
    journal: journal.toString(),
    agrees: BigInt(workflow) === BigInt(journal),
  });
  const booked = status.sequence - status.journalPending;
  const rows = [
    row('available', BigInt(status.available), books.available),
    row('reserved', BigInt(status.reserved), books.reserved),
    row('spent', BigInt(status.spent), books.spent),
    row('deposited', BigInt(status.deposited), -books.deposits),
    row('entries booked', booked, books.transactions),
    row('last sequence', booked, books.lastSequence),
    row('legs sum to zero', 0n, books.available + books.reserved + books.spent + books.deposits),
  ];
  return {
    agrees: status.journalPending === 0 && rows.every((r) => r.agrees),
    journalPending: status.journalPending,
    rows,
  };
}
