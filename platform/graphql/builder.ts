// The schema's one Pothos builder, its context and the helpers every domain module shares. Each
// field that needs more than the public declares its role through scope-auth, so the authorization
// of each mutation is written beside it and checked before its resolver runs. The builder is a
// module-level singleton: the domain modules add their types and fields to it when imported, and
// every dependency reaches a resolver through the context, never a closure.
import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { Client } from '@temporalio/client';
import type { Database } from '../../db/prisma';
import type { CheckpointStore } from '../../store/types';
import { MoneyError, parseAmount } from '../../workflows/money';
import type { Caller } from '../accounts';
import type { TrainingSettings } from '../credit';
import type { StripeSettings } from '../stripe';
import type { Loaders } from './loaders';
import { apiError } from './refusals';

/** What the API and the pages work with; the optional parts answer UNAVAILABLE (or say so) where absent. */
export interface PlatformParts {
  db: Database;
  store: CheckpointStore;
  germline: string;
  currency: string;
  /** Absent where the platform runs without Temporal (then germline fields answer UNAVAILABLE). */
  client?: Client;
  /** Absent where Stripe is not configured (then payments answer UNAVAILABLE). */
  stripe?: StripeSettings;
  /** Absent where trainers cannot train through the platform (then training answers UNAVAILABLE). */
  training?: TrainingSettings;
}

export interface GraphQLContext extends PlatformParts {
  caller: Caller;
  /** This request's batching of per-item fields (loaders.ts). */
  loaders: Loaders;
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: { trainer: boolean; operator: boolean };
}>({
  plugins: [ScopeAuthPlugin],
  scopeAuth: {
    authScopes: (context) => ({
      trainer: context.caller.role !== 'public',
      operator: context.caller.role === 'operator',
    }),
    unauthorizedError: (_parent, context) =>
      context.caller.role === 'public'
        ? apiError('UNAUTHENTICATED', 'sign in, or send an API token (Authorization: Bearer ctr_…)')
        : apiError(
            'FORBIDDEN',
            `this needs the operator role; ${context.caller.account?.handle} is a ${context.caller.role}`,
          ),
  },
});

// The root types; each domain module adds its own fields (builder.queryFields, builder.mutationFields).
builder.queryType({});
builder.mutationType({});

export const payments = (context: GraphQLContext): StripeSettings => {
  if (!context.stripe)
    throw apiError('UNAVAILABLE', 'payments are not configured on this platform (STRIPE_SECRET_KEY)');
  return context.stripe;
};

export const temporal = (context: GraphQLContext): Client => {
  if (!context.client) throw apiError('UNAVAILABLE', 'the germline is not reachable from this platform process');
  return context.client;
};

export const training = (context: GraphQLContext): { client: Client; settings: TrainingSettings } => {
  if (!context.training)
    throw apiError('UNAVAILABLE', 'training through the platform is not configured on this platform process');
  return { client: temporal(context), settings: context.training };
};

/** An amount the caller typed ("12.50"), in minor units of the platform's currency; refused as BAD_USER_INPUT. */
export const amount = (text: string, context: GraphQLContext, field = 'amount'): bigint => {
  try {
    return parseAmount(text, context.currency);
  } catch (error) {
    throw apiError('BAD_USER_INPUT', `${field}: ${(error as MoneyError).message}`);
  }
};

/** A Stripe Checkout Session: funding the germline, or a trainer's credit. */
export const CheckoutRef = builder.objectRef<{ id: string; url: string | null }>('CheckoutSession').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    url: t.string({
      nullable: true,
      description: "Stripe Checkout's page: send the browser there",
      resolve: (c) => c.url,
    }),
  }),
});
