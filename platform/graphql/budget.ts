// The germline's budget: its books (operators only), spending policy, deposits and Stripe funding.
import { germlineHandle } from '../../temporal/germline-client';
import { updateBudget } from '../../temporal/budget-client';
import type { BudgetStatus } from '../../workflows/budget-api';
import { depositUpdate, setPolicyUpdate, statusQuery } from '../../workflows/budget-api';
import { createFundingCheckout } from '../stripe';
import { amount, builder, CheckoutRef, payments, temporal } from './builder';
import { apiError, refused } from './refusals';

export const BooksRef = builder.objectRef<BudgetStatus>('Books').implement({
  description: 'Money in integer minor units of the currency, as strings.',
  fields: (t) => ({
    deposited: t.exposeString('deposited'),
    spent: t.exposeString('spent'),
    reserved: t.exposeString('reserved'),
    available: t.exposeString('available'),
    balance: t.exposeString('balance'),
  }),
});

const PolicyRef = builder
  .objectRef<{ dailySpendCap: string | null; perReservationCap: string | null }>('SpendingPolicy')
  .implement({
    fields: (t) => ({
      dailySpendCap: t.string({ nullable: true, resolve: (p) => p.dailySpendCap }),
      perReservationCap: t.string({ nullable: true, resolve: (p) => p.perReservationCap }),
    }),
  });

builder.mutationFields((t) => ({
  setPolicy: t.field({
    type: PolicyRef,
    description: 'Changes the spending caps; an amount like "500.00", or "none" to lift a cap; a cap left out stays.',
    authScopes: { operator: true },
    args: { dailySpendCap: t.arg.string(), perReservationCap: t.arg.string() },
    resolve: async (_root, args, context) => {
      const cap = (value: string | null | undefined, field: string): string | null | undefined =>
        value === undefined || value === null
          ? undefined
          : value === 'none'
            ? null
            : amount(value, context, field).toString();
      const change: Record<string, string | null> = {};
      for (const field of ['dailySpendCap', 'perReservationCap'] as const) {
        const value = cap(args[field], field);
        if (value !== undefined) change[field] = value;
      }
      if (Object.keys(change).length === 0)
        throw apiError('BAD_USER_INPUT', 'give dailySpendCap or perReservationCap (an amount, or "none")');
      return updateBudget(germlineHandle(temporal(context), context.germline), setPolicyUpdate, change).catch(refused);
    },
  }),
  deposit: t.field({
    type: BooksRef,
    authScopes: { operator: true },
    args: {
      amount: t.arg.string({ required: true, description: 'e.g. "12.50" in the germline currency' }),
      reference: t.arg.string({ required: true }),
    },
    resolve: async (_root, args, context) => {
      const deposited = amount(args.amount, context);
      const handle = germlineHandle(temporal(context), context.germline);
      await updateBudget(handle, depositUpdate, {
        amount: deposited.toString(),
        currency: context.currency,
        reference: args.reference,
      }).catch(refused);
      return handle.query(statusQuery);
    },
  }),
  fundGermline: t.field({
    type: CheckoutRef,
    description: 'A Stripe Checkout Session; once paid, its amount is deposited in the germline (by the webhook).',
    authScopes: { operator: true },
    args: {
      amount: t.arg.string({ required: true }),
      requestId: t.arg.string({
        required: true,
        description: 'your id for this request: the same id gives the same session',
      }),
    },
    resolve: async (_root, args, context) => {
      const stripe = payments(context);
      return createFundingCheckout(stripe, {
        germline: context.germline,
        amount: amount(args.amount, context),
        currency: context.currency,
        requestId: args.requestId,
      }).catch(refused);
    },
  }),
}));
