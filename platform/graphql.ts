// /api/graphql: one GraphQL endpoint (Mercurius, JIT-compiled) with a code-first schema (Pothos).
// Every field that needs more than the public declares its role through scope-auth, so the
// authorization of each mutation is written beside it and checked before its resolver runs.
// Limits: query depth, aliases and fields per operation, each refused with a message and a code.
import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { GraphQLError, Kind, type ValidationRule } from 'graphql';
import mercurius, { ErrorWithProps } from 'mercurius';
import type { Database } from '../activities/db/prisma';
import { CheckpointError, forkCheckpoint } from '../activities/store/checkpoint';
import { parseReference } from '../activities/store/names';
import { type CheckpointStore, StoreError } from '../activities/store/types';
import { germlineHandle, updateGermline } from '../worker/germline-client';
import { approveUpdate, type DecisionSummary, rejectUpdate } from '../workflows/autonomy-api';
import type { BudgetStatus } from '../workflows/budget';
import { childrenQuery } from '../workflows/child-api';
import { depositUpdate, pauseSignal, resumeSignal, statusQuery } from '../workflows/germline-api';
import { MoneyError, parseAmount } from '../workflows/money';
import { type AccountView, AccountError, type Caller, createApiToken } from './accounts';
import { type BreedView, listBreeds, MarketplaceError, publishBreed } from './marketplace';
import { createBreedCheckout, createFundingCheckout, createPayoutsOnboarding, StripeInputError, type StripeSettings } from './stripe';

export interface GraphQLContext {
  caller: Caller;
  db: Database;
  store: CheckpointStore;
  germline: string;
  currency: string;
  /** Absent where the platform runs without Temporal (then germline fields answer UNAVAILABLE). */
  client?: Client;
  /** Absent where Stripe is not configured (then payments answer UNAVAILABLE). */
  stripe?: StripeSettings;
}

/** An error a client can act on: its `extensions.code` says which kind. */
export function apiError(code: 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE', message: string): ErrorWithProps {
  return new ErrorWithProps(message, { code });
}

export const LIMITS = { depth: 8, aliases: 15, fields: 200 };

/** Refuses operations with more aliases than the limit (alias batching multiplies a query's cost). */
const aliasLimit: ValidationRule = (context) => {
  let aliases = 0;
  return {
    Field(node) {
      if (node.alias && ++aliases === LIMITS.aliases + 1) {
        context.reportError(new GraphQLError(`too many aliases: at most ${LIMITS.aliases} per operation`, { nodes: [node], extensions: { code: 'QUERY_TOO_COMPLEX' } }));
      }
    },
  };
};

/** Refuses operations selecting more fields than the limit: the cost bound of this API. */
const fieldLimit: ValidationRule = (context) => {
  let fields = 0;
  return {
    Field(node) {
      if (node.kind === Kind.FIELD && ++fields === LIMITS.fields + 1) {
        context.reportError(new GraphQLError(`too many fields: at most ${LIMITS.fields} per operation`, { nodes: [node], extensions: { code: 'QUERY_TOO_COMPLEX' } }));
      }
    },
  };
};

export function buildSchema() {
  const builder = new SchemaBuilder<{
    Context: GraphQLContext;
    AuthScopes: { trainer: boolean; operator: boolean };
  }>({
    plugins: [ScopeAuthPlugin],
    scopeAuth: {
      authScopes: (context) => ({ trainer: context.caller.role !== 'public', operator: context.caller.role === 'operator' }),
      unauthorizedError: (_parent, context) =>
        context.caller.role === 'public'
          ? apiError('UNAUTHENTICATED', 'sign in, or send an API token (Authorization: Bearer ctr_…)')
          : apiError('FORBIDDEN', `this needs the operator role; ${context.caller.account?.handle} is a ${context.caller.role}`),
    },
  });

  const payments = (context: GraphQLContext): StripeSettings => {
    if (!context.stripe) throw apiError('UNAVAILABLE', 'payments are not configured on this platform (STRIPE_SECRET_KEY)');
    return context.stripe;
  };

  const temporal = (context: GraphQLContext): Client => {
    if (!context.client) throw apiError('UNAVAILABLE', 'the germline is not reachable from this platform process');
    return context.client;
  };

  const AccountRef = builder.objectRef<AccountView>('Account').implement({
    fields: (t) => ({
      handle: t.exposeString('handle'),
      email: t.exposeString('email'),
      role: t.exposeString('role'),
    }),
  });

  const GermlineRef = builder.objectRef<{ name: string; status: BudgetStatus; children: number }>('Germline').implement({
    description: 'The germline as the public sees it; its books are for operators.',
    fields: (t) => ({
      name: t.exposeString('name'),
      state: t.string({ resolve: (g) => g.status.state }),
      paused: t.boolean({ resolve: (g) => g.status.paused }),
      currency: t.string({ resolve: (g) => g.status.currency }),
      activeChildren: t.exposeInt('children'),
      books: t.field({
        type: BooksRef,
        // Null for everyone but operators, with an error that says why; the public fields still answer.
        nullable: true,
        authScopes: { operator: true },
        resolve: (g) => g.status,
      }),
    }),
  });

  const BooksRef = builder.objectRef<BudgetStatus>('Books').implement({
    description: 'Money in integer minor units of the currency, as strings.',
    fields: (t) => ({
      deposited: t.exposeString('deposited'),
      spent: t.exposeString('spent'),
      reserved: t.exposeString('reserved'),
      available: t.exposeString('available'),
      balance: t.exposeString('balance'),
    }),
  });

  interface CheckpointShape {
    repository: string;
    tag: string;
    day: string | null;
    nickname: string | null;
    digest: string | null;
    size: bigint | null;
    status: string;
  }
  const CheckpointRef = builder.objectRef<CheckpointShape>('DailyCheckpoint').implement({
    fields: (t) => ({
      repository: t.exposeString('repository'),
      tag: t.exposeString('tag'),
      day: t.string({ nullable: true, resolve: (c) => c.day }),
      nickname: t.string({ nullable: true, resolve: (c) => c.nickname }),
      digest: t.string({ nullable: true, resolve: (c) => c.digest }),
      size: t.string({ nullable: true, description: 'bytes, as a string (checkpoints outgrow 2^53)', resolve: (c) => c.size?.toString() ?? null }),
      pull: t.string({ resolve: (c) => `computatrum pull ${c.repository}:${c.tag} <dir>` }),
      manifestUrl: t.string({ resolve: (c) => `/v2/${c.repository}/manifests/${c.tag}` }),
    }),
  });

  const DecisionRef = builder.objectRef<{ id: string; outcome: string; reason: string; policy?: string; proposal?: unknown }>('Decision').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      outcome: t.exposeString('outcome'),
      reason: t.exposeString('reason'),
      policy: t.string({ nullable: true, resolve: (d) => d.policy ?? null }),
      proposal: t.string({ nullable: true, description: 'the proposal as JSON', resolve: (d) => (d.proposal ? JSON.stringify(d.proposal) : null) }),
    }),
  });

  const TokenRef = builder.objectRef<{ id: string; name: string; token: string }>('NewApiToken').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      name: t.exposeString('name'),
      token: t.exposeString('token', { description: 'shown this once; only its hash is stored' }),
    }),
  });

  const CheckoutRef = builder.objectRef<{ id: string; url: string | null }>('CheckoutSession').implement({
    fields: (t) => ({ id: t.exposeString('id'), url: t.string({ nullable: true, description: "Stripe Checkout's page: send the browser there", resolve: (c) => c.url }) }),
  });

  const BreedRef = builder.objectRef<BreedView>('Breed').implement({
    fields: (t) => ({
      repository: t.exposeString('repository'),
      title: t.exposeString('title'),
      owner: t.exposeString('owner'),
      price: t.string({ nullable: true, description: 'minor units as a string; null: free', resolve: (b) => b.price?.toString() ?? null }),
      currency: t.exposeString('currency'),
    }),
  });

  const PurchaseRef = builder.objectRef<{ id: string; url: string | null; amount: bigint; fee: bigint }>('BreedCheckout').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      url: t.string({ nullable: true, resolve: (c) => c.url }),
      amount: t.string({ resolve: (c) => c.amount.toString() }),
      fee: t.string({ description: "the platform's share, which funds the germline", resolve: (c) => c.fee.toString() }),
    }),
  });

  const ForkRef = builder.objectRef<{ repository: string; branch: string; digest: string }>('Fork').implement({
    fields: (t) => ({ repository: t.exposeString('repository'), branch: t.exposeString('branch'), digest: t.exposeString('digest') }),
  });

  async function germline(context: GraphQLContext) {
    const handle = germlineHandle(temporal(context), context.germline);
    const [status, children] = await Promise.all([handle.query(statusQuery), handle.query(childrenQuery)]);
    return { name: context.germline, status, children: children.filter((c) => c.state === 'active').length };
  }

  builder.queryType({
    fields: (t) => ({
      germline: t.field({ type: GermlineRef, resolve: (_root, _args, context) => germline(context) }),
      dailyCheckpoints: t.field({
        type: [CheckpointRef],
        description: "The germline's daily gpc checkpoints, newest first.",
        args: { limit: t.arg.int({ defaultValue: 30 }) },
        resolve: async (_root, { limit }, context) => {
          if (!limit || limit < 1 || limit > 365) throw apiError('BAD_USER_INPUT', 'limit is 1 to 365');
          return context.db.checkpoint.findMany({ where: { repository: `germline/${context.germline}`, status: 'published' }, orderBy: { day: 'desc' }, take: limit });
        },
      }),
      breeds: t.field({ type: [BreedRef], description: 'The marketplace, newest first.', resolve: (_root, _args, context) => listBreeds(context.db) }),
      me: t.field({ type: AccountRef, nullable: true, resolve: (_root, _args, context) => context.caller.account ?? null }),
      decisions: t.field({
        type: [DecisionRef],
        authScopes: { operator: true },
        args: { awaiting: t.arg.boolean({ defaultValue: false }), limit: t.arg.int({ defaultValue: 30 }) },
        resolve: (_root, { awaiting, limit }, context) =>
          context.db.decision.findMany({
            where: { germline: context.germline, ...(awaiting ? { outcome: 'awaiting-approval' } : {}) },
            orderBy: { createdAt: 'desc' },
            take: Math.min(Math.max(limit ?? 30, 1), 200),
          }),
      }),
    }),
  });

  const decide = (update: typeof approveUpdate) => async (_root: unknown, args: { id: string; reason?: string | null }, context: GraphQLContext): Promise<DecisionSummary> =>
    updateGermline(germlineHandle(temporal(context), context.germline), update, { decisionId: args.id, by: context.caller.account!.handle, ...(args.reason ? { reason: args.reason } : {}) }).catch(refused);

  builder.mutationType({
    fields: (t) => ({
      createApiToken: t.field({
        type: TokenRef,
        authScopes: { trainer: true },
        args: { name: t.arg.string({ required: true }) },
        resolve: (_root, { name }, context) => createApiToken(context.db, context.caller.account!.id, name).catch(refused),
      }),
      fork: t.field({
        type: ForkRef,
        description: 'Forks a checkpoint (no bytes copied) to a branch under trainers/<your handle>/ (operators: anywhere).',
        authScopes: { trainer: true },
        args: { from: t.arg.string({ required: true }), to: t.arg.string({ required: true }) },
        resolve: async (_root, args, context) => {
          const to = parseReference(args.to);
          const own = `trainers/${context.caller.account!.handle}/`;
          if (context.caller.role !== 'operator' && !to.repo.startsWith(own)) throw apiError('FORBIDDEN', `you can publish only under ${own}, not ${to.repo}`);
          const digest = await forkCheckpoint(context.store, parseReference(args.from), { repo: to.repo, branch: to.reference || 'main' }).catch(refused);
          return { repository: to.repo, branch: to.reference || 'main', digest };
        },
      }),
      publishBreed: t.field({
        type: BreedRef,
        description: 'Lists one of your repositories on the marketplace; a price (e.g. "9.99") makes it paid, none makes it free.',
        authScopes: { trainer: true },
        args: { repository: t.arg.string({ required: true }), title: t.arg.string({ required: true }), price: t.arg.string() },
        resolve: (_root, args, context) =>
          publishBreed(context.db, context.store, context.caller.account!, { repository: args.repository, title: args.title, price: args.price ?? null, currency: context.currency }).catch(refused),
      }),
      onboardPayouts: t.field({
        type: 'String',
        description: "A link to Stripe's onboarding for your payouts (a connected account is made once).",
        authScopes: { trainer: true },
        args: { requestId: t.arg.string({ required: true }) },
        resolve: async (_root, args, context) => (await createPayoutsOnboarding(payments(context), context.db, context.caller.account!, args.requestId)).url,
      }),
      buyBreed: t.field({
        type: PurchaseRef,
        description: 'A Stripe Checkout Session for a paid breed; once paid, you may download it.',
        authScopes: { trainer: true },
        args: { repository: t.arg.string({ required: true }), requestId: t.arg.string({ required: true }) },
        resolve: (_root, args, context) =>
          createBreedCheckout(payments(context), context.db, context.caller.account!, args).catch((error: unknown) => {
            throw error instanceof StripeInputError ? apiError('BAD_USER_INPUT', error.message) : error;
          }),
      }),
      deposit: t.field({
        type: BooksRef,
        authScopes: { operator: true },
        args: { amount: t.arg.string({ required: true, description: 'e.g. "12.50" in the germline currency' }), reference: t.arg.string({ required: true }) },
        resolve: async (_root, args, context) => {
          let amount: bigint;
          try {
            amount = parseAmount(args.amount, context.currency);
          } catch (error) {
            throw apiError('BAD_USER_INPUT', (error as MoneyError).message);
          }
          const handle = germlineHandle(temporal(context), context.germline);
          await updateGermline(handle, depositUpdate, { amount: amount.toString(), currency: context.currency, reference: args.reference }).catch(refused);
          return handle.query(statusQuery);
        },
      }),
      fundGermline: t.field({
        type: CheckoutRef,
        description: 'A Stripe Checkout Session; once paid, its amount is deposited in the germline (by the webhook).',
        authScopes: { operator: true },
        args: { amount: t.arg.string({ required: true }), requestId: t.arg.string({ required: true, description: 'your id for this request: the same id gives the same session' }) },
        resolve: async (_root, args, context) => {
          const stripe = payments(context);
          let amount: bigint;
          try {
            amount = parseAmount(args.amount, context.currency);
          } catch (error) {
            throw apiError('BAD_USER_INPUT', (error as MoneyError).message);
          }
          return createFundingCheckout(stripe, { germline: context.germline, amount, currency: context.currency, requestId: args.requestId }).catch((error: unknown) => {
            throw error instanceof StripeInputError ? apiError('BAD_USER_INPUT', error.message) : error;
          });
        },
      }),
      pauseGermline: t.field({
        type: GermlineRef,
        authScopes: { operator: true },
        args: { reason: t.arg.string() },
        resolve: async (_root, { reason }, context) => {
          await germlineHandle(temporal(context), context.germline).signal(pauseSignal, reason ?? undefined);
          return germline(context);
        },
      }),
      resumeGermline: t.field({
        type: GermlineRef,
        authScopes: { operator: true },
        resolve: async (_root, _args, context) => {
          await germlineHandle(temporal(context), context.germline).signal(resumeSignal);
          return germline(context);
        },
      }),
      approveDecision: t.field({ type: DecisionRef, authScopes: { operator: true }, args: { id: t.arg.string({ required: true }), reason: t.arg.string() }, resolve: decide(approveUpdate) }),
      rejectDecision: t.field({ type: DecisionRef, authScopes: { operator: true }, args: { id: t.arg.string({ required: true }), reason: t.arg.string() }, resolve: decide(rejectUpdate) }),
    }),
  });

  return builder.toSchema();
}

/** What a refusal from below (the budget, the store, the accounts) means to an API client. */
function refused(error: unknown): never {
  if (error instanceof MarketplaceError) throw apiError(error.code, error.message);
  if (error instanceof AccountError) throw apiError(error.code === 'INVALID_INPUT' ? 'BAD_USER_INPUT' : 'CONFLICT', error.message);
  if (error instanceof StoreError) throw apiError(error.code === 'MANIFEST_UNKNOWN' || error.code === 'BLOB_UNKNOWN' ? 'NOT_FOUND' : 'BAD_USER_INPUT', error.message);
  if (error instanceof CheckpointError) throw apiError('BAD_USER_INPUT', error.message);
  const cause = (error as { cause?: { message?: string; type?: string } }).cause;
  if (error instanceof Error && error.name === 'WorkflowUpdateFailedError' && cause?.message) throw apiError(cause.type === 'NotAwaitingApproval' ? 'NOT_FOUND' : 'BAD_USER_INPUT', cause.message);
  throw error;
}

export async function registerGraphQL(app: FastifyInstance, context: Omit<GraphQLContext, 'caller'>): Promise<void> {
  // A browser's session may only change things through JSON, never a form post from another site.
  app.addHook('preHandler', async (request, reply) => {
    if (request.url.startsWith('/api/graphql') && request.method === 'POST' && request.viaCookie) {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (type !== 'application/json') return reply.code(415).send({ errors: [{ message: 'send GraphQL as application/json', extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }] });
    }
  });
  await app.register(mercurius, {
    schema: buildSchema(),
    path: '/api/graphql',
    graphiql: false,
    jit: 1,
    queryDepth: LIMITS.depth,
    validationRules: [aliasLimit, fieldLimit],
    context: (request) => ({ ...context, caller: request.caller }),
  });
}
