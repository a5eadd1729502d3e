// The marketplace: breeds listed free or for a price, buying one through Stripe, and a seller's payouts.
import { type BreedView, listBreeds, publishBreed } from '../marketplace';
import { createBreedCheckout, createPayoutsOnboarding } from '../stripe';
import { builder, payments } from './builder';
import { listSize } from './limits';
import { refused } from './refusals';
import { probeNewVersions } from '../probes';
import { formatUsePrice } from '../../workflows/money';

export const BreedRef = builder.objectRef<BreedView>('Breed').implement({
  fields: (t) => ({
    repository: t.exposeString('repository'),
    title: t.exposeString('title'),
    owner: t.exposeString('owner'),
    price: t.string({
      nullable: true,
      description: 'minor units as a string; null: free',
      resolve: (b) => b.price?.toString() ?? null,
    }),
    currency: t.exposeString('currency'),
    inputPricePer1k: t.string({
      nullable: true,
      description: 'per 1,000 tokens of prompt on an instance, e.g. "0.002"; null: none',
      resolve: (b) => (b.inputPricePerMillion ? usePrice(b.inputPricePerMillion, b.currency) : null),
    }),
    outputPricePer1k: t.string({
      nullable: true,
      description: 'per 1,000 tokens of answer on an instance; null: none',
      resolve: (b) => (b.outputPricePerMillion ? usePrice(b.outputPricePerMillion, b.currency) : null),
    }),
    licenceIncludesUse: t.exposeBoolean('licenceIncludesUse', {
      description: 'whether buyers of the download use it on instances without per-use charges',
    }),
  }),
});

/** "0.002": a price per 1,000 tokens without its currency (the breed's `currency` says it). */
const usePrice = (perMillion: bigint, currency: string) => formatUsePrice(perMillion, currency).split(' ')[0]!;

const PurchaseRef = builder
  .objectRef<{ id: string; url: string | null; amount: bigint; fee: bigint }>('BreedCheckout')
  .implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      url: t.string({ nullable: true, resolve: (c) => c.url }),
      amount: t.string({ resolve: (c) => c.amount.toString() }),
      fee: t.string({
        description: "the platform's share, which funds the germline",
        resolve: (c) => c.fee.toString(),
      }),
    }),
  });

builder.queryFields((t) => ({
  breeds: t.field({
    type: [BreedRef],
    description: 'The marketplace, newest first.',
    ...listSize(50),
    resolve: (_root, _args, context) => listBreeds(context.db),
  }),
}));

builder.mutationFields((t) => ({
  publishBreed: t.field({
    type: BreedRef,
    description:
      'Lists one of your repositories on the marketplace; a price (e.g. "9.99") makes it paid, none makes it free.',
    authScopes: { trainer: true },
    args: {
      repository: t.arg.string({ required: true }),
      title: t.arg.string({ required: true }),
      price: t.arg.string(),
    },
    resolve: (_root, args, context) =>
      publishBreed(
        context.db,
        context.store,
        context.caller.account!,
        { repository: args.repository, title: args.title, price: args.price ?? null, currency: context.currency },
        // Each checkpoint of a new breed is probed (where this process reaches the worker; else the daily sweep).
        context.client && context.training
          ? (repository) =>
              probeNewVersions(
                {
                  client: context.client!,
                  db: context.db,
                  store: context.store,
                  germline: context.germline,
                  taskQueue: context.training!.taskQueue,
                },
                repository,
                'publish',
                context.caller.account!.handle,
              )
          : undefined,
      ).catch(refused),
  }),
  onboardPayouts: t.field({
    type: 'String',
    description: "A link to Stripe's onboarding for your payouts (a connected account is made once).",
    authScopes: { trainer: true },
    args: { requestId: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) =>
      (await createPayoutsOnboarding(payments(context), context.db, context.caller.account!, args.requestId)).url,
  }),
  buyBreed: t.field({
    type: PurchaseRef,
    description: 'A Stripe Checkout Session for a paid breed; once paid, you may download it.',
    authScopes: { trainer: true },
    args: { repository: t.arg.string({ required: true }), requestId: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      createBreedCheckout(payments(context), context.db, context.caller.account!, args).catch(refused),
  }),
}));
