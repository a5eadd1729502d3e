// Accounts: who the caller is (me) and their API tokens.
import { type AccountView, createApiToken } from '../accounts';
import { builder } from './builder';
import { refused } from './refusals';

export const AccountRef = builder.objectRef<AccountView>('Account').implement({
  fields: (t) => ({
    handle: t.exposeString('handle'),
    email: t.exposeString('email'),
    role: t.exposeString('role'),
  }),
});

const TokenRef = builder.objectRef<{ id: string; name: string; token: string }>('NewApiToken').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    name: t.exposeString('name'),
    token: t.exposeString('token', { description: 'shown this once; only its hash is stored' }),
  }),
});

builder.queryFields((t) => ({
  me: t.field({ type: AccountRef, nullable: true, resolve: (_root, _args, context) => context.caller.account ?? null }),
}));

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: TokenRef,
    authScopes: { trainer: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, context) => createApiToken(context.db, context.caller.account!.id, name).catch(refused),
  }),
}));
