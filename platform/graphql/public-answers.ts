// Public GraphQL answers served from the shared cache (../public-cache.ts), with an ETag and 304 on
// GET. Whether an answer may be shared is decided by what it serves: every field the operation
// selects must be on PUBLIC_FIELDS, fields whose values are the same for every caller and are read
// only from the tables whose changes reach the cache. A field not listed (a caller's own, anything
// access-controlled, anything read from elsewhere, any field added later) makes the operation
// uncached, so the list can only err towards the database.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type DocumentNode, type GraphQLSchema, parse, TypeInfo, visit, visitWithTypeInfo } from 'graphql';
import { etagOf, matchesEtag, type PublicCache } from '../public-cache';

/** `Type.field` coordinates that answer alike for every caller, from Checkpoint, Breed, Thread, Comment and Recording rows. */
export const PUBLIC_FIELDS: ReadonlySet<string> = new Set([
  'Query.dailyCheckpoints',
  ...['repository', 'tag', 'day', 'nickname', 'digest', 'size', 'pull', 'manifestUrl', 'parentDigest', 'files'].map(
    (f) => `DailyCheckpoint.${f}`,
  ),
  ...['path', 'size', 'digest', 'downloadUrl'].map((f) => `CheckpointFile.${f}`),
  'Query.breeds',
  ...[
    'repository',
    'title',
    'owner',
    'price',
    'currency',
    'inputPricePer1k',
    'outputPricePer1k',
    'licenceIncludesUse',
  ].map((f) => `Breed.${f}`),
  'Query.threads',
  ...['id', 'repository', 'reference', 'title', 'author', 'createdAt', 'comments'].map((f) => `Thread.${f}`),
  ...['id', 'author', 'body', 'createdAt'].map((f) => `Comment.${f}`),
  'Query.recordings',
  ...[
    'id',
    'repository',
    'subjectDigest',
    'reference',
    'title',
    'filename',
    'mediaType',
    'size',
    'author',
    'createdAt',
    'downloadUrl',
  ].map((f) => `Recording.${f}`),
]);

type Classification = 'public' | 'mutation' | 'other';

/** Whether a document is a query of public fields only, a mutation, or anything else (an error, a private field). */
export function classify(schema: GraphQLSchema, document: DocumentNode): Classification {
  const typeInfo = new TypeInfo(schema);
  let kind: Classification = 'public';
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition(node) {
        if (node.operation === 'mutation') kind = 'mutation';
        else if (node.operation !== 'query' && kind === 'public') kind = 'other';
      },
      Field(node) {
        const parent = typeInfo.getParentType();
        if (node.name.value === '__typename' || kind !== 'public') return;
        if (!parent || !PUBLIC_FIELDS.has(`${parent.name}.${node.name.value}`)) kind = 'other';
      },
    }),
  );
  return kind;
}

interface Operation {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

/** The operation a request carries: a JSON body (POST) or the query string (GET); undefined when unreadable. */
function operationOf(request: FastifyRequest): Operation | undefined {
  const source = (request.method === 'GET' ? request.query : request.body) as Record<string, unknown> | undefined;
  if (!source || typeof source.query !== 'string') return undefined;
  let variables = source.variables;
  if (typeof variables === 'string') {
    try {
      variables = JSON.parse(variables) as unknown;
    } catch {
      return undefined;
    }
  }
  if (variables !== undefined && variables !== null && typeof variables !== 'object') return undefined;
  const operationName = source.operationName;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  return { query: source.query, operationName, variables: variables as Operation['variables'] };
}

const PENDING = Symbol('public answer');
type Pending = { key: string; ticket: number } | 'mutation';
type Marked = FastifyRequest & { [PENDING]?: Pending };

const CACHE_CONTROL = 'public, no-cache';
/** Longer operations (with their variables) are answered, never remembered: memory stays bounded by count. */
const MAX_KEY_CHARS = 8 * 1024;

function answer(request: FastifyRequest, reply: FastifyReply, body: string, etag: string) {
  reply.header('etag', etag).header('cache-control', CACHE_CONTROL);
  if (request.method === 'GET' && matchesEtag(request.headers['if-none-match'], etag)) return reply.code(304).send();
  return reply.type('application/json; charset=utf-8').send(body);
}

/** Serves and stores public answers of `path`; a mutation answered here forgets them at once (other writers: the trigger's notice). */
export function registerPublicAnswers(
  app: FastifyInstance,
  path: string,
  schema: GraphQLSchema,
  cache: PublicCache,
  options: { maxDocuments?: number } = {},
): void {
  // Each distinct document is parsed and classified once (bounded: a flood of distinct ones starts over).
  const kinds = new Map<string, Classification>();
  const maxDocuments = options.maxDocuments ?? 1_000;
  const kindOf = (query: string): Classification => {
    let kind = kinds.get(query);
    if (kind === undefined) {
      try {
        kind = classify(schema, parse(query));
      } catch {
        kind = 'other';
      }
      if (kinds.size >= maxDocuments) kinds.clear();
      kinds.set(query, kind);
    }
    return kind;
  };

  app.addHook('preHandler', async (request, reply) => {
    if (request.routeOptions.url !== path || (request.method !== 'GET' && request.method !== 'POST')) return;
    const operation = operationOf(request);
    if (!operation) return;
    if (operation.query.length > MAX_KEY_CHARS) {
      // Not parsed here (nor remembered): forgotten after, should it change anything.
      if (/\bmutation\b/.test(operation.query)) (request as Marked)[PENDING] = 'mutation';
      return;
    }
    const kind = kindOf(operation.query);
    if (kind === 'mutation') (request as Marked)[PENDING] = 'mutation';
    if (kind !== 'public') return;
    const key = JSON.stringify([operation.query, operation.operationName ?? null, operation.variables ?? {}]);
    if (key.length > MAX_KEY_CHARS) return;
    const hit = await cache.get(key);
    if (hit) return answer(request, reply, hit.body, hit.etag);
    // After get: its reading of the generation is what the answer about to be computed must still match.
    (request as Marked)[PENDING] = { key, ticket: cache.ticket() };
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const pending = (request as Marked)[PENDING];
    // Before the answer leaves: the caller's next read here already sees its change.
    if (pending === 'mutation') cache.invalidate();
    if (!pending || pending === 'mutation' || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    if ((JSON.parse(payload) as { errors?: unknown }).errors !== undefined) return payload;
    const stored = cache.set(pending.key, payload, pending.ticket);
    const etag = stored?.etag ?? etagOf(payload);
    reply.header('etag', etag).header('cache-control', CACHE_CONTROL);
    // The validator is the content's: a client holding it is answered 304 whether or not the cache kept it.
    if (request.method === 'GET' && matchesEtag(request.headers['if-none-match'], etag)) {
      reply.code(304);
      return '';
    }
    return payload;
  });
}
