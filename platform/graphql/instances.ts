// Hosted instances: the ones a caller may see (public ones, their own; operators: every one),
// launching one of an image paid from the caller's credit, stopping it, and the transcripts of what
// it was asked, which are private to the one who pays (its owner) and the operators.
import type { Database } from '../../db/prisma';
import type { Caller } from '../accounts';
import {
  type InstanceRow,
  launchAccountInstance,
  stopAccountInstance,
  visibleInstance,
  visibleInstances,
} from '../instances';
import { amount, builder, temporal, training } from './builder';
import { listSize } from './limits';
import { apiError, refused } from './refusals';

export type InteractionRow = NonNullable<Awaited<ReturnType<Database['interaction']['findUnique']>>>;

/** The most interactions one answer lists. */
const MAX_INTERACTIONS = 200;
/** Instances one `instances` answer lists at most. */
const MAX_INSTANCES_LISTED = 500;

/** Its owner and the operators manage an instance: its money, its transcripts, stopping it. */
const manages = (caller: Caller, row: InstanceRow): boolean =>
  caller.role === 'operator' || (caller.account !== undefined && caller.account.handle === row.ownerHandle);

/** An instance's interactions, newest first, once `caller` may read them (its owner, an operator). */
async function interactionsOf(db: Database, caller: Caller, row: InstanceRow, limit: number | null | undefined) {
  if (!manages(caller, row)) {
    throw caller.account
      ? apiError('FORBIDDEN', `the interactions of instance ${row.id} are private to its owner and the operators`)
      : apiError(
          'UNAUTHENTICATED',
          `sign in (an API token) as the owner of instance ${row.id} to read its interactions`,
        );
  }
  return db.interaction.findMany({
    where: { instanceId: row.id },
    orderBy: { createdAt: 'desc' },
    take: Math.max(0, Math.min(limit ?? 50, MAX_INTERACTIONS)),
  });
}

/** A usage count as the instance reported it (OpenAI's usage object), or null. */
const usageCount = (row: InteractionRow, key: 'prompt_tokens' | 'completion_tokens' | 'total_tokens') => {
  const usage = row.usage as Record<string, unknown> | null;
  const value = usage?.[key];
  return typeof value === 'number' && Number.isInteger(value) ? value : null;
};

export const InteractionRef = builder.objectRef<InteractionRow>('Interaction').implement({
  description: "One request an instance answered, as its gateway recorded it: private to the instance's owner.",
  fields: (t) => ({
    id: t.exposeString('id'),
    instanceId: t.exposeString('instanceId'),
    digest: t.exposeString('digest', { description: 'the image manifest that answered' }),
    caller: t.string({
      nullable: true,
      description: 'the handle of the signed-in caller; null: an anonymous visitor',
      resolve: (i) => i.callerHandle,
    }),
    messages: t.string({
      description: 'the request\'s messages, as JSON: [{"role": …, "content": …}, …]',
      resolve: (i) => JSON.stringify((i.request as { messages?: unknown } | null)?.messages ?? []),
    }),
    completion: t.exposeString('completion'),
    promptTokens: t.int({ nullable: true, resolve: (i) => usageCount(i, 'prompt_tokens') }),
    completionTokens: t.int({ nullable: true, resolve: (i) => usageCount(i, 'completion_tokens') }),
    totalTokens: t.int({ nullable: true, resolve: (i) => usageCount(i, 'total_tokens') }),
    latencyMs: t.exposeInt('latencyMs'),
    createdAt: t.string({ resolve: (i) => i.createdAt.toISOString() }),
  }),
});

/** A field of the instance's money: for its owner and the operators, null for anyone else. */
const managed = <T>(value: (row: InstanceRow) => T) => {
  return (row: InstanceRow, _args: object, context: { caller: Caller }): T | null =>
    manages(context.caller, row) ? value(row) : null;
};

const InstanceRef = builder.objectRef<InstanceRow>('Instance').implement({
  description:
    'A hosted instance of an image, serving the OpenAI-compatible API; money in integer minor units of its currency, as strings.',
  fields: (t) => ({
    id: t.exposeString('id'),
    state: t.exposeString('state', {
      description: 'pending | starting | ready | sleeping | draining | stopped | failed',
    }),
    image: t.string({
      description: 'repository:reference as launched',
      resolve: (i) => `${i.repository}:${i.reference}`,
    }),
    repository: t.exposeString('repository'),
    digest: t.string({
      nullable: true,
      description: 'the image manifest it serves, resolved at launch',
      resolve: (i) => i.digest,
    }),
    visibility: t.exposeString('visibility', {
      description: 'private (its owner and their tokens) | public (anyone; its payer pays)',
    }),
    owner: t.string({
      nullable: true,
      description: 'the handle that launched it; null: the germline itself',
      resolve: (i) => i.ownerHandle,
    }),
    gpus: t.exposeInt('gpus'),
    currency: t.exposeString('currency'),
    ratePerGpuHour: t.string({
      description: 'minor units, fixed at launch',
      resolve: (i) => i.ratePerGpuHour.toString(),
    }),
    idleTimeoutSeconds: t.exposeInt('idleTimeoutSeconds', { description: 'idle this long, it sleeps; 0: never' }),
    maxDurationSeconds: t.exposeInt('maxDurationSeconds'),
    payer: t.string({
      nullable: true,
      description: 'the budget that pays (credit/<handle>, germline/<name>); its owner and operators only',
      resolve: managed((i) => i.payer),
    }),
    cost: t.string({
      nullable: true,
      description: 'minor units settled so far; its owner and operators only',
      resolve: managed((i) => i.cost.toString()),
    }),
    maxCost: t.string({
      nullable: true,
      description: 'the most it may cost over its life; its owner and operators only',
      resolve: managed((i) => i.maxCost.toString()),
    }),
    billedSeconds: t.int({
      nullable: true,
      description: 'the seconds it was billed for (ready or draining); its owner and operators only',
      resolve: managed((i) => i.billedSeconds),
    }),
    reason: t.string({
      nullable: true,
      description: 'why it stopped, failed, is draining or sleeps',
      resolve: (i) => i.reason,
    }),
    createdAt: t.string({ resolve: (i) => i.createdAt.toISOString() }),
    lastRequestAt: t.string({ nullable: true, resolve: (i) => i.lastRequestAt?.toISOString() ?? null }),
    interactions: t.field({
      type: [InteractionRef],
      description: 'What it was asked and answered, newest first: its owner and operators only.',
      args: { limit: t.arg.int({ defaultValue: 50 }) },
      resolve: (i, { limit }, context) => interactionsOf(context.db, context.caller, i, limit),
    }),
  }),
});

const LaunchedRef = builder.objectRef<{ id: string; workflowId: string }>('LaunchedInstance').implement({
  fields: (t) => ({
    id: t.exposeString('id', { description: 'the instance id (query `instance(id:)` for its state)' }),
    workflowId: t.exposeString('workflowId', { description: 'follow it in the Temporal UI' }),
  }),
});

builder.queryFields((t) => ({
  instances: t.field({
    type: [InstanceRef],
    description: 'Public instances and your own (operators: every one), newest first; ended ones with `includeEnded`.',
    args: { includeEnded: t.arg.boolean({ defaultValue: false }), limit: t.arg.int({ defaultValue: 50 }) },
    ...listSize(MAX_INSTANCES_LISTED),
    resolve: (_root, { includeEnded, limit }, context) => {
      const count = limit ?? 50;
      if (count < 1 || count > MAX_INSTANCES_LISTED)
        throw apiError('BAD_USER_INPUT', `limit is 1 to ${MAX_INSTANCES_LISTED}`);
      return visibleInstances(context.db, context.caller, { includeEnded: includeEnded ?? false, limit: count });
    },
  }),
  instance: t.field({
    type: InstanceRef,
    description: "An instance you may see: public, or yours (someone else's private one is not found).",
    args: { id: t.arg.string({ required: true }) },
    resolve: (_root, { id }, context) => visibleInstance(context.db, context.caller, id).catch(refused),
  }),
  interactions: t.field({
    type: [InteractionRef],
    description: "An instance's interactions, newest first: its owner and operators only.",
    args: { instanceId: t.arg.string({ required: true }), limit: t.arg.int({ defaultValue: 50 }) },
    resolve: async (_root, { instanceId, limit }, context) => {
      const row = await visibleInstance(context.db, context.caller, instanceId).catch(refused);
      return interactionsOf(context.db, context.caller, row, limit);
    },
  }),
}));

builder.mutationFields((t) => ({
  launchInstance: t.field({
    type: LaunchedRef,
    description:
      'Launches an instance of an image you may read, paid from your credit lease by lease (at most maxCost over its life).',
    authScopes: { trainer: true },
    args: {
      image: t.arg.string({ required: true, description: 'repository:tag or repository@digest' }),
      visibility: t.arg.string({
        defaultValue: 'private',
        description: 'private (you and your tokens) | public (anyone, no sign-in; you pay)',
      }),
      maxCost: t.arg.string({ required: true, description: 'e.g. "5.00": the most it may cost' }),
      gpus: t.arg.int({ defaultValue: 1 }),
      idleTimeoutSeconds: t.arg.int({ description: 'idle this long, it sleeps (nothing reserved); 0: never' }),
      maxDurationSeconds: t.arg.int({ description: 'billed seconds after which it stops' }),
    },
    resolve: async (_root, args, context) => {
      const { client, settings } = training(context);
      const visibility = args.visibility ?? 'private';
      if (visibility !== 'private' && visibility !== 'public')
        throw apiError('BAD_USER_INPUT', `visibility is private or public, not "${visibility}"`);
      return launchAccountInstance(
        { client, db: context.db, store: context.store, currency: context.currency, settings },
        context.caller,
        {
          image: args.image,
          visibility,
          maxCost: amount(args.maxCost, context, 'maxCost'),
          gpus: args.gpus ?? 1,
          ...(args.idleTimeoutSeconds != null ? { idleTimeoutSeconds: args.idleTimeoutSeconds } : {}),
          ...(args.maxDurationSeconds != null ? { maxDurationSeconds: args.maxDurationSeconds } : {}),
        },
      ).catch(refused);
    },
  }),
  stopInstance: t.field({
    type: InstanceRef,
    description:
      'Stops an instance (its owner or an operator): answers once it has stopped and its last lease is settled.',
    authScopes: { trainer: true },
    args: { id: t.arg.string({ required: true }), reason: t.arg.string() },
    resolve: async (_root, { id, reason }, context) => {
      const status = await stopAccountInstance(
        { client: temporal(context), db: context.db },
        context.caller,
        id,
        reason ?? undefined,
      ).catch(refused);
      // The workflow answers as it enters its final state, a moment before it records that state in
      // the database: its answer is the instance's state, cost and reason now.
      const row = await context.db.instance.findUniqueOrThrow({ where: { id } });
      return {
        ...row,
        state: status.state,
        cost: BigInt(status.cost),
        billedSeconds: status.billedSeconds,
        reason: status.reason ?? null,
        digest: status.digest ?? row.digest,
      };
    },
  }),
}));
