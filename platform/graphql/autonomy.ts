// The autonomy's decisions, and an operator approving or rejecting one that awaits approval.
import { updateBudget } from '../../temporal/budget-client';
import { germlineHandle } from '../../temporal/germline-client';
import { approveUpdate, type DecisionSummary, rejectUpdate } from '../../workflows/autonomy-api';
import { listDecisions } from '../decisions';
import { builder, type GraphQLContext, temporal } from './builder';
import { refused } from './refusals';

const DecisionRef = builder
  .objectRef<{ id: string; outcome: string; reason: string; policy?: string; proposal?: unknown }>('Decision')
  .implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      outcome: t.exposeString('outcome'),
      reason: t.exposeString('reason'),
      policy: t.string({ nullable: true, resolve: (d) => d.policy ?? null }),
      proposal: t.string({
        nullable: true,
        description: 'the proposal as JSON',
        resolve: (d) => (d.proposal ? JSON.stringify(d.proposal) : null),
      }),
    }),
  });

builder.queryFields((t) => ({
  decisions: t.field({
    type: [DecisionRef],
    authScopes: { operator: true },
    args: { awaiting: t.arg.boolean({ defaultValue: false }), limit: t.arg.int({ defaultValue: 30 }) },
    resolve: (_root, { awaiting, limit }, context) => listDecisions(context.db, context.germline, { awaiting, limit }),
  }),
}));

const decide =
  (update: typeof approveUpdate) =>
  async (
    _root: unknown,
    args: { id: string; reason?: string | null },
    context: GraphQLContext,
  ): Promise<DecisionSummary> =>
    updateBudget(germlineHandle(temporal(context), context.germline), update, {
      decisionId: args.id,
      by: context.caller.account!.handle,
      ...(args.reason ? { reason: args.reason } : {}),
    }).catch(refused);

builder.mutationFields((t) => ({
  approveDecision: t.field({
    type: DecisionRef,
    authScopes: { operator: true },
    args: { id: t.arg.string({ required: true }), reason: t.arg.string() },
    resolve: decide(approveUpdate),
  }),
  rejectDecision: t.field({
    type: DecisionRef,
    authScopes: { operator: true },
    args: { id: t.arg.string({ required: true }), reason: t.arg.string() },
    resolve: decide(rejectUpdate),
  }),
}));
