// What priced calls cost the people who made them (their own credit, or a sponsor's grant) and earned the trainers who made the breeds: every
// charge and refusal a payer's credit saw (`computatrum usage`, GraphQL myUsage), and a trainer's
// earnings (their payable account), paid or not yet.
import type { Database } from '../db/prisma';
import { PlatformError } from './errors';

export interface UsageEntry {
  id: string;
  at: Date;
  instanceId: string;
  repository: string;
  /** held (in flight) | charged | released | lost | refused */
  state: string;
  inputTokens: number | null;
  outputTokens: number | null;
  /** Millionths of a minor unit: held while in flight, charged once ended. */
  amount: bigint;
  reason: string | null;
  /** Who made the call: the payer themselves, or a visitor of their public instance. */
  caller: string;
  /** The sponsor whose grant paid, if one did. */
  sponsor: string | null;
}

export interface UsageReport {
  currency: string;
  since: Date;
  /** Millionths of a minor unit charged since `since`. */
  charged: bigint;
  calls: number;
  refusals: number;
  entries: UsageEntry[];
  /** Minor units the payer's trainers earned them (their breeds' use by others), and of it not yet paid out. */
  earned: bigint;
  earnedUnpaid: bigint;
}

export const MAX_USAGE_ENTRIES = 500;
const DEFAULT_USAGE_DAYS = 30;

export async function usageReport(
  db: Database,
  handle: string,
  currency: string,
  options: { since?: Date | null; limit?: number | null } = {},
): Promise<UsageReport> {
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_USAGE_ENTRIES)
    throw new PlatformError('BAD_USER_INPUT', `limit is 1 to ${MAX_USAGE_ENTRIES}`);
  const since = options.since ?? new Date(Date.now() - DEFAULT_USAGE_DAYS * 86_400_000);
  if (Number.isNaN(since.getTime())) throw new PlatformError('BAD_USER_INPUT', 'since is a date, like 2026-11-01');
  const where = { payerHandle: handle, createdAt: { gte: since } };
  const [rows, charged, refusals, earned, unpaid] = await Promise.all([
    db.usageCharge.findMany({ where, orderBy: { createdAt: 'desc' }, take: limit }),
    db.usageCharge.aggregate({ where: { ...where, state: 'charged' }, _sum: { amount: true }, _count: true }),
    db.usageCharge.count({ where: { ...where, state: 'refused' } }),
    db.earning.aggregate({ where: { handle }, _sum: { amount: true } }),
    db.earning.aggregate({ where: { handle, payoutId: null }, _sum: { amount: true } }),
  ]);
  return {
    currency,
    since,
    charged: charged._sum.amount ?? 0n,
    calls: charged._count,
    refusals,
    entries: rows.map((row) => ({
      id: row.id,
      at: row.createdAt,
      instanceId: row.instanceId,
      repository: row.repository,
      state: row.state,
      inputTokens: row.inputTokens,
      outputTokens: row.outputTokens,
      amount: row.state === 'held' ? row.held : row.amount,
      reason: row.reason,
      caller: row.caller,
      sponsor: row.sponsor,
    })),
    earned: earned._sum.amount ?? 0n,
    earnedUnpaid: unpaid._sum.amount ?? 0n,
  };
}
