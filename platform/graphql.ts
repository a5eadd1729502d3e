// /api/graphql: one GraphQL endpoint (Mercurius, JIT-compiled) with a code-first schema (Pothos).
// Every field that needs more than the public declares its role through scope-auth, so the
// authorization of each mutation is written beside it and checked before its resolver runs.
// Limits: query depth, aliases and fields per operation, each refused with a message and a code.
import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { type ASTNode, type FragmentDefinitionNode, GraphQLError, Kind, type SelectionSetNode, type ValidationRule } from 'graphql';
import mercurius, { ErrorWithProps } from 'mercurius';
import type { Database } from '../db/prisma';
import { CheckpointError } from '../store/checkpoint';
import { type CheckpointStore, FILEPATH_ANNOTATION, type ImageManifest, StoreError } from '../store/types';
import { germlineHandle } from '../temporal/germline-client';
import { approveUpdate, type DecisionSummary, rejectUpdate } from '../workflows/autonomy-api';
import { type ChildRecord, childrenQuery } from '../workflows/child-api';
import { promoteUpdate } from '../workflows/germline-api';
import { MoneyError, parseAmount } from '../workflows/money';
import { type AccountView, AccountError, type Caller, createApiToken } from './accounts';
import { addComment, attachRecording, type CommentView, forkImage, type ImageView, listImages, listRecordings, listReports, listThreads, type RecordingView, reportImage, type ReportView, startThread, type ThreadView } from './hub';
import { PlatformError } from './errors';
import { type BreedView, listBreeds, publishBreed } from './marketplace';
import { creditStatus, startTrainerRun, type TrainingSettings } from './credit';
import { createBreedCheckout, createCreditCheckout, createFundingCheckout, createPayoutsOnboarding, StripeInputError, type StripeSettings } from './stripe';
import type { BudgetStatus } from '../workflows/budget-api';
import { depositUpdate, pauseSignal, resumeSignal, setPolicyUpdate, statusQuery } from '../workflows/budget-api';
import { updateBudget } from '../temporal/budget-client';

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
}

/** An error a client can act on: its `extensions.code` says which kind. */
export function apiError(code: 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE', message: string): ErrorWithProps {
  return new ErrorWithProps(message, { code });
}

export const LIMITS = { depth: 8, aliases: 15, fields: 200 };

/** One kind of refusal for every limit, so a client can tell "ask for less" from any other error. */
function tooComplex(problem: string, node: ASTNode): GraphQLError {
  return new GraphQLError(`${problem}; ask for less, or split it into several operations`, { nodes: [node], extensions: { code: 'QUERY_TOO_COMPLEX' } });
}

/** Refuses operations nesting fields deeper than the limit (each level can multiply a query's cost). */
const depthLimit: ValidationRule = (context) => {
  // Each fragment's depth once: a fragment spread many times must not be walked many times.
  const fragmentDepths = new Map<string, number>();
  const fragmentDepth = (fragment: FragmentDefinitionNode): number => {
    const name = fragment.name.value;
    if (!fragmentDepths.has(name)) {
      fragmentDepths.set(name, 0); // a cycle counts nothing here; NoFragmentCyclesRule refuses it
      fragmentDepths.set(name, depthOf(fragment.selectionSet));
    }
    return fragmentDepths.get(name)!;
  };
  /** Levels of fields below `set` (fragments add none of their own), cut off just above the limit. */
  const depthOf = (set: SelectionSetNode | undefined, level = 0): number => {
    if (!set || level > LIMITS.depth) return 0;
    let deepest = 0;
    for (const selection of set.selections) {
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? context.getFragment(selection.name.value) : undefined;
      const depth =
        selection.kind === Kind.FIELD ? 1 + depthOf(selection.selectionSet, level + 1)
        : selection.kind === Kind.INLINE_FRAGMENT ? depthOf(selection.selectionSet, level)
        : fragment ? fragmentDepth(fragment) : 0;
      deepest = Math.max(deepest, depth);
    }
    return deepest;
  };
  return {
    OperationDefinition(operation) {
      const depth = depthOf(operation.selectionSet);
      if (depth > LIMITS.depth) context.reportError(tooComplex(`too deep: at most ${LIMITS.depth} levels of fields per operation`, operation));
    },
  };
};

/** Refuses operations with more aliases than the limit (alias batching multiplies a query's cost). */
const aliasLimit: ValidationRule = (context) => {
  let aliases = 0;
  return {
    Field(node) {
      if (node.alias && ++aliases === LIMITS.aliases + 1) context.reportError(tooComplex(`too many aliases: at most ${LIMITS.aliases} per operation`, node));
    },
  };
};

/** Refuses operations selecting more fields than the limit: the cost bound of this API. */
const fieldLimit: ValidationRule = (context) => {
  let fields = 0;
  return {
    Field(node) {
      if (node.kind === Kind.FIELD && ++fields === LIMITS.fields + 1) context.reportError(tooComplex(`too many fields: at most ${LIMITS.fields} per operation`, node));
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

  const training = (context: GraphQLContext): { client: Client; settings: TrainingSettings } => {
    if (!context.training) throw apiError('UNAVAILABLE', 'training through the platform is not configured on this platform process');
    return { client: temporal(context), settings: context.training };
  };

  const amount = (text: string, context: GraphQLContext, field = 'amount'): bigint => {
    try {
      return parseAmount(text, context.currency);
    } catch (error) {
      throw apiError('BAD_USER_INPUT', `${field}: ${(error as MoneyError).message}`);
    }
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
    parentDigest: string | null;
  }
  const FileRef = builder.objectRef<{ path: string; size: number; digest: string; downloadUrl: string }>('CheckpointFile').implement({
    fields: (t) => ({
      path: t.exposeString('path'),
      size: t.string({ description: 'bytes, as a string', resolve: (f) => String(f.size) }),
      digest: t.exposeString('digest'),
      downloadUrl: t.exposeString('downloadUrl', { description: 'relative to the platform; answers Range requests' }),
    }),
  });
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
      parentDigest: t.string({ nullable: true, description: 'the checkpoint it was trained or forked from (lineage)', resolve: (c) => c.parentDigest }),
      files: t.field({
        type: [FileRef],
        resolve: async (c, _args, context) => {
          const manifest = await context.store.getManifest(c.repository, c.tag);
          if (!manifest) return [];
          return (JSON.parse(manifest.bytes.toString('utf8')) as ImageManifest).layers.map((layer) => {
            const filepath = layer.annotations?.[FILEPATH_ANNOTATION] ?? layer.digest;
            return { path: filepath, size: layer.size, digest: layer.digest, downloadUrl: `/hub/${c.repository}/resolve/${c.tag}/${filepath.split('/').map(encodeURIComponent).join('/')}` };
          });
        },
      }),
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

  const CommentRef = builder.objectRef<CommentView>('Comment').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      author: t.exposeString('author'),
      body: t.exposeString('body'),
      createdAt: t.string({ resolve: (c) => c.createdAt.toISOString() }),
    }),
  });

  const ThreadRef = builder.objectRef<ThreadView>('Thread').implement({
    description: 'A discussion of an image; its first comment is the opening text.',
    fields: (t) => ({
      id: t.exposeString('id'),
      repository: t.exposeString('repository'),
      reference: t.string({ nullable: true, description: 'the tag or digest it is about; null: the image as a whole', resolve: (th) => th.reference }),
      title: t.exposeString('title'),
      author: t.exposeString('author'),
      createdAt: t.string({ resolve: (th) => th.createdAt.toISOString() }),
      comments: t.field({ type: [CommentRef], resolve: (th) => th.comments }),
    }),
  });

  const RecordingRef = builder.objectRef<RecordingView>('Recording').implement({
    description: "A recording of a session with the model, stored as a referrer of the image's manifest.",
    fields: (t) => ({
      id: t.exposeString('id'),
      repository: t.exposeString('repository'),
      subjectDigest: t.exposeString('subjectDigest'),
      reference: t.string({ nullable: true, resolve: (r) => r.reference }),
      title: t.exposeString('title'),
      filename: t.exposeString('filename'),
      mediaType: t.exposeString('mediaType'),
      size: t.exposeInt('size'),
      author: t.exposeString('author'),
      createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
      downloadUrl: t.exposeString('downloadUrl'),
    }),
  });

  const ReportRef = builder.objectRef<ReportView>('Report').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      repository: t.exposeString('repository'),
      reference: t.string({ nullable: true, resolve: (r) => r.reference }),
      reason: t.exposeString('reason'),
      reporter: t.exposeString('reporter'),
      createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
    }),
  });

  const ImageRef = builder.objectRef<ImageView>('Image').implement({
    description: 'An image on the hub: a repository of checkpoints (the germline, a child, a trainer\'s breed).',
    fields: (t) => ({
      repository: t.exposeString('repository'),
      kind: t.exposeString('kind', { description: 'germline | child | trainer' }),
      tags: t.exposeInt('tags'),
      latestTag: t.string({ nullable: true, resolve: (i) => i.latestTag }),
      latestNickname: t.string({ nullable: true, resolve: (i) => i.latestNickname }),
      breedTitle: t.string({ nullable: true, resolve: (i) => i.breed?.title ?? null }),
      price: t.string({ nullable: true, description: 'minor units as a string; null: free', resolve: (i) => i.breed?.price?.toString() ?? null }),
      reports: t.exposeInt('reports'),
      threads: t.field({ type: [ThreadRef], resolve: (i, _args, context) => listThreads(context.db, i.repository) }),
      recordings: t.field({ type: [RecordingRef], resolve: (i, _args, context) => listRecordings(context.db, i.repository) }),
    }),
  });

  const ChildRef = builder.objectRef<ChildRecord>('Child').implement({
    description: "A child computatrum funded by the germline; its money is for operators.",
    fields: (t) => ({
      name: t.exposeString('name'),
      purpose: t.exposeString('purpose'),
      state: t.exposeString('state'),
      repository: t.string({ resolve: (c) => `children/${c.name}` }),
      allowance: t.string({ nullable: true, authScopes: { operator: true }, resolve: (c) => c.allowance }),
      spent: t.string({ nullable: true, authScopes: { operator: true }, resolve: (c) => c.spent ?? null }),
    }),
  });

  interface RunShape {
    id: string;
    payer: string;
    state: string;
    outputRepository: string;
    outputBranch: string;
    gpus: number;
    gpuSeconds: number;
    step: number | null;
    loss: number | null;
    cost: bigint | null;
    maxCost: bigint;
    outputDigest: string | null;
    createdAt: Date;
  }
  const RunRef = builder.objectRef<RunShape>('TrainingRun').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      state: t.exposeString('state'),
      outputRepository: t.exposeString('outputRepository'),
      outputBranch: t.exposeString('outputBranch'),
      gpus: t.exposeInt('gpus'),
      gpuSeconds: t.exposeInt('gpuSeconds'),
      step: t.int({ nullable: true, resolve: (r) => r.step }),
      loss: t.float({ nullable: true, resolve: (r) => r.loss }),
      outputDigest: t.string({ nullable: true, resolve: (r) => r.outputDigest }),
      createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
      payer: t.string({ nullable: true, authScopes: { operator: true }, resolve: (r) => r.payer }),
      cost: t.string({ nullable: true, authScopes: { operator: true }, description: 'minor units charged, once settled', resolve: (r) => r.cost?.toString() ?? null }),
      maxCost: t.string({ nullable: true, authScopes: { operator: true }, resolve: (r) => r.maxCost.toString() }),
    }),
  });

  const StartedRunRef = builder.objectRef<{ id: string; workflowId: string; maxCost: string }>('StartedTrainingRun').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      workflowId: t.exposeString('workflowId', { description: 'follow it in the Temporal UI' }),
      maxCost: t.exposeString('maxCost', { description: 'minor units reserved from your credit' }),
    }),
  });

  const PolicyRef = builder.objectRef<{ dailySpendCap: string | null; perReservationCap: string | null }>('SpendingPolicy').implement({
    fields: (t) => ({
      dailySpendCap: t.string({ nullable: true, resolve: (p) => p.dailySpendCap }),
      perReservationCap: t.string({ nullable: true, resolve: (p) => p.perReservationCap }),
    }),
  });

  const PromotionRef = builder.objectRef<{ digest: string; gate: string; metrics: Record<string, number> }>('Promotion').implement({
    fields: (t) => ({
      digest: t.exposeString('digest'),
      gate: t.exposeString('gate'),
      metrics: t.string({ description: 'the metrics judged, as JSON', resolve: (p) => JSON.stringify(p.metrics) }),
    }),
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
      images: t.field({
        type: [ImageRef],
        description: "The hub's images, the germline's first; `search` matches names, breed titles and nicknames.",
        args: { search: t.arg.string() },
        resolve: (_root, { search }, context) => listImages(context.db, context.store, { germline: context.germline, ...(search ? { search } : {}) }),
      }),
      threads: t.field({ type: [ThreadRef], args: { repository: t.arg.string({ required: true }) }, resolve: (_root, { repository }, context) => listThreads(context.db, repository) }),
      recordings: t.field({ type: [RecordingRef], args: { repository: t.arg.string({ required: true }) }, resolve: (_root, { repository }, context) => listRecordings(context.db, repository) }),
      reports: t.field({
        type: [ReportRef],
        description: 'Images flagged by the community, newest first.',
        authScopes: { operator: true },
        args: { repository: t.arg.string(), limit: t.arg.int({ defaultValue: 50 }) },
        resolve: (_root, { repository, limit }, context) => listReports(context.db, { ...(repository ? { repository } : {}), limit: limit ?? 50 }),
      }),
      children: t.field({
        type: [ChildRef],
        description: "The germline's children, every state.",
        resolve: async (_root, _args, context) => germlineHandle(temporal(context), context.germline).query(childrenQuery),
      }),
      trainingRuns: t.field({
        type: [RunRef],
        description: 'Training runs, newest first; `repository` keeps those publishing there.',
        args: { repository: t.arg.string(), limit: t.arg.int({ defaultValue: 30 }) },
        resolve: (_root, { repository, limit }, context) =>
          context.db.trainingRun.findMany({ where: repository ? { outputRepository: repository } : {}, orderBy: { createdAt: 'desc' }, take: Math.min(Math.max(limit ?? 30, 1), 200) }),
      }),
      me: t.field({ type: AccountRef, nullable: true, resolve: (_root, _args, context) => context.caller.account ?? null }),
      myCredit: t.field({
        type: BooksRef,
        description: 'Your training credit: what you paid in, what runs spent and hold.',
        authScopes: { trainer: true },
        resolve: (_root, _args, context) => {
          const { client, settings } = training(context);
          return creditStatus(client, settings.taskQueue, context.caller.account!.handle, context.currency);
        },
      }),
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
    updateBudget(germlineHandle(temporal(context), context.germline), update, { decisionId: args.id, by: context.caller.account!.handle, ...(args.reason ? { reason: args.reason } : {}) }).catch(refused);

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
        resolve: (_root, args, context) => forkImage(context.db, context.store, context.caller.account!, args.from, args.to).catch(refused),
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
      startThread: t.field({
        type: ThreadRef,
        description: 'Opens a discussion of an image (or one checkpoint of it); the body is its first comment.',
        authScopes: { trainer: true },
        args: { repository: t.arg.string({ required: true }), reference: t.arg.string(), title: t.arg.string({ required: true }), body: t.arg.string({ required: true }) },
        resolve: (_root, args, context) => startThread(context.db, context.store, context.caller.account!, args).catch(refused),
      }),
      comment: t.field({
        type: CommentRef,
        authScopes: { trainer: true },
        args: { threadId: t.arg.string({ required: true }), body: t.arg.string({ required: true }) },
        resolve: (_root, args, context) => addComment(context.db, context.caller.account!, args).catch(refused),
      }),
      attachRecording: t.field({
        type: RecordingRef,
        description: 'Attaches a text transcript of a session with the model (files: POST /api/recordings/<repo>).',
        authScopes: { trainer: true },
        args: {
          repository: t.arg.string({ required: true }),
          reference: t.arg.string({ required: true, description: 'the tag or digest recorded' }),
          title: t.arg.string({ required: true }),
          transcript: t.arg.string({ required: true }),
          filename: t.arg.string({ defaultValue: 'transcript.txt' }),
        },
        resolve: (_root, args, context) =>
          attachRecording(context.db, context.store, context.caller.account!, {
            repository: args.repository,
            reference: args.reference,
            title: args.title,
            filename: args.filename ?? 'transcript.txt',
            content: Buffer.from(args.transcript, 'utf8'),
          }).catch(refused),
      }),
      reportImage: t.field({
        type: ReportRef,
        description: 'Flags an image (or one checkpoint of it) for the operators, with the reason.',
        authScopes: { trainer: true },
        args: { repository: t.arg.string({ required: true }), reference: t.arg.string(), reason: t.arg.string({ required: true }) },
        resolve: (_root, args, context) => reportImage(context.db, context.store, context.caller.account!, args).catch(refused),
      }),
      fundCredit: t.field({
        type: CheckoutRef,
        description: 'A Stripe Checkout Session; once paid, its amount is your training credit.',
        authScopes: { trainer: true },
        args: { amount: t.arg.string({ required: true }), requestId: t.arg.string({ required: true, description: 'your id for this request: the same id gives the same session' }) },
        resolve: async (_root, args, context) => {
          const stripe = payments(context);
          const { client, settings } = training(context);
          const paid = amount(args.amount, context); // a refused amount starts no credit
          // The credit exists before the money arrives, so the webhook finds it.
          await creditStatus(client, settings.taskQueue, context.caller.account!.handle, context.currency);
          return createCreditCheckout(stripe, context.caller.account!, { amount: paid, currency: context.currency, requestId: args.requestId }).catch((error: unknown) => {
            throw error instanceof StripeInputError ? apiError('BAD_USER_INPUT', error.message) : error;
          });
        },
      }),
      startTrainingRun: t.field({
        type: StartedRunRef,
        description: "Trains the platform's trainer from `base` into trainers/<you>/…:<branch>, paid from your credit (at most maxCost).",
        authScopes: { trainer: true },
        args: {
          base: t.arg.string({ description: 'the checkpoint to start from, e.g. germline/computatrum:gpc-2026-11-30' }),
          repository: t.arg.string({ required: true, description: 'trainers/<you>/<name>' }),
          branch: t.arg.string({ defaultValue: 'main' }),
          maxCost: t.arg.string({ required: true }),
          gpus: t.arg.int({ defaultValue: 1 }),
        },
        resolve: async (_root, args, context) => {
          const { client, settings } = training(context);
          const started = await startTrainerRun({ client, db: context.db, store: context.store, currency: context.currency, settings }, context.caller.account!, {
            base: args.base ?? null,
            repository: args.repository,
            branch: args.branch ?? 'main',
            maxCost: amount(args.maxCost, context, 'maxCost'),
            gpus: args.gpus ?? 1,
          }).catch(refused);
          return { id: started.id, workflowId: started.workflowId, maxCost: started.request.maxCost };
        },
      }),
      setPolicy: t.field({
        type: PolicyRef,
        description: 'Changes the spending caps; an amount like "500.00", or "none" to lift a cap; a cap left out stays.',
        authScopes: { operator: true },
        args: { dailySpendCap: t.arg.string(), perReservationCap: t.arg.string() },
        resolve: async (_root, args, context) => {
          const cap = (value: string | null | undefined, field: string): string | null | undefined =>
            value === undefined || value === null ? undefined : value === 'none' ? null : amount(value, context, field).toString();
          const change: Record<string, string | null> = {};
          for (const field of ['dailySpendCap', 'perReservationCap'] as const) {
            const value = cap(args[field], field);
            if (value !== undefined) change[field] = value;
          }
          if (Object.keys(change).length === 0) throw apiError('BAD_USER_INPUT', 'give dailySpendCap or perReservationCap (an amount, or "none")');
          return updateBudget(germlineHandle(temporal(context), context.germline), setPolicyUpdate, change).catch(refused);
        },
      }),
      promote: t.field({
        type: PromotionRef,
        description: "Moves the germline's main to a checkpoint whose training metrics pass the eval gate.",
        authScopes: { operator: true },
        args: { repository: t.arg.string({ required: true }), reference: t.arg.string({ required: true }) },
        resolve: (_root, args, context) => updateBudget(germlineHandle(temporal(context), context.germline), promoteUpdate, { repo: args.repository, reference: args.reference }).catch(refused),
      }),
      deposit: t.field({
        type: BooksRef,
        authScopes: { operator: true },
        args: { amount: t.arg.string({ required: true, description: 'e.g. "12.50" in the germline currency' }), reference: t.arg.string({ required: true }) },
        resolve: async (_root, args, context) => {
          const deposited = amount(args.amount, context);
          const handle = germlineHandle(temporal(context), context.germline);
          await updateBudget(handle, depositUpdate, { amount: deposited.toString(), currency: context.currency, reference: args.reference }).catch(refused);
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
          return createFundingCheckout(stripe, { germline: context.germline, amount: amount(args.amount, context), currency: context.currency, requestId: args.requestId }).catch((error: unknown) => {
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
/** Refusals of a workflow update that are not the caller's input: their own API codes. */
const UPDATE_REFUSAL_CODES: Record<string, 'NOT_FOUND' | 'UNAVAILABLE'> = { NotAwaitingApproval: 'NOT_FOUND', JournalUnavailable: 'UNAVAILABLE' };

function refused(error: unknown): never {
  if (error instanceof PlatformError) throw apiError(error.code, error.message);
  if (error instanceof AccountError) throw apiError(error.code === 'INVALID_INPUT' ? 'BAD_USER_INPUT' : 'CONFLICT', error.message);
  if (error instanceof StoreError) throw apiError(error.code === 'MANIFEST_UNKNOWN' || error.code === 'BLOB_UNKNOWN' ? 'NOT_FOUND' : 'BAD_USER_INPUT', error.message);
  if (error instanceof CheckpointError || error instanceof MoneyError) throw apiError('BAD_USER_INPUT', error.message);
  const cause = (error as { cause?: { message?: string; type?: string } }).cause;
  if (error instanceof Error && error.name === 'WorkflowUpdateFailedError' && cause?.message) throw apiError(UPDATE_REFUSAL_CODES[cause.type ?? ''] ?? 'BAD_USER_INPUT', cause.message);
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
    // Depth is our own rule, not mercurius' queryDepth, whose refusal carries no extensions.code.
    validationRules: [depthLimit, aliasLimit, fieldLimit],
    context: (request) => ({ ...context, caller: request.caller }),
  });
}
