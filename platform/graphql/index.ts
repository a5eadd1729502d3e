// /api/graphql: one GraphQL endpoint (Mercurius, JIT-compiled) with a code-first schema (Pothos),
// one module per domain in this folder (builder.ts holds the builder, its context and shared helpers;
// refusals.ts turns errors from below into GraphQL errors; limits.ts bounds each operation's cost).
// The committed schema.graphql at the repository root is printed from it by `npm run schema`.
import type { FastifyInstance } from 'fastify';
import mercurius from 'mercurius';
import { PublicCache, type PublicCacheOptions } from '../public-cache';
import type { PlatformParts } from './builder';
import { aliasLimit, costLimit, depthLimit, fieldLimit } from './limits';
import { requestLoaders } from './loaders';
import { registerPublicAnswers } from './public-answers';
import { buildSchema } from './schema';

export type { GraphQLContext, PlatformParts } from './builder';
export { LIMITS } from './limits';
export { apiError } from './refusals';
export { buildSchema } from './schema';

export const GRAPHQL_PATH = '/api/graphql';

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared cache of public GraphQL answers (what it holds, whether it listens). */
    publicCache: PublicCache;
  }
}

/**
 * Registers /api/graphql. Its public answers are served from a cache shared by every caller
 * (public-answers.ts), forgotten when the database says their tables changed: give `databaseUrl` to
 * hear that at once on PostgreSQL (LISTEN), else the generation is read at most every `checkMs`.
 */
export async function registerGraphQL(
  app: FastifyInstance,
  context: PlatformParts,
  options: { publicCache?: Omit<PublicCacheOptions, 'db' | 'log'> } = {},
): Promise<PublicCache> {
  // A browser's session may only change things through JSON, never a form post from another site.
  app.addHook('preHandler', async (request, reply) => {
    if (request.url.startsWith(GRAPHQL_PATH) && request.method === 'POST' && request.viaCookie) {
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (type !== 'application/json')
        return reply.code(415).send({
          errors: [{ message: 'send GraphQL as application/json', extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }],
        });
    }
  });
  const schema = buildSchema();
  const cache = new PublicCache({ ...options.publicCache, db: context.db, log: app.log });
  app.decorate('publicCache', cache);
  app.addHook('onReady', () => cache.start());
  app.addHook('onClose', () => cache.close());
  registerPublicAnswers(app, GRAPHQL_PATH, schema, cache);
  await app.register(mercurius, {
    schema,
    path: GRAPHQL_PATH,
    graphiql: false,
    jit: 1,
    // Depth is our own rule, not mercurius' queryDepth, whose refusal carries no extensions.code.
    validationRules: [depthLimit, aliasLimit, fieldLimit, costLimit],
    context: (request) => ({ ...context, caller: request.caller, loaders: requestLoaders(context.db) }),
  });
  return cache;
}
