// Sponsors: an organisation funds free use for personal users (a daily allowance each), and reads
// what its grant paid for.
import { formatMicros } from '../../workflows/money';
import {
  createSponsor,
  openGrants,
  setSponsorGrant,
  type SponsorReport,
  sponsorReport,
  type SponsorView,
} from '../sponsors';
import { createSponsorCheckout } from '../stripe';
import { BooksRef } from './budget';
import { amount, builder, CheckoutRef, payments, training } from './builder';
import { refused } from './refusals';

const SponsorRef = builder.objectRef<SponsorView>('Sponsor').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    title: t.exposeString('title'),
    dailyAllowance: t.string({
      description: 'minor units each eligible person may use a UTC day; "0": no grant',
      resolve: (s) => s.dailyAllowance.toString(),
    }),
    eligibleDomain: t.string({
      nullable: true,
      description: 'personal accounts with an email at this domain; null: every personal account',
      resolve: (s) => s.eligibleDomain,
    }),
    expiresAt: t.string({ nullable: true, resolve: (s) => s.expiresAt?.toISOString() ?? null }),
    currency: t.exposeString('currency'),
  }),
});

const SponsorDayRef = builder
  .objectRef<{ day: string; calls: number; people: number; paid: bigint; currency: string }>('SponsorDay')
  .implement({
    fields: (t) => ({
      day: t.exposeString('day'),
      calls: t.exposeInt('calls'),
      people: t.exposeInt('people'),
      paid: t.string({ resolve: (d) => formatMicros(d.paid, d.currency) }),
    }),
  });

const SponsorReportRef = builder.objectRef<SponsorReport>('SponsorReport').implement({
  fields: (t) => ({
    sponsor: t.field({ type: SponsorRef, resolve: (r) => r.sponsor }),
    fund: t.field({ type: BooksRef, resolve: (r) => r.fund }),
    since: t.string({ resolve: (r) => r.since.toISOString() }),
    calls: t.exposeInt('calls', { description: 'calls the grant paid for since `since`' }),
    people: t.exposeInt('people', { description: 'different people it paid for' }),
    inputTokens: t.exposeInt('inputTokens'),
    outputTokens: t.exposeInt('outputTokens'),
    paidMicros: t.string({ description: 'millionths of a minor unit', resolve: (r) => r.paid.toString() }),
    paid: t.string({ resolve: (r) => formatMicros(r.paid, r.sponsor.currency) }),
    byDay: t.field({
      type: [SponsorDayRef],
      resolve: (r) => r.byDay.map((d) => ({ ...d, currency: r.sponsor.currency })),
    }),
  }),
});

builder.queryFields((t) => ({
  sponsors: t.field({
    type: [SponsorRef],
    description: 'The grants open now: who pays for free use, how much a day, for whom.',
    resolve: (_root, _args, context) => openGrants(context.db),
  }),
  sponsor: t.field({
    type: SponsorReportRef,
    description: 'A sponsor you manage: its fund and what its grant paid for (totals, not transcripts).',
    authScopes: { trainer: true },
    args: { name: t.arg.string({ required: true }), since: t.arg.string() },
    resolve: (_root, args, context) => {
      const { client, settings } = training(context);
      const since = args.since ? new Date(args.since) : undefined;
      return sponsorReport(
        { db: context.db, client, taskQueue: settings.taskQueue },
        context.caller.account!,
        args.name,
        since && !Number.isNaN(since.getTime()) ? since : undefined,
      ).catch(refused);
    },
  }),
}));

builder.mutationFields((t) => ({
  createSponsor: t.field({
    type: SponsorRef,
    description: 'Makes a sponsor you manage (its fund is sponsor/<name>); fund it, then set its grant.',
    authScopes: { trainer: true },
    args: { name: t.arg.string({ required: true }), title: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => {
      const { client, settings } = training(context);
      return createSponsor(
        { db: context.db, client, taskQueue: settings.taskQueue, currency: context.currency },
        context.caller.account!,
        args,
      ).catch(refused);
    },
  }),
  setSponsorGrant: t.field({
    type: SponsorRef,
    description:
      'Sets your sponsor\'s grant; what is not given stays: dailyAllowance per person ("0.50"; "0": none), eligibleDomain ("example.org"; "": everyone), expiresAt (a future time; "": never).',
    authScopes: { trainer: true },
    args: {
      name: t.arg.string({ required: true }),
      dailyAllowance: t.arg.string(),
      eligibleDomain: t.arg.string(),
      expiresAt: t.arg.string(),
    },
    resolve: (_root, args, context) =>
      setSponsorGrant(context.db, context.caller.account!, args.name, {
        dailyAllowance: args.dailyAllowance ?? null,
        eligibleDomain: args.eligibleDomain ?? null,
        expiresAt: args.expiresAt ?? null,
      }).catch(refused),
  }),
  fundSponsor: t.field({
    type: CheckoutRef,
    description: "A Stripe Checkout Session; once paid, its amount funds your sponsor's grant.",
    authScopes: { trainer: true },
    args: {
      name: t.arg.string({ required: true }),
      amount: t.arg.string({ required: true }),
      requestId: t.arg.string({ required: true, description: 'the same id gives the same session' }),
    },
    resolve: async (_root, args, context) => {
      const stripe = payments(context);
      const paid = amount(args.amount, context);
      const { client, settings } = training(context);
      // Only its managers fund it through here (anyone could pay, but a stranger's request is a mistake).
      const report = await sponsorReport(
        { db: context.db, client, taskQueue: settings.taskQueue },
        context.caller.account!,
        args.name,
      ).catch(refused);
      return createSponsorCheckout(stripe, context.caller.account!, {
        sponsor: report.sponsor.name,
        title: report.sponsor.title,
        amount: paid,
        currency: context.currency,
        requestId: args.requestId,
      }).catch(refused);
    },
  }),
}));
