// The germline's children (from the germline workflow); their money is for operators.
import { germlineHandle } from '../../temporal/germline-client';
import { type ChildRecord, childrenQuery } from '../../workflows/child-api';
import { childRepository } from '../../workflows/names';
import { builder, temporal } from './builder';

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
    description: "The germline's children, every state.",
    resolve: async (_root, _args, context) => germlineHandle(temporal(context), context.germline).query(childrenQuery),
  }),
}));
