// What the operator console draws, read from PostgreSQL: the germline's balance and spend per UTC day
// from its journal (days without activity included), its spend by purpose and money in by source
// (from the references the budget booked), and its instances' cost. Loss curves: db/training-loss.ts.
// Amounts stay integer minor units (bigint); the charts (charts.ts) turn them into labels and pixels.
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { utcDays } from './charts';
import {
  allotmentReservationRef,
  childWorkflowPrefix,
  germlineWorkflowId,
  usageFeeReference,
} from '../workflows/names';

/** The journal's accounts that hold the germline's funds: deposited − spent. */
const FUNDS = ['available', 'reserved'];

export interface BooksDay {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  /** Funds held at the end of the day (deposited − spent): minor units. */
  balance: bigint;
  /** Spent during the day (settled reservations): minor units. */
  spent: bigint;
}

export interface DailyBooks {
  days: BooksDay[];
  /** Whether the journal books anything for the germline up to the last day. */
  booked: boolean;
}

/**
 * The germline's balance at the end of each of the last `count` UTC days up to `now`'s, and what it
 * spent on each, from the journal's postings by the transactions' workflow time.
 */
export async function germlineDailyBooks(
  db: Database,
  germline: string,
  options: { now?: Date; count?: number } = {},
): Promise<DailyBooks> {
  const days = utcDays(options.now ?? new Date(), options.count ?? 30);
  const start = new Date(`${days[0]}T00:00:00Z`);
  const end = new Date(Date.parse(`${days[days.length - 1]}T00:00:00Z`) + 86_400_000);
  const [opening, rows] = await Promise.all([
    db.$queryRaw<Array<{ funds: bigint | null; booked: bigint }>>(Prisma.sql`
      SELECT sum(p."amount") FILTER (WHERE p."account" IN (${Prisma.join(FUNDS)}))::bigint AS funds, count(*) AS booked
      FROM "JournalPosting" p JOIN "JournalTransaction" t ON t."id" = p."transactionId"
      WHERE p."germline" = ${germline} AND t."occurredAt" < ${start}`),
    db.$queryRaw<Array<{ day: string; funds: bigint | null; spent: bigint | null }>>(Prisma.sql`
      SELECT to_char(t."occurredAt", 'YYYY-MM-DD') AS day,
        sum(p."amount") FILTER (WHERE p."account" IN (${Prisma.join(FUNDS)}))::bigint AS funds,
        sum(p."amount") FILTER (WHERE p."account" = 'spent')::bigint AS spent
      FROM "JournalPosting" p JOIN "JournalTransaction" t ON t."id" = p."transactionId"
      WHERE p."germline" = ${germline} AND t."occurredAt" >= ${start} AND t."occurredAt" < ${end}
      GROUP BY 1`),
  ]);
  const byDay = new Map(rows.map((r) => [r.day, r]));
  let balance = opening[0]?.funds ?? 0n;
  return {
    booked: Number(opening[0]?.booked ?? 0) > 0 || rows.length > 0,
    days: days.map((day) => {
      const row = byDay.get(day);
      balance += row?.funds ?? 0n;
      return { day, balance, spent: row?.spent ?? 0n };
    }),
  };
}

/** What a budget's money went to, told by the reference of the reservation that a settlement spent. */
export const SPEND_PURPOSES = [
  { purpose: 'training', label: 'Training runs', prefix: 'training/' },
  // A probe runs an instance of the image it probes, paid by the germline (activities/probes).
  { purpose: 'probes', label: 'Probes', prefix: 'instance/probe-' },
  { purpose: 'instances', label: 'Instances', prefix: 'instance/' },
  { purpose: 'children', label: 'Children', prefix: 'child/' },
  { purpose: 'usage', label: 'Priced calls', prefix: allotmentReservationRef('') },
] as const;

/** Where money came from, told by a deposit's reference: the platform's fee of priced calls, or funding. */
export const INCOME_SOURCES = [{ source: 'usage-fees', label: 'Usage fees', prefix: usageFeeReference('') }] as const;

export interface Share {
  key: string;
  label: string;
  /** Minor units. */
  amount: bigint;
}

/** A CASE that names the first matching prefix's key, `fallback` otherwise (the prefixes are ours: no LIKE wildcards). */
function caseOfReference(rules: ReadonlyArray<{ key: string; prefix: string }>, fallback: string): Prisma.Sql {
  return Prisma.sql`CASE ${Prisma.join(
    rules.map((r) => Prisma.sql`WHEN t."reference" LIKE ${`${r.prefix}%`} THEN ${r.key}`),
    ' ',
  )} ELSE ${fallback} END`;
}

/** The germline's spending since `since` by purpose, largest first; purposes it spent nothing on are left out. */
export async function spendByPurpose(db: Database, germline: string, since: Date): Promise<Share[]> {
  const rules = SPEND_PURPOSES.map((p) => ({ key: p.purpose, prefix: p.prefix }));
  const rows = await db.$queryRaw<Array<{ key: string; amount: bigint }>>(Prisma.sql`
    SELECT ${caseOfReference(rules, 'other')} AS key, sum(p."amount")::bigint AS amount
    FROM "JournalPosting" p JOIN "JournalTransaction" t ON t."id" = p."transactionId"
    WHERE p."germline" = ${germline} AND p."account" = 'spent' AND t."occurredAt" >= ${since}
    GROUP BY 1`);
  const label = (key: string) => SPEND_PURPOSES.find((p) => p.purpose === key)?.label ?? 'Other';
  return shares(rows, label);
}

/** The germline's deposits since `since` by source, largest first. */
export async function incomeBySource(db: Database, germline: string, since: Date): Promise<Share[]> {
  const rules = INCOME_SOURCES.map((s) => ({ key: s.source, prefix: s.prefix }));
  const rows = await db.$queryRaw<Array<{ key: string; amount: bigint }>>(Prisma.sql`
    SELECT ${caseOfReference(rules, 'funding')} AS key, sum(t."amount")::bigint AS amount
    FROM "JournalTransaction" t
    WHERE t."germline" = ${germline} AND t."kind" = 'deposit' AND t."occurredAt" >= ${since}
    GROUP BY 1`);
  const label = (key: string) => INCOME_SOURCES.find((s) => s.source === key)?.label ?? 'Funding';
  return shares(rows, label);
}

function shares(rows: Array<{ key: string; amount: bigint }>, label: (key: string) => string): Share[] {
  return rows
    .filter((r) => r.amount > 0n)
    .map((r) => ({ key: r.key, label: label(r.key), amount: r.amount }))
    .sort((a, b) => (a.amount === b.amount ? a.key.localeCompare(b.key) : a.amount > b.amount ? -1 : 1));
}

/** Instances paid by the germline or its children that cost something, costliest first (at most `limit`). */
export function germlineInstanceCosts(db: Database, germline: string, limit = 20) {
  return db.instance.findMany({
    where: {
      cost: { gt: 0n },
      OR: [{ payer: germlineWorkflowId(germline) }, { payer: { startsWith: childWorkflowPrefix(germline) } }],
    },
    orderBy: [{ cost: 'desc' }, { createdAt: 'desc' }],
    take: limit,
    select: { id: true, repository: true, reference: true, state: true, cost: true, currency: true },
  });
}

/** Days the console's money charts cover, today's included. */
export const CHART_DAYS = 30;

/** Everything the console's money charts show, for the CHART_DAYS days up to `now`'s. */
export async function germlineMoney(db: Database, germline: string, now = new Date()) {
  const since = new Date(`${utcDays(now, CHART_DAYS)[0]}T00:00:00Z`);
  const [books, spend, income, instances] = await Promise.all([
    germlineDailyBooks(db, germline, { now, count: CHART_DAYS }),
    spendByPurpose(db, germline, since),
    incomeBySource(db, germline, since),
    germlineInstanceCosts(db, germline),
  ]);
  return { books, spend, income, instances };
}
