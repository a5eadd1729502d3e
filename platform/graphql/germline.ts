// The germline as the public sees it (its books are for operators), and pausing and resuming it.
import { germlineHandle } from '../../temporal/germline-client';
import { type BudgetStatus, pauseSignal, resumeSignal, statusQuery } from '../../workflows/budget-api';
import { childrenQuery } from '../../workflows/child-api';
import { BooksRef } from './budget';
import { builder, type GraphQLContext, temporal } from './builder';

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

async function germline(context: GraphQLContext) {
  const handle = germlineHandle(temporal(context), context.germline);
  const [status, children] = await Promise.all([handle.query(statusQuery), handle.query(childrenQuery)]);
  return { name: context.germline, status, children: children.filter((c) => c.state === 'active').length };
}

builder.queryFields((t) => ({
  germline: t.field({ type: GermlineRef, resolve: (_root, _args, context) => germline(context) }),
}));

builder.mutationFields((t) => ({
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
}));
