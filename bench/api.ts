// npm run bench:api [-- --connections 16 --warmup 5 --duration 10 --rounds 3 --processes 1 --limit 30]
//
// Requests per second and p99 latency of the public `dailyCheckpoints` GraphQL query
// (POST /api/graphql, answered from the public cache: platform/public-cache.ts) beside a static JSON
// route on the same platform instance that answers the same bytes without touching the database,
// so both pay the hooks (helmet, rate limit, auth) and HTTP alike and the ratio is what GraphQL and
// its cache cost over the cheapest possible answer (goal: ratio >= 0.5). A third row, a plain
// Fastify route running the resolver's Prisma query for every request, shows what the cache saves.
// PostgreSQL: DATABASE_URL when set (CI: the machine's PostgreSQL, database `test`; the cache
// LISTENs), otherwise a fresh PGlite in a temp folder, as `npm start` runs it (the cache reads the
// generation once a second). The load comes from separate processes (bench/support/load.ts),
// closed-loop over keep-alive connections; the targets alternate (static, GraphQL, plain, static,
// ...) and the median of the rounds is reported. Beside them, the server process's CPU time per
// request (with PGlite, the database's too): on a busy machine the rates swing from round to round,
// the CPU each request costs much less.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { migrateDatabase } from '../db/migrate';
import { type Database, openDatabase } from '../db/prisma';
import { LayoutStore } from '../store/layout';
import { buildPlatform } from '../platform/server';
import { startEmbeddedPostgres } from '../runtime/embedded/postgres';
import { freePort } from '../runtime/embedded/temporal-dev-server';
import { nicknameCandidate } from '../workflows/nickname';
import type { LoadJob, LoadResult } from './support/load';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '5' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    processes: { type: 'string', default: '1' },
    limit: { type: 'string', default: '30' },
  },
});
const CONNECTIONS = Number(values.connections);
const WARMUP_MS = Number(values.warmup) * 1000;
const DURATION_MS = Number(values.duration) * 1000;
const ROUNDS = Number(values.rounds);
const PROCESSES = Number(values.processes);
const LIMIT = Number(values.limit);
const GOAL = 0.5;

const FIELDS = 'repository tag day nickname digest size pull manifestUrl';
const PLAIN_PATH = '/bench/plain-checkpoints';
const STATIC_PATH = '/bench/static-checkpoints';

/** `days` published daily checkpoints of germline/<germline>, newest on `today`, nicknames unique as the schedule makes them. */
async function seed(db: Database, germline: string, days: number): Promise<void> {
  const repository = `germline/${germline}`;
  const taken = new Set<string>();
  const rows = Array.from({ length: days }, (_v, i) => {
    const day = new Date(Date.UTC(2026, 10, 25) - i * 86_400_000).toISOString().slice(0, 10);
    const digest = `sha256:${createHash('sha256').update(`${germline}/${day}`).digest('hex')}`;
    let nickname = nicknameCandidate(day, digest, 0);
    for (let attempt = 1; taken.has(nickname); attempt++) nickname = nicknameCandidate(day, digest, attempt);
    taken.add(nickname);
    const tag = `gpc-${day}`;
    return {
      id: `${repository}:${tag}`,
      repository,
      tag,
      day,
      status: 'published',
      nickname,
      digest,
      size: BigInt(14_500_000_000 + i * 1_048_576),
    };
  });
  await db.checkpoint.createMany({ data: rows });
}

interface Loader {
  child: ChildProcess;
  /** Rejects when the process stops: a round waiting on it fails instead of waiting forever. */
  exited: Promise<never>;
}

/** The load processes, kept for every round so their code is warm too. */
function startLoaders(count: number): Loader[] {
  return Array.from({ length: count }, () => {
    const child = fork(path.join(__dirname, 'support', 'load.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<never>((_resolve, reject) =>
      child.once('exit', (code, signal) =>
        reject(new Error(`a load process stopped (${signal ?? `exit code ${code}`})`)),
      ),
    );
    exited.catch(() => undefined); // it matters only while a round waits on it
    return { child, exited };
  });
}

interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of this process (the platform, and PGlite when embedded) per answered request. */
  cpuUs: number;
  errors: number;
  firstError?: string;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** One round against one target: the connections are shared among the load processes. */
async function measure(loaders: Loader[], job: Omit<LoadJob, 'connections'>): Promise<Measurement> {
  const cpu = process.cpuUsage();
  const results = await Promise.all(
    loaders.map(async (loader, i) => {
      const connections = Math.floor(CONNECTIONS / loaders.length) + (i < CONNECTIONS % loaders.length ? 1 : 0);
      const answer = once(loader.child, 'message') as Promise<[LoadResult]>;
      loader.child.send({ ...job, connections } satisfies LoadJob);
      return (await Promise.race([answer, loader.exited]))[0];
    }),
  );
  const { user, system } = process.cpuUsage(cpu);
  const latencies = Float64Array.from(results.flatMap((r) => r.latenciesMs)).sort();
  const errors = results.reduce((sum, r) => sum + r.errors, 0);
  const firstError = results.find((r) => r.firstError)?.firstError;
  return {
    // Each process measured its own window; together they answered the sum of their rates.
    rps: results.reduce((sum, r) => sum + (r.seconds > 0 ? r.requests / r.seconds : 0), 0),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUs:
      (user + system) /
      Math.max(
        1,
        results.reduce((sum, r) => sum + r.total, 0),
      ),
    errors,
    ...(firstError ? { firstError } : {}),
  };
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-bench-api-'));
  const pg = process.env.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort() });
  const databaseUrl = process.env.DATABASE_URL ?? pg!.url;
  await migrateDatabase(databaseUrl);
  const db = openDatabase(databaseUrl);
  // Unique per run: reruns on a shared database never collide, and the rows are removed at the end.
  const germline = `bench-api-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
  const repository = `germline/${germline}`;
  const loaders = startLoaders(PROCESSES);
  let platform: Awaited<ReturnType<typeof buildPlatform>> | undefined;
  try {
    await seed(db, germline, 30);
    const store = await new LayoutStore(path.join(dir, 'store')).init();
    // No Temporal: dailyCheckpoints reads PostgreSQL only. The rate limit stays registered (its hook
    // runs for both targets) but never refuses.
    platform = await buildPlatform({
      logger: pino({ level: 'silent' }),
      checks: [],
      germline,
      store,
      db,
      databaseUrl,
      rateLimitPerMinute: Number.MAX_SAFE_INTEGER,
    });

    // The ceiling: the GraphQL answer's bytes, read once before the load starts, and no database.
    let staticAnswer = '';
    platform.post(STATIC_PATH, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(staticAnswer),
    );

    // The baseline: the resolver's query and the GraphQL answer's shape, without GraphQL.
    platform.post<{ Body: { limit?: number } }>(PLAIN_PATH, async (request, reply) => {
      const limit = request.body?.limit ?? 30;
      if (!Number.isInteger(limit) || limit < 1 || limit > 365)
        return reply.code(400).send({ error: 'limit is 1 to 365' });
      const rows = await db.checkpoint.findMany({
        where: { repository, status: 'published' },
        orderBy: { day: 'desc' },
        take: limit,
      });
      return {
        data: {
          dailyCheckpoints: rows.map((c) => ({
            repository: c.repository,
            tag: c.tag,
            day: c.day,
            nickname: c.nickname,
            digest: c.digest,
            size: c.size?.toString() ?? null,
            pull: `computatrum pull ${c.repository}:${c.tag} <dir>`,
            manifestUrl: `/v2/${c.repository}/manifests/${c.tag}`,
          })),
        },
      };
    });
    await platform.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(platform.server.address() as AddressInfo).port}`;

    const graphqlBody = JSON.stringify({ query: `{ dailyCheckpoints(limit: ${LIMIT}) { ${FIELDS} } }` });
    staticAnswer = await (
      await fetch(`${base}/api/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: graphqlBody,
      })
    ).text();

    const targets = [
      {
        name: 'static',
        label: `static   POST ${STATIC_PATH}`,
        url: `${base}${STATIC_PATH}`,
        body: JSON.stringify({ limit: LIMIT }),
      },
      {
        name: 'graphql',
        label: 'graphql  POST /api/graphql (cached)',
        url: `${base}/api/graphql`,
        body: graphqlBody,
      },
      {
        name: 'plain',
        label: `plain    POST ${PLAIN_PATH}`,
        url: `${base}${PLAIN_PATH}`,
        body: JSON.stringify({ limit: LIMIT }),
      },
    ] as const;

    // All answer the same bytes, or the comparison is not fair.
    const answers = await Promise.all(
      targets.map(async (t) =>
        (await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: t.body })).text(),
      ),
    );
    for (const [i, answer] of answers.entries())
      if (answer !== answers[0])
        throw new Error(
          `the targets answer differently:\n${targets[0].name}: ${answers[0]!.slice(0, 300)}\n${targets[i]!.name}: ${answer.slice(0, 300)}`,
        );
    const rows = (JSON.parse(answers[0]!) as { data: { dailyCheckpoints: unknown[] } }).data.dailyCheckpoints.length;

    console.log(
      `dailyCheckpoints(limit: ${LIMIT}): ${rows} rows, ${answers[0]!.length} bytes per answer, ${pg ? 'PGlite' : 'PostgreSQL'}; ` +
        `${CONNECTIONS} keep-alive connections from ${PROCESSES} load process(es); ${ROUNDS} rounds of ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s per target, alternating`,
    );
    const results: Record<(typeof targets)[number]['name'], Measurement[]> = { static: [], graphql: [], plain: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const m = await measure(loaders, {
          url: target.url,
          body: target.body,
          warmupMs: WARMUP_MS,
          durationMs: DURATION_MS,
          expectPrefix: '{"data":{"dailyCheckpoints":[',
        });
        results[target.name].push(m);
        if (m.errors > 0)
          console.log(`  ${target.name} round ${round + 1}: ${m.errors} errors, the first: ${m.firstError}`);
      }
    }

    const summary = (name: (typeof targets)[number]['name']) => ({
      rps: median(results[name].map((m) => m.rps)),
      p50: median(results[name].map((m) => m.p50)),
      p99: median(results[name].map((m) => m.p99)),
      cpuUs: median(results[name].map((m) => m.cpuUs)),
      errors: results[name].reduce((sum, m) => sum + m.errors, 0),
      rounds: results[name].map((m) => m.rps.toFixed(0)).join(' '),
    });
    console.log(
      `${'target'.padEnd(42)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'cpu µs/req'.padStart(12)}${'errors'.padStart(8)}   req/s per round`,
    );
    const ceiling = summary('static');
    const graphql = summary('graphql');
    const plain = summary('plain');
    for (const [target, s] of [
      [targets[0], ceiling],
      [targets[1], graphql],
      [targets[2], plain],
    ] as const) {
      console.log(
        `${target.label.padEnd(42)}${s.rps.toFixed(1).padStart(10)}${s.p50.toFixed(2).padStart(10)}${s.p99.toFixed(2).padStart(10)}${s.cpuUs.toFixed(0).padStart(12)}${String(s.errors).padStart(8)}   ${s.rounds}`,
      );
    }
    const ratio = graphql.rps / ceiling.rps;
    console.log(
      `ratio    req/s graphql / static: ${ratio.toFixed(3)} (goal >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}); p99 graphql / static: ${(graphql.p99 / ceiling.p99).toFixed(2)}x; ` +
        `server CPU per request graphql - static: ${(graphql.cpuUs - ceiling.cpuUs).toFixed(0)} µs, ` +
        `by CPU static / graphql: ${(ceiling.cpuUs / graphql.cpuUs).toFixed(3)}; req/s graphql / plain (uncached Prisma): ${(graphql.rps / plain.rps).toFixed(2)}x`,
    );
  } finally {
    for (const loader of loaders) loader.child.disconnect();
    await platform?.close();
    await db.checkpoint.deleteMany({ where: { repository } }).catch(() => undefined);
    await db.$disconnect();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
