// The allotment workflow's bookkeeping (workflows/allotment.ts): the UsageAllotment row through its
// life, and its settlement's books: the trainers' earnings (their payable account) and the platform's
// fee, deposited into the germline. Each step is idempotent, so a retried activity books nothing twice.
import type { Client } from '@temporalio/client';
import type { Database } from '../db/prisma';
import { closeAllotment, MICROS_PER_MINOR, microsToMinor, releaseStaleHolds } from '../db/usage';
import { updateBudget } from '../temporal/budget-client';
import { depositUpdate } from '../workflows/budget-api';
import type { MinorUnits } from '../workflows/money';
import { germlineWorkflowId, usageFeeReference } from '../workflows/names';

export interface UsageActivities {
  openAllotment(input: { id: string; reservationId: string; amount: MinorUnits; expiresAt: string }): Promise<void>;
  refuseAllotment(input: { id: string; reason: string }): Promise<void>;
  closeAllotment(input: { id: string }): Promise<void>;
  /** Calls still held against the allotment, once those held since before `staleBefore` are released. */
  heldCalls(input: { id: string; staleBefore: string }): Promise<number>;
  /** What the allotment's calls used, in minor units (rounded up once): what the payer settles. */
  meteredSpend(input: { id: string }): Promise<{ spent: MinorUnits }>;
  bookUsage(input: {
    id: string;
    spent: MinorUnits;
    currency: string;
    germline: string;
    feePercent: number;
  }): Promise<void>;
}

/**
 * How a settled allotment's `spent` is shared: each breed's trainer earns their share of its charges,
 * rounded down; the platform's fee is the rest, so the two always sum to what the payer paid.
 */
export function shareUsage(
  spent: bigint,
  byBreed: Array<{ repository: string; trainerHandle: string; micros: bigint }>,
  feePercent: number,
): { earnings: Array<{ repository: string; trainerHandle: string; amount: bigint }>; fee: bigint } {
  const trainerPercent = BigInt(100 - feePercent);
  const earnings = byBreed.map(({ repository, trainerHandle, micros }) => ({
    repository,
    trainerHandle,
    amount: (micros * trainerPercent) / (100n * MICROS_PER_MINOR),
  }));
  return { earnings, fee: spent - earnings.reduce((sum, e) => sum + e.amount, 0n) };
}

export function createUsageActivities(deps: { db: Database; client: Client }): UsageActivities {
  const { db, client } = deps;
  return {
    async openAllotment({ id, reservationId, amount, expiresAt }) {
      await db.usageAllotment.updateMany({
        where: { id, state: 'opening' },
        data: { state: 'open', reservationId, amount: BigInt(amount), expiresAt: new Date(expiresAt) },
      });
    },

    async refuseAllotment({ id, reason }) {
      await db.usageAllotment.updateMany({ where: { id, state: 'opening' }, data: { state: 'refused', reason } });
    },

    async closeAllotment({ id }) {
      await closeAllotment(db, id);
    },

    async heldCalls({ id, staleBefore }) {
      return releaseStaleHolds(db, id, new Date(staleBefore));
    },

    async meteredSpend({ id }) {
      const row = await db.usageAllotment.findUniqueOrThrow({ where: { id }, select: { used: true } });
      return { spent: microsToMinor(row.used).toString() };
    },

    async bookUsage({ id, spent, currency, germline, feePercent }) {
      const byBreed = await db.usageCharge.groupBy({
        by: ['repository', 'trainerHandle'],
        where: { allotmentId: id, state: 'charged' },
        _sum: { amount: true },
        orderBy: { repository: 'asc' },
      });
      const { earnings, fee } = shareUsage(
        BigInt(spent),
        byBreed.map((b) => ({ repository: b.repository, trainerHandle: b.trainerHandle, micros: b._sum.amount ?? 0n })),
        feePercent,
      );
      // The fee first: deposits are idempotent by reference, and the allotment is marked settled only
      // once everything it owes is booked.
      if (fee > 0n)
        await updateBudget(client.workflow.getHandle(germlineWorkflowId(germline)), depositUpdate, {
          amount: fee.toString(),
          currency,
          reference: usageFeeReference(id),
        });
      await db.$transaction([
        db.earning.createMany({
          data: earnings
            .filter((e) => e.amount > 0n)
            .map((e) => ({
              id: `${id}/${e.repository}`,
              handle: e.trainerHandle,
              repository: e.repository,
              allotmentId: id,
              amount: e.amount,
              currency,
            })),
          skipDuplicates: true,
        }),
        db.usageAllotment.update({
          where: { id },
          data: { state: 'settled', spent: BigInt(spent), fee, settledAt: new Date() },
        }),
      ]);
    },
  };
}
