// Paying trainers what their breeds' use earned them (Earning rows, booked when an allotment
// settles): a run gathers each trainer's unpaid earnings into a Payout and transfers it to their
// Stripe connected account. The payout's id is the transfer's idempotency key and transfer group, and
// a payout that failed (or whose answer was lost) is looked up at Stripe before it is tried again,
// so a trainer is never paid twice; earnings are claimed by one statement, so two runs at once
// cannot pay the same earning.
import { randomUUID } from 'node:crypto';
import { CronJob } from 'cron';
import type { Database } from '../db/prisma';
import { formatMoney } from '../workflows/money';
import type { StripeSettings } from './stripe';

/** Earnings below this wait for the next run: a transfer for a few cents costs more than it pays. */
export const DEFAULT_MINIMUM_PAYOUT = 100n;

export interface PayoutOutcome {
  id: string;
  handle: string;
  amount: bigint;
  currency: string;
  state: string;
  transferId: string | null;
  error: string | null;
}

/** The payout's Stripe idempotency key and transfer group. */
const transferKey = (id: string) => `payout/${id}`;

export async function payOutEarnings(
  stripe: StripeSettings,
  db: Database,
  currency: string,
  options: { minimum?: bigint } = {},
): Promise<PayoutOutcome[]> {
  const minimum = options.minimum ?? DEFAULT_MINIMUM_PAYOUT;
  const owed = await db.earning.groupBy({
    by: ['handle'],
    where: { payoutId: null, currency },
    _sum: { amount: true },
  });
  for (const { handle, _sum } of owed) {
    if ((_sum.amount ?? 0n) < minimum) continue;
    const account = await db.account.findUnique({ where: { handle }, select: { stripeAccountId: true } });
    if (!account?.stripeAccountId) continue; // paid once they onboard (the marketplace's payouts page)
    const id = randomUUID();
    await db.$transaction(async (tx) => {
      await tx.payout.create({
        data: { id, handle, stripeAccountId: account.stripeAccountId!, amount: 0n, currency, state: 'pending' },
      });
      // Claimed here, in one statement: an earning claimed by another run at the same moment is not in it.
      await tx.earning.updateMany({ where: { handle, currency, payoutId: null }, data: { payoutId: id } });
      const claimed = await tx.earning.aggregate({ where: { payoutId: id }, _sum: { amount: true } });
      await tx.payout.update({ where: { id }, data: { amount: claimed._sum.amount ?? 0n } });
    });
  }
  const open = await db.payout.findMany({
    where: { state: { in: ['pending', 'failed'] } },
    orderBy: { createdAt: 'asc' },
  });
  const outcomes: PayoutOutcome[] = [];
  for (const payout of open) outcomes.push(await transfer(stripe, db, payout));
  return outcomes;
}

async function transfer(
  stripe: StripeSettings,
  db: Database,
  payout: { id: string; handle: string; stripeAccountId: string; amount: bigint; currency: string },
): Promise<PayoutOutcome> {
  const done = async (data: { state: string; transferId?: string; error?: string | null }) => {
    const row = await db.payout.update({
      where: { id: payout.id },
      data: { ...data, ...(data.state === 'paid' ? { paidAt: new Date(), error: null } : {}) },
    });
    return {
      id: row.id,
      handle: row.handle,
      amount: row.amount,
      currency: row.currency,
      state: row.state,
      transferId: row.transferId,
      error: row.error,
    };
  };
  try {
    // A transfer that was made but whose answer was lost is found by its group, not made again
    // (Stripe keeps idempotency keys for a day only).
    const made = await stripe.client.transfers.list({ transfer_group: transferKey(payout.id), limit: 1 });
    const existing = made.data.find((t) => t.transfer_group === transferKey(payout.id));
    if (existing) return await done({ state: 'paid', transferId: existing.id });
    const created = await stripe.client.transfers.create(
      {
        amount: Number(payout.amount),
        currency: payout.currency,
        destination: payout.stripeAccountId,
        transfer_group: transferKey(payout.id),
        description: `computatrum earnings of ${payout.handle}: ${formatMoney(payout.amount, payout.currency)}`,
        metadata: { payout: payout.id, handle: payout.handle },
      },
      { idempotencyKey: transferKey(payout.id) },
    );
    return await done({ state: 'paid', transferId: created.id });
  } catch (error) {
    return done({ state: 'failed', error: (error as Error).message.slice(0, 500) });
  }
}

/**
 * Runs payouts at each time of `cron` (five fields, UTC: COMPUTATRUM_PAYOUTS_CRON) while the platform
 * runs. Each run is safe beside another's, on this replica or another (see payOutEarnings), so every
 * replica keeps the same timer; answers a function that stops it.
 */
export function schedulePayouts(
  run: () => Promise<PayoutOutcome[]>,
  log: { info: (o: object, m: string) => void; error: (o: object, m: string) => void },
  cron: string,
): () => void {
  const job = CronJob.from({
    cronTime: cron,
    timeZone: 'UTC',
    start: true,
    // A waiting payout keeps no process alive.
    unrefTimeout: true,
    onTick: () =>
      run().then(
        (outcomes) => {
          if (outcomes.length)
            log.info({ payouts: outcomes.map((o) => ({ ...o, amount: o.amount.toString() })) }, 'payouts run');
        },
        (error: unknown) => log.error({ err: error }, 'a payouts run failed; the next one tries again'),
      ),
  });
  return () => void job.stop();
}
