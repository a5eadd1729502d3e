// /api/graphql: one GraphQL endpoint (Mercurius, JIT-compiled) with a code-first schema (Pothos),
// one module per domain in this folder (builder.ts holds the builder, its context and shared helpers;
// refusals.ts turns errors from below into GraphQL errors; limits.ts bounds each operation's cost).
// The committed schema.graphql at the repository root is printed from it by `npm run schema`.
import type { FastifyInstance } from 'fastify';
import mercurius from 'mercurius';
import type { GraphQLContext } from './builder';
import { aliasLimit, depthLimit, fieldLimit } from './limits';
import { buildSchema } from './schema';

export type { GraphQLContext, PlatformParts } from './builder';
export { LIMITS } from './limits';
export { apiError } from './refusals';
export { buildSchema } from './schema';

export async function registerGraphQL(app: FastifyInstance, context: Omit<GraphQLContext, 'caller'>): Promise<void> {
  // A browser's session may only change things through JSON, never a form post from another site.
  app.addHook('preHandler', async (request, reply) => {
    if (request.url.startsWith('/api/graphql') && request.method === 'POST' && request.viaCookie) {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (type !== 'application/json')
        return reply.code(415).send({
          errors: [{ message: 'send GraphQL as application/json', extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }],
        });
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
