// Public reads that scale, against real parts: the platform on the tests' PostgreSQL (or PGlite),
// an OCI layout store, the GraphQL endpoint through inject. The platform's database client counts
// its queries (Prisma's query events), so "from the cache" means "no query", and changes come
// through the real paths: mutations, and a second client standing in for another process (the
// worker tagging a checkpoint, another replica).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '@prisma/client';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { PublicCache } from '../../platform/public-cache';
import { buildPlatform } from '../../platform/server';
import { publishCheckpoint } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { graphqlAs, type Headers, signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

const databaseUrl = () => testGlobals().databaseUrl;

/** A Prisma client that counts the SQL it sends: the platform's database in these tests. */
function countingDatabase(): { db: Database; queries: () => number } {
  const db = new PrismaClient({
    adapter: new PrismaPg({ connectionString: databaseUrl() }),
    log: [{ emit: 'event', level: 'query' }],
  });
  let queries = 0;
  db.$on('query', () => queries++);
  return { db, queries: () => queries };
}

let store: LayoutStore;
/** Another process's connection: the worker, another replica. */
let elsewhere: Database;
const germline = uniqueName('cachegerm');
const repo = `germline/${germline}`;
let modelDir: string;

beforeAll(async () => {
  elsewhere = openDatabase(databaseUrl());
  store = await new LayoutStore(path.join(mkdtempSync(path.join(tmpdir(), 'public-reads-')), 'store')).init();
  modelDir = mkdtempSync(path.join(tmpdir(), 'public-reads-model-'));
  writeFileSync(path.join(modelDir, 'model.safetensors'), safetensorsOf('weights of the day'));
  await publishCheckpoint(store, repo, modelDir, { tag: 'main' });
  await tagDay('2026-11-20');
});

afterAll(async () => {
  await elsewhere?.$disconnect();
});

/** What the daily tag records, written from another connection as the worker's activity does. */
async function tagDay(day: string): Promise<void> {
  const { digest } = await publishCheckpoint(store, repo, modelDir, { tag: `gpc-${day}` });
  await elsewhere.checkpoint.create({
    data: {
      id: `${repo}:gpc-${day}`,
      repository: repo,
      tag: `gpc-${day}`,
      day,
      digest,
      status: 'published',
      nickname: `nick-${day}-${germline}`,
    },
  });
}

async function platformOn(db: Database, options: { listen: boolean }): Promise<FastifyInstance> {
  const app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    store,
    db,
    rateLimitPerMinute: 100_000,
    ...(options.listen ? { databaseUrl: databaseUrl() } : {}),
  });
  await app.ready();
  return app;
}

const DAILY = '{ dailyCheckpoints(limit: 5) { tag nickname files { path } } }';
const tags = (answer: { data?: unknown }) =>
  (answer.data as { dailyCheckpoints: Array<{ tag: string }> }).dailyCheckpoints.map((c) => c.tag);

describe.each([
  ['listening for the trigger’s notices where the database delivers them', true],
  ['reading the generation (PGlite, or no database address given)', false],
])('the public cache, %s', (_title, listen) => {
  let app: FastifyInstance;
  let counted: ReturnType<typeof countingDatabase>;
  let ann: TestAccount;
  /** An image of ann's own, for threads only this block writes. */
  let talk: string;

  beforeAll(async () => {
    counted = countingDatabase();
    app = await platformOn(counted.db, { listen });
    ann = await signUpAccount(app, uniqueName('ann'));
    talk = `trainers/${ann.handle}/talk`;
    await publishCheckpoint(store, talk, modelDir, { tag: 'main' });
  });
  afterAll(async () => {
    await app?.close();
    await counted?.db.$disconnect();
  });
  const graphql = (query: string, headers: Headers = {}, variables: Record<string, unknown> = {}) =>
    graphqlAs(app, headers, query, variables);

  test('a public answer is served again without a database query, to anonymous and signed-in callers alike', async () => {
    const first = await graphql(DAILY);
    expect(first.errors).toBeUndefined();
    expect(tags(first)).toContain('gpc-2026-11-20');
    // Other tests write threads and tags into the same database meanwhile, and each write forgets
    // every answer: so some pair of reads in a row must cost nothing (reading the generation, one).
    const allowed = listen && app.publicCache.listening ? 0 : 1;
    let cheapest = Infinity;
    for (let attempt = 0; attempt < 20 && cheapest > allowed; attempt++) {
      await graphql(DAILY);
      const before = counted.queries();
      expect(await graphql(DAILY)).toEqual(first);
      cheapest = Math.min(cheapest, counted.queries() - before);
    }
    expect(cheapest).toBeLessThanOrEqual(allowed);
    // A signed-in caller gets the same answer (its token costs its own lookup, not the answer's).
    expect(await graphql(DAILY, ann.token)).toEqual(first);
  });

  test('a daily tag recorded by another process shows in the next answers', async () => {
    const day = listen ? '2026-11-21' : '2026-11-22';
    expect(tags(await graphql(DAILY))).not.toContain(`gpc-${day}`);
    await tagDay(day);
    // The notice (or the next reading of the generation) arrives after the commit, not with it.
    await eventually(
      async () => (tags(await graphql(DAILY)).includes(`gpc-${day}`) ? true : undefined),
      `gpc-${day} in the cached answer`,
    );
  });

  test('a thread started here shows at once; a comment written by another process shows next', async () => {
    const threads = (a: { data?: unknown }) =>
      (a.data as { threads: Array<{ title: string; comments: Array<{ body: string }> }> }).threads;
    const query = 'query($repo: String!) { threads(repository: $repo) { title comments { body } } }';
    expect(threads(await graphql(query, {}, { repo: talk }))).toEqual([]);
    const opened = await graphql(
      'mutation($repo: String!) { startThread(repository: $repo, title: "Cached?", body: "first") { id } }',
      ann.token,
      { repo: talk },
    );
    expect(opened.errors).toBeUndefined();
    // Same process: the mutation forgets the cached answers before it answers.
    expect(threads(await graphql(query, {}, { repo: talk }))).toEqual([
      { title: 'Cached?', comments: [{ body: 'first' }] },
    ]);
    const threadId = (opened.data as { startThread: { id: string } }).startThread.id;
    await elsewhere.comment.create({
      data: { id: uniqueName('comment'), threadId, authorId: ann.id, body: 'second, from elsewhere' },
    });
    await eventually(
      async () =>
        (threads(await graphql(query, {}, { repo: talk }))[0]?.comments.length ?? 0) === 2 ? true : undefined,
      'the second comment',
    );
  });

  test("a caller's own fields and fields outside the public list are never served from the cache", async () => {
    const ben = await signUpAccount(app, uniqueName('ben'));
    const me = '{ me { handle } }';
    expect((await graphql(me, ann.token)).data).toEqual({ me: { handle: ann.handle } });
    expect((await graphql(me, ben.token)).data).toEqual({ me: { handle: ben.handle } });
    expect((await graphql(me)).data).toEqual({ me: null });
    // A public list asked together with a caller's own field: every time from the database, each caller's own.
    const mixed = '{ me { handle } dailyCheckpoints(limit: 1) { tag } }';
    expect((await graphql(mixed, ann.token)).data).toMatchObject({ me: { handle: ann.handle } });
    const before = counted.queries();
    expect((await graphql(mixed, ben.token)).data).toMatchObject({ me: { handle: ben.handle } });
    expect((await graphql(mixed)).data).toMatchObject({ me: null });
    expect(counted.queries() - before).toBeGreaterThanOrEqual(2);
  });

  test('GET answers carry an ETag; asking again with it is a 304 without a body', async () => {
    const url = `/api/graphql?query=${encodeURIComponent(DAILY)}`;
    const first = await app.inject({ method: 'GET', url });
    expect(first.statusCode).toBe(200);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers['cache-control']).toBe('public, no-cache');
    const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    const other = await app.inject({ method: 'GET', url, headers: { 'if-none-match': '"stale"' } });
    expect(other.statusCode).toBe(200);
    expect(other.body).toBe(first.body);
    // A private answer has no ETag and no shared caching.
    const private_ = await app.inject({
      method: 'GET',
      url: `/api/graphql?query=${encodeURIComponent('{ me { handle } }')}`,
      headers: ann.token,
    });
    expect(private_.headers.etag).toBeUndefined();
  });
});

test("the JSON listing of a repository's checkpoints carries an ETag: 304 while it stays, 200 once a tag is added", async () => {
  const app = await platformOn(elsewhere, { listen: false });
  try {
    const url = `/api/checkpoints/${repo}`;
    const first = await app.inject({ method: 'GET', url });
    expect(first.statusCode).toBe(200);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const same = await app.inject({ method: 'GET', url, headers: { 'if-none-match': etag } });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');
    await tagDay('2026-11-23');
    const changed = await app.inject({ method: 'GET', url, headers: { 'if-none-match': etag } });
    expect(changed.statusCode).toBe(200);
    expect(changed.json<{ tags: Array<{ tag: string }> }>().tags.map((t) => t.tag)).toContain('gpc-2026-11-23');
  } finally {
    await app.close();
  }
});

test('on PostgreSQL the cache listens; the answers it holds are bounded in number and bytes (oldest out)', async () => {
  const db = openDatabase(databaseUrl());
  const cache = new PublicCache({ db, databaseUrl: databaseUrl(), maxEntries: 3, maxBytes: 4096 });
  try {
    await cache.start();
    const version = await db.$queryRaw<Array<{ version: string }>>`SELECT version()`;
    expect(cache.listening).toBe(!version[0]!.version.includes('PGlite'));
    for (let i = 0; i < 5; i++) {
      await cache.get(`k${i}`);
      cache.set(`k${i}`, 'x'.repeat(100), cache.ticket());
    }
    expect(cache.size).toEqual({ entries: 3, bytes: 3 * ('k0'.length + 100) });
    expect(await cache.get('k0')).toBeUndefined();
    expect((await cache.get('k4'))?.body).toBe('x'.repeat(100));
    for (let i = 0; i < 5; i++) cache.set(`big${i}`, 'y'.repeat(1000), cache.ticket());
    expect(cache.size.bytes).toBeLessThanOrEqual(4096);
    // One answer bigger than a quarter of the bound is not kept at all.
    expect(cache.set('huge', 'z'.repeat(2000), cache.ticket())).toBeUndefined();
    // An answer computed across a change is not kept.
    const ticket = cache.ticket();
    cache.invalidate();
    expect(cache.set('late', '{}', ticket)).toBeUndefined();
  } finally {
    await cache.close();
    await db.$disconnect();
  }
});

test('a list of images asks for its threads and recordings in one round, however many images', async () => {
  const counted = countingDatabase();
  const app = await platformOn(counted.db, { listen: false });
  try {
    const owner = await signUpAccount(app, uniqueName('owner'));
    const search = uniqueName('batch');
    const queryFor = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const repository = `trainers/${owner.handle}/${search}-${count}-${i}`;
        await publishCheckpoint(store, repository, modelDir, { tag: 'main' });
        const opened = await owner.gql(
          'mutation($r: String!) { startThread(repository: $r, title: "t", body: "b") { id } }',
          { r: repository },
        );
        expect(opened.errors).toBeUndefined();
      }
      // images is not cached (it reads the store): every request runs its resolvers.
      const query = `{ images(search: "${search}-${count}-") { repository threads { title comments { body author } } recordings { title } } }`;
      const before = counted.queries();
      const answer = await owner.gql<{ images: Array<{ threads: unknown[] }> }>(query);
      expect(answer.errors).toBeUndefined();
      expect(answer.data!.images).toHaveLength(count);
      expect(answer.data!.images.every((image) => image.threads.length === 1)).toBe(true);
      return counted.queries() - before;
    };
    const forTwo = await queryFor(2);
    const forEight = await queryFor(8);
    expect(forEight).toBe(forTwo);
    expect(forEight).toBeLessThanOrEqual(14);

    // The run that made each checkpoint: one query for the whole list (uncached: not a public field).
    const daily = (fields: string) => `{ dailyCheckpoints(limit: 5) { tag ${fields} } me { handle } }`;
    const costOf = async (query: string) => {
      const before = counted.queries();
      const answer = await owner.gql<{ dailyCheckpoints: unknown[] }>(query);
      expect(answer.errors).toBeUndefined();
      expect(answer.data!.dailyCheckpoints.length).toBeGreaterThanOrEqual(2);
      return counted.queries() - before;
    };
    expect((await costOf(daily('trainingRun { id }'))) - (await costOf(daily('')))).toBe(1);
  } finally {
    await app.close();
    await counted.db.$disconnect();
  }
});
