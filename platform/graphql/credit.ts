// A trainer's training credit: what they paid in and what runs spent and hold, and funding it through Stripe.
import { creditStatus } from '../credit';
import { createCreditCheckout } from '../stripe';
import { BooksRef } from './budget';
import { amount, builder, CheckoutRef, payments, training } from './builder';
import { refused } from './refusals';

builder.queryFields((t) => ({
  myCredit: t.field({
    type: BooksRef,
    description: 'Your training credit: what you paid in, what runs spent and hold.',
    authScopes: { trainer: true },
    resolve: (_root, _args, context) => {
      const { client, settings } = training(context);
      return creditStatus(client, settings.taskQueue, context.caller.account!.handle, context.currency);
    },
  }),
}));

builder.mutationFields((t) => ({
  fundCredit: t.field({
    type: CheckoutRef,
    description: 'A Stripe Checkout Session; once paid, its amount is your training credit.',
    authScopes: { trainer: true },
    args: {
      amount: t.arg.string({ required: true }),
      requestId: t.arg.string({
        required: true,
        description: 'your id for this request: the same id gives the same session',
      }),
    },
    resolve: async (_root, args, context) => {
      const stripe = payments(context);
      const { client, settings } = training(context);
      const paid = amount(args.amount, context); // a refused amount starts no credit
      // The credit exists before the money arrives, so the webhook finds it.
      await creditStatus(client, settings.taskQueue, context.caller.account!.handle, context.currency);
      return createCreditCheckout(stripe, context.caller.account!, {
        amount: paid,
        currency: context.currency,
        requestId: args.requestId,
      }).catch(refused);
    },
  }),
}));
