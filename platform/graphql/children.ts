// The germline's children: the live ones from the germline workflow, the ended ones from PostgreSQL
// (db/germline-archive.ts), in spawn order, a page at a time; their money is for operators.
import { CHILDREN_PAGE_MAX, listChildren, UnknownChildCursorError } from '../../db/germline-archive';
import { germlineHandle } from '../../temporal/germline-client';
import { type ChildRecord, childrenQuery } from '../../workflows/child-api';
import { childRepository } from '../../workflows/names';
import { builder, temporal } from './builder';
import { apiError } from './refusals';

const ChildRef = builder.objectRef<ChildRecord>('Child').implement({
  description: 'A child computatrum funded by the germline; its money is for operators.',
  fields: (t) => ({
    name: t.exposeString('name'),
    purpose: t.exposeString('purpose'),
    state: t.exposeString('state'),
    repository: t.string({ resolve: (c) => childRepository(c.name) }),
    allowance: t.string({ nullable: true, authScopes: { operator: true }, resolve: (c) => c.allowance }),
    spent: t.string({ nullable: true, authScopes: { operator: true }, resolve: (c) => c.spent ?? null }),
  }),
});

builder.queryFields((t) => ({
  children: t.field({
    type: [ChildRef],
    description: `The germline's children, every state, in spawn order: at most \`first\` (at most ${CHILDREN_PAGE_MAX}), after the child named \`after\`.`,
    args: {
      first: t.arg.int({ defaultValue: 100 }),
      after: t.arg.string({ description: 'the name of the last child of the previous page' }),
    },
    resolve: async (_root, args, context) => {
      const first = args.first ?? 100;
      const after = args.after ?? undefined;
      if (first < 1 || first > CHILDREN_PAGE_MAX)
        throw apiError('BAD_USER_INPUT', `first is from 1 to ${CHILDREN_PAGE_MAX}, got ${first}`);
      const live = await germlineHandle(temporal(context), context.germline).query(childrenQuery);
      try {
        const page = await listChildren(context.db, context.germline, live, {
          first,
          ...(after ? { after } : {}),
        });
        return page.children;
      } catch (error) {
        if (error instanceof UnknownChildCursorError) throw apiError('BAD_USER_INPUT', error.message);
        throw error;
      }
    },
  }),
}));
