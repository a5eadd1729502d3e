// Metering priced calls in PostgreSQL. An allotment (UsageAllotment) is credit the allotment/<id>
// workflow reserved from a payer's budget; each call holds its worst case against it before the
// instance sees the call, and is charged what it used after, each in one atomic statement, so a burst
// of calls can never meter more than was reserved (the table's CHECK says so too). Amounts here are
// millionths of a minor unit ("micros"): a price per 1,000,000 tokens in minor units times tokens is
// exact, and only a settled allotment is rounded, once, up to the minor unit.
import { Prisma } from '@prisma/client';
import type { Database } from './prisma';

export const MICROS_PER_MINOR = 1_000_000n;

/** The most one allotment may reserve, in minor units: its micros still fit PostgreSQL's bigint. */
export const MAX_ALLOTMENT_MINOR = 10n ** 12n;

export interface UsePrice {
  /** Minor units per 1,000,000 tokens. */
  inputPerMillion: bigint;
  outputPerMillion: bigint;
}

export interface TokenCounts {
  input: number;
  output: number;
}

/** What tokens cost at a price, in micros: exact. */
export function chargeMicros(tokens: TokenCounts, price: UsePrice): bigint {
  return BigInt(tokens.input) * price.inputPerMillion + BigInt(tokens.output) * price.outputPerMillion;
}

/** Micros as minor units the payer is charged: rounded up, once per allotment. */
export const microsToMinor = (micros: bigint): bigint => (micros + MICROS_PER_MINOR - 1n) / MICROS_PER_MINOR;

export interface ChargeContext {
  id: string;
  payerHandle: string;
  caller: string;
  instanceId: string;
  repository: string;
  trainerHandle: string;
  currency: string;
}

/** A sponsor's grant paying for a person's call: within `allowance` a UTC day (minor units). */
export interface GrantHold {
  sponsor: string;
  handle: string;
  allowance: bigint;
}

/** Why a hold did not happen: no open allotment has room (open one), or the grant has no room left today. */
export type HoldOutcome = { allotmentId: string } | { noRoom: 'allotment' | 'grant' };

type Queries = Pick<Database, '$queryRaw'>;

/** Holds on the payer's open allotment and records the call as held, in one statement. */
async function holdOnAllotment(
  db: Queries,
  payer: string,
  micros: bigint,
  charge: ChargeContext,
  sponsor: string | null,
) {
  const rows = await db.$queryRaw<Array<{ allotmentId: string }>>(Prisma.sql`
    WITH allotment AS (
      UPDATE "UsageAllotment" SET "held" = "held" + ${micros}
      WHERE "payer" = ${payer} AND "state" = 'open' AND "expiresAt" > (now() AT TIME ZONE 'UTC')
        AND "amount" * 1000000 - "used" - "held" >= ${micros}
      RETURNING "id"
    )
    INSERT INTO "UsageCharge"
      ("id", "allotmentId", "payerHandle", "caller", "instanceId", "repository", "trainerHandle", "state", "held",
       "currency", "sponsor", "createdAt")
    SELECT ${charge.id}, allotment."id", ${charge.payerHandle}, ${charge.caller}, ${charge.instanceId},
      ${charge.repository}, ${charge.trainerHandle}, 'held', ${micros}, ${charge.currency}, ${sponsor},
      (now() AT TIME ZONE 'UTC')
    FROM allotment
    RETURNING "allotmentId"`);
  return rows[0]?.allotmentId;
}

/** The transaction's rollback when the grant had room and the allotment had none. */
class NoAllotmentRoom extends Error {}

/**
 * Holds `micros` against the payer's open allotment and records the call as held, in one statement;
 * with a grant, also within what the person has left of it today, in the same transaction (the
 * day's use is a row updated under its lock, so a burst never spends past the allowance).
 */
export async function holdCharge(
  db: Database,
  payer: string,
  micros: bigint,
  charge: ChargeContext,
  grant?: GrantHold,
): Promise<HoldOutcome> {
  if (!grant) {
    const allotmentId = await holdOnAllotment(db, payer, micros, charge, null);
    return allotmentId ? { allotmentId } : { noRoom: 'allotment' };
  }
  const allowance = grant.allowance * MICROS_PER_MINOR;
  if (micros > allowance) return { noRoom: 'grant' };
  try {
    return await db.$transaction(async (tx) => {
      const granted = await tx.$queryRaw<unknown[]>(Prisma.sql`
        INSERT INTO "GrantUse" ("sponsor", "handle", "day", "held")
        VALUES (${grant.sponsor}, ${grant.handle}, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ${micros})
        ON CONFLICT ("sponsor", "handle", "day") DO UPDATE SET "held" = "GrantUse"."held" + EXCLUDED."held"
        WHERE "GrantUse"."held" + "GrantUse"."used" + EXCLUDED."held" <= ${allowance}
        RETURNING 1`);
      if (granted.length === 0) return { noRoom: 'grant' as const };
      const allotmentId = await holdOnAllotment(tx, payer, micros, charge, grant.sponsor);
      if (!allotmentId) throw new NoAllotmentRoom();
      return { allotmentId };
    });
  } catch (error) {
    if (error instanceof NoAllotmentRoom) return { noRoom: 'allotment' };
    throw error;
  }
}

/**
 * Ends a held call: charged what it used (never more than it held), or released (`tokens` absent,
 * nothing reached the caller). Its hold goes back to the allotment, and to the grant's day when a
 * grant paid. A call no longer held (released as lost by a settlement that could not wait for it)
 * changes nothing. Answers the micros charged.
 */
export async function finishCharge(
  db: Database,
  id: string,
  outcome: { tokens: TokenCounts; micros: bigint } | { released: string },
): Promise<bigint> {
  const charged = 'tokens' in outcome;
  const rows = await db.$queryRaw<Array<{ amount: bigint }>>(Prisma.sql`
    WITH charge AS (
      UPDATE "UsageCharge" SET
        "state" = ${charged ? 'charged' : 'released'},
        "amount" = LEAST(${charged ? outcome.micros : 0n}, "held"),
        "inputTokens" = ${charged ? outcome.tokens.input : null}::integer,
        "outputTokens" = ${charged ? outcome.tokens.output : null}::integer,
        "reason" = ${charged ? null : outcome.released},
        "finishedAt" = (now() AT TIME ZONE 'UTC')
      WHERE "id" = ${id} AND "state" = 'held'
      RETURNING "allotmentId", "held", "amount", "sponsor", "payerHandle", "createdAt"
    ), grant_day AS (
      UPDATE "GrantUse" SET "held" = "GrantUse"."held" - charge."held", "used" = "GrantUse"."used" + charge."amount"
      FROM charge
      WHERE charge."sponsor" IS NOT NULL AND "GrantUse"."sponsor" = charge."sponsor"
        AND "GrantUse"."handle" = charge."payerHandle" AND "GrantUse"."day" = to_char(charge."createdAt", 'YYYY-MM-DD')
    )
    UPDATE "UsageAllotment" SET "held" = "UsageAllotment"."held" - charge."held", "used" = "used" + charge."amount"
    FROM charge WHERE "UsageAllotment"."id" = charge."allotmentId"
    RETURNING charge."amount"`);
  return rows[0]?.amount ?? 0n;
}

/** A call refused before it reached the instance, kept so the caller sees why (`computatrum usage`). */
export async function recordRefusal(db: Database, charge: ChargeContext, reason: string): Promise<void> {
  await db.usageCharge.create({ data: { ...charge, state: 'refused', reason } });
}

/** Closes an allotment to new calls; calls already held still finish against it. */
export async function closeAllotment(db: Database, id: string): Promise<void> {
  await db.usageAllotment.updateMany({ where: { id, state: { in: ['opening', 'open'] } }, data: { state: 'closing' } });
}

/**
 * Releases the holds of calls that began before `staleBefore` and never finished (their gateway went
 * away mid-call: what they streamed is unknown, and is not charged), and answers how many are still held.
 */
export async function releaseStaleHolds(db: Database, allotmentId: string, staleBefore: Date): Promise<number> {
  const stale = await db.usageCharge.findMany({
    where: { allotmentId, state: 'held', createdAt: { lt: staleBefore } },
    select: { id: true },
  });
  for (const { id } of stale)
    await finishCharge(db, id, { released: 'the call never finished: its gateway went away' }).then(() =>
      db.usageCharge.updateMany({ where: { id, state: 'released' }, data: { state: 'lost' } }),
    );
  return db.usageCharge.count({ where: { allotmentId, state: 'held' } });
}
