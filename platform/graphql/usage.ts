// Per-use prices: a trainer prices their breed's use, and a payer reads what their calls cost.
import { formatMicros, formatMoney } from '../../workflows/money';
import { priceBreed } from '../marketplace';
import { type UsageEntry, type UsageReport, usageReport } from '../usage';
import { builder } from './builder';
import { BreedRef } from './marketplace';
import { refused } from './refusals';
import { payOutEarnings, type PayoutOutcome } from '../payouts';
import { payments } from './builder';

const UsageEntryRef = builder.objectRef<UsageEntry & { currency: string }>('UsageEntry').implement({
  fields: (t) => ({
    id: t.exposeString('id', { description: 'the interaction (x-computatrum-interaction) it was for' }),
    at: t.string({ resolve: (e) => e.at.toISOString() }),
    instance: t.exposeString('instanceId'),
    repository: t.exposeString('repository', { description: 'the priced breed it paid for' }),
    state: t.exposeString('state', { description: 'held (in flight) | charged | released | lost | refused' }),
    caller: t.exposeString('caller', { description: 'account:<you>, or visitor:<id> on your public instance' }),
    inputTokens: t.int({ nullable: true, resolve: (e) => e.inputTokens }),
    outputTokens: t.int({ nullable: true, resolve: (e) => e.outputTokens }),
    amountMicros: t.string({
      description: 'millionths of a minor unit: charged, or held while in flight',
      resolve: (e) => e.amount.toString(),
    }),
    amount: t.string({ resolve: (e) => formatMicros(e.amount, e.currency) }),
    reason: t.string({ nullable: true, resolve: (e) => e.reason }),
    sponsor: t.string({
      nullable: true,
      description: 'the sponsor whose grant paid; null: your credit',
      resolve: (e) => e.sponsor,
    }),
  }),
});

const UsageRef = builder.objectRef<UsageReport>('Usage').implement({
  fields: (t) => ({
    currency: t.exposeString('currency'),
    since: t.string({ resolve: (u) => u.since.toISOString() }),
    chargedMicros: t.string({ resolve: (u) => u.charged.toString() }),
    charged: t.string({ resolve: (u) => formatMicros(u.charged, u.currency) }),
    calls: t.exposeInt('calls', { description: 'priced calls charged since `since`' }),
    refusals: t.exposeInt('refusals'),
    entries: t.field({
      type: [UsageEntryRef],
      description: 'newest first',
      resolve: (u) => u.entries.map((e) => ({ ...e, currency: u.currency })),
    }),
    earned: t.string({
      description: "minor units your breeds' use earned you, all time",
      resolve: (u) => u.earned.toString(),
    }),
    earnedUnpaid: t.string({ description: 'of it, not yet paid out', resolve: (u) => u.earnedUnpaid.toString() }),
    summary: t.string({
      resolve: (u) =>
        `${u.calls} calls charged ${formatMicros(u.charged, u.currency)}, ${u.refusals} refused; earned ${formatMoney(u.earned, u.currency)}`,
    }),
  }),
});

builder.queryFields((t) => ({
  myUsage: t.field({
    type: UsageRef,
    description: 'What your priced calls cost (and were refused), and what your breeds earned.',
    authScopes: { trainer: true },
    args: { since: t.arg.string({ description: 'a date or time; default 30 days ago' }), limit: t.arg.int() },
    resolve: (_root, args, context) =>
      usageReport(context.db, context.caller.account!.handle, context.currency, {
        since: args.since ? new Date(args.since) : null,
        limit: args.limit ?? null,
      }).catch(refused),
  }),
}));

const PayoutRef = builder.objectRef<PayoutOutcome>('Payout').implement({
  fields: (t) => ({
    id: t.exposeString('id', { description: 'also the Stripe transfer group and idempotency key (payout/<id>)' }),
    handle: t.exposeString('handle'),
    amount: t.string({ description: 'minor units', resolve: (p) => p.amount.toString() }),
    currency: t.exposeString('currency'),
    state: t.exposeString('state', { description: 'paid | failed (tried again by the next run)' }),
    transferId: t.string({ nullable: true, resolve: (p) => p.transferId }),
    error: t.string({ nullable: true, resolve: (p) => p.error }),
  }),
});

builder.mutationFields((t) => ({
  payOutEarnings: t.field({
    type: [PayoutRef],
    description:
      'Pays trainers their unpaid earnings now (Stripe Connect transfers; the platform also does it daily): each trainer with a connected account and at least the minimum owed, and every payout that failed before.',
    authScopes: { operator: true },
    resolve: (_root, _args, context) => payOutEarnings(payments(context), context.db, context.currency).catch(refused),
  }),
  priceBreed: t.field({
    type: BreedRef,
    description:
      'Sets your breed\'s prices; each one not given stays: download ("0": free), inputPer1k and outputPer1k (per 1,000 tokens of interaction, e.g. "0.002"; "0": none), and whether a download licence includes use.',
    authScopes: { trainer: true },
    args: {
      repository: t.arg.string({ required: true }),
      download: t.arg.string(),
      inputPer1k: t.arg.string(),
      outputPer1k: t.arg.string(),
      licenceIncludesUse: t.arg.boolean(),
    },
    resolve: (_root, args, context) =>
      priceBreed(context.db, context.caller.account!, {
        repository: args.repository,
        download: args.download ?? null,
        inputPer1k: args.inputPer1k ?? null,
        outputPer1k: args.outputPer1k ?? null,
        licenceIncludesUse: args.licenceIncludesUse ?? null,
      }).catch(refused),
  }),
}));
