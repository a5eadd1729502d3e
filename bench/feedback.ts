// npm run bench:feedback [-- --sizes 10000,100000 --rounds 3 --increment 1000 --analyze]
//
// The cost of building a feedback dataset (activities/datasets.ts buildDataset: the query, the rows,
// the OCI artifact pushed into a LayoutStore, the Dataset and DatasetRecord index) as the number of
// feedback records grows, beside the same rows (rowsOf) written as JSONL with plain `fs`, in one run
// on a fresh embedded PostgreSQL (PGlite in a temp folder, as `npm start` runs it). Each size is
// built from scratch each round (a fresh store holding only the image, no dataset indexed yet,
// `since` the epoch); the median of the rounds is reported. Goal: flat, the time per record at the
// largest size close to the time per record at the smallest (ratio ~1.0). Then the germline's
// incremental case: a few new records beside a dataset a run has learned all the others from (`unlearned`).
// PGlite runs no autovacuum, so the planner has no statistics unless something runs ANALYZE:
// --analyze runs it after each insert, as a server's autovacuum would.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildDataset, rowsOf, type BuiltDataset } from '../activities/datasets';
import { migrateDatabase } from '../db/migrate';
import { type Database, openDatabase } from '../db/prisma';
import { startEmbeddedPostgres } from '../runtime/embedded/postgres';
import { freePort } from '../runtime/embedded/temporal-dev-server';
import { publishCheckpoint } from '../store/checkpoint';
import { DATASET_FILES, type DatasetContent } from '../store/dataset';
import { LayoutStore } from '../store/layout';
import { germlineWorkflowId } from '../workflows/names';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000' },
    rounds: { type: 'string', default: '3' },
    increment: { type: 'string', default: '1000' },
    analyze: { type: 'boolean', default: false },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const ROUNDS = Number(values.rounds);
const INCREMENT = Number(values.increment);
const BATCH = 1000;

const GERMLINE = 'bench-feedback';
const REPOSITORY = `germline/${GERMLINE}`;
const INSTANCE = 'bench-feedback-public';
/** Fixed, so the image published into each round's fresh store has the same digest. */
const CREATED = '2026-01-01T00:00:00.000Z';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Deterministic text of about `length` characters (xorshift over a word list): no two records alike. */
const WORDS = (
  'the model answer question because weights training data gradient token layer attention budget ' +
  'checkpoint germline instance feedback correction prompt should would could explain example result ' +
  'value number first second when where which while about after before under over between through'
).split(' ');
function textOf(seed: number, length: number): string {
  let x = (seed * 2654435761) >>> 0 || 1;
  const words: string[] = [];
  let size = 0;
  while (size < length) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const word = WORDS[x % WORDS.length]!;
    words.push(word);
    size += word.length + 1;
  }
  return words.join(' ');
}

const SYSTEM = textOf(7, 160);

/** Feedback records [from, to) on as many interactions of the public instance: half good, 30% bad, 20% corrected. */
async function insert(db: Database, digest: string, from: number, to: number): Promise<void> {
  const base = Date.UTC(2026, 0, 2);
  for (let start = from; start < to; start += BATCH) {
    const end = Math.min(to, start + BATCH);
    const n = Array.from({ length: end - start }, (_v, i) => start + i);
    const id = (i: number) => String(i).padStart(8, '0');
    await db.interaction.createMany({
      data: n.map((i) => ({
        id: `ix-${id(i)}`,
        instanceId: INSTANCE,
        digest,
        visitorId: `visitor-${i % 997}`,
        request: {
          model: INSTANCE,
          messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: textOf(i * 3 + 1, 300) },
          ],
          temperature: 0.7,
        },
        completion: textOf(i * 3 + 2, 200),
        usage: { prompt_tokens: 120, completion_tokens: 50, total_tokens: 170 },
        latencyMs: 100 + (i % 400),
        createdAt: new Date(base + i * 1000),
      })),
    });
    await db.feedback.createMany({
      data: n.map((i) => {
        const kind = i % 10; // 0-4 good, 5-7 bad, 8-9 bad with a correction
        return {
          id: `fb-${id(i)}`,
          interactionId: `ix-${id(i)}`,
          author: `visitor:visitor-${i % 997}`,
          visitorId: `visitor-${i % 997}`,
          label: kind < 5 ? 'good' : 'bad',
          correction: kind >= 8 ? textOf(i * 3 + 3, 200) : null,
          comment: kind >= 5 ? 'not quite' : null,
          createdAt: new Date(base + i * 1000 + 500),
          updatedAt: new Date(base + i * 1000 + 500),
        };
      }),
    });
  }
}

/** A fresh store holding only the image (same bytes, same `created`: the same digest every time). */
async function freshStore(root: string, image: string, name: string): Promise<LayoutStore> {
  const store = await new LayoutStore(path.join(root, name)).init();
  await publishCheckpoint(store, REPOSITORY, image, { tag: 'main', created: CREATED });
  return store;
}

/** Bytes of the dataset's files (its layers), from its manifest. */
async function datasetBytes(store: LayoutStore, digest: string): Promise<number> {
  const manifest = await store.getManifest(REPOSITORY, digest);
  const layers = (JSON.parse(manifest!.bytes.toString()) as { layers: Array<{ size: number }> }).layers;
  return layers.reduce((sum, layer) => sum + layer.size, 0);
}

interface Timed<T> {
  value: T;
  seconds: number;
  /** Peak growth over the run, in bytes, sampled every few milliseconds (and at the end). */
  heap: number;
  rss: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function timed<T>(action: () => Promise<T> | T): Promise<Timed<T>> {
  gc?.();
  const before = process.memoryUsage();
  let heap = 0;
  let rss = 0;
  const sample = () => {
    const now = process.memoryUsage();
    heap = Math.max(heap, now.heapUsed - before.heapUsed);
    rss = Math.max(rss, now.rss - before.rss);
  };
  const sampler = setInterval(sample, 5);
  const started = process.hrtime.bigint();
  try {
    const value = await action();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    sample();
    return { value, seconds, heap, rss };
  } finally {
    clearInterval(sampler);
  }
}

/** The baseline: the same rows (rowsOf, record order) as JSONL with plain fs, into `dir`; answers the bytes written. */
function writePlain(
  dir: string,
  records: Array<{
    id: string;
    label: string;
    correction: string | null;
    interaction: { request: unknown; completion: string };
  }>,
): number {
  mkdirSync(dir, { recursive: true });
  const files = {
    preferences: openSync(path.join(dir, DATASET_FILES.preferences), 'w'),
    labelled: openSync(path.join(dir, DATASET_FILES.labelled), 'w'),
    transcripts: openSync(path.join(dir, DATASET_FILES.transcripts), 'w'),
  };
  const counts = { records: records.length, preferences: 0, labelled: 0, transcripts: 0 };
  let bytes = 0;
  for (const record of records) {
    const rows: Pick<DatasetContent, 'preferences' | 'labelled' | 'transcripts'> = rowsOf(record, record.interaction);
    for (const kind of ['preferences', 'labelled', 'transcripts'] as const) {
      for (const row of rows[kind]) {
        bytes += writeSync(files[kind], `${JSON.stringify(row)}\n`);
        counts[kind]++;
      }
    }
  }
  for (const fd of Object.values(files)) closeSync(fd);
  const list = `${JSON.stringify({ records: records.map((r) => r.id), counts })}\n`;
  writeFileSync(path.join(dir, DATASET_FILES.records), list);
  return bytes + Buffer.byteLength(list);
}

const us = (seconds: number, records: number) => (seconds * 1e6) / records;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-bench-feedback-'));
  const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort() });
  await migrateDatabase(pg.url);
  const db = openDatabase(pg.url);
  const builtBy = { germline: germlineWorkflowId(GERMLINE) };
  try {
    const image = path.join(dir, 'image');
    mkdirSync(image);
    const weights = Buffer.from(`weights of ${REPOSITORY}`);
    const header = Buffer.from(
      JSON.stringify({ weights: { dtype: 'U8', shape: [weights.length], data_offsets: [0, weights.length] } }).padEnd(
        64,
      ),
    );
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(path.join(image, 'model.safetensors'), Buffer.concat([length, header, weights]));
    const first = await freshStore(dir, image, 'store-image');
    const digest = (await first.getManifest(REPOSITORY, 'main'))!.digest;
    await db.instance.create({
      data: {
        id: INSTANCE,
        repository: REPOSITORY,
        reference: 'main',
        digest,
        payer: germlineWorkflowId(GERMLINE),
        visibility: 'public',
        runner: 'local',
        gpus: 1,
        ratePerGpuHour: 3600n,
        currency: 'usd',
        maxCost: 1_000_000n,
        idleTimeoutSeconds: 0,
        maxDurationSeconds: 3600,
        state: 'ready',
      },
    });
    console.log(
      `feedback datasets of ${REPOSITORY}@${digest.slice(0, 19)}..., one public instance, PGlite in ${dir}; ` +
        `median of ${ROUNDS} rounds, each built from scratch; ${values.analyze ? 'ANALYZE after each insert' : 'no planner statistics (no ANALYZE, as PGlite runs)'}`,
    );

    let inserted = 0;
    const results: Array<{ n: number; build: number; plain: number; read: number }> = [];
    let last: { store: LayoutStore; built: BuiltDataset } | undefined;
    for (const n of SIZES) {
      const inserting = await timed(() => insert(db, digest, inserted, n));
      inserted = n;
      if (values.analyze) await db.$executeRawUnsafe('ANALYZE');
      console.log(`\nN = ${n.toLocaleString('en')}: inserted ${n} records in ${inserting.seconds.toFixed(1)} s`);

      // The baseline's input: the same records and their interactions, read once by two plain findMany (timed apart).
      const read = await timed(() =>
        db.feedback.findMany({ where: { hiddenBy: null }, orderBy: { id: 'asc' } }).then(async (feedback) => {
          const interactions = await db.interaction.findMany({
            where: { digest },
            select: { id: true, request: true, completion: true },
          });
          const byId = new Map(interactions.map((i) => [i.id, i]));
          return feedback.map((f) => ({ ...f, interaction: byId.get(f.interactionId)! }));
        }),
      );

      const builds: Array<Timed<BuiltDataset>> = [];
      const plains: Array<Timed<number>> = [];
      for (let round = 0; round < ROUNDS; round++) {
        const plainDir = path.join(dir, `plain-${n}-${round}`);
        plains.push(await timed(() => writePlain(plainDir, read.value)));
        rmSync(plainDir, { recursive: true, force: true });

        await db.datasetRecord.deleteMany({ where: { repository: REPOSITORY } });
        await db.dataset.deleteMany({ where: { repository: REPOSITORY } });
        const store = await freshStore(dir, image, `store-${n}-${round}`);
        const build = await timed(() =>
          buildDataset({ db, store }, { repository: REPOSITORY, reference: 'main', builtBy, since: new Date(0) }),
        );
        builds.push(build);
        if (build.value.records.counts.records !== n) {
          throw new Error(`the dataset holds ${build.value.records.counts.records} records, not ${n}`);
        }
        if (last) rmSync(last.store.location, { recursive: true, force: true });
        last = { store, built: build.value };
      }
      const bytes = await datasetBytes(last!.store, last!.built.digest);
      const build = median(builds.map((b) => b.seconds));
      const plain = median(plains.map((p) => p.seconds));
      const counts = last!.built.records.counts;
      console.log(
        `  rows: ${counts.preferences} preferences, ${counts.labelled} labelled, ${counts.transcripts} transcripts; ` +
          `dataset files ${mb(bytes)} (plain fs ${mb(plains[0]!.value)})`,
      );
      console.log(
        `  buildDataset   ${build.toFixed(3)} s, ${us(build, n).toFixed(1)} µs/record ` +
          `(rounds ${builds.map((b) => b.seconds.toFixed(2)).join(', ')}); peak growth heap ${mb(Math.max(...builds.map((b) => b.heap)))}, ` +
          `RSS ${mb(Math.max(...builds.map((b) => b.rss)))} (PGlite runs in this process)`,
      );
      console.log(
        `  plain fs       ${plain.toFixed(3)} s, ${us(plain, n).toFixed(1)} µs/record ` +
          `(rowsOf + JSON.stringify + writeSync per line; rounds ${plains.map((p) => p.seconds.toFixed(2)).join(', ')})`,
      );
      console.log(
        `  (reading the same records and interactions with two plain findMany: ${read.seconds.toFixed(3)} s, ` +
          `${us(read.seconds, n).toFixed(1)} µs/record, once)`,
      );
      console.log(
        `  ratio build / plain fs: ${(build / plain).toFixed(2)}; build / (read + plain fs): ${(build / (read.seconds + plain)).toFixed(2)}`,
      );
      results.push({ n, build, plain, read: read.seconds });
    }

    if (results.length > 1) {
      const small = results[0]!;
      const large = results.at(-1)!;
      const perRecord = us(large.build, large.n) / us(small.build, small.n);
      const perPlain = us(large.plain, large.n) / us(small.plain, small.n);
      console.log(
        `\nper-record time, N = ${large.n} / N = ${small.n}: buildDataset ${perRecord.toFixed(2)}, ` +
          `plain fs ${perPlain.toFixed(2)} (goal: flat, close to 1.0; well above 1 means the cost grows faster than the records; ` +
          `the machine is shared and noisy: compare ratios between runs, not single figures)`,
      );
    }

    if (INCREMENT > 0 && last) {
      // The germline's cycle: a few new records beside a dataset a run has already learned all the others from.
      await insert(db, digest, inserted, inserted + INCREMENT);
      await db.trainingRun.create({
        data: {
          id: `bench-learned-${Date.now()}`,
          payer: 'germline/bench',
          runner: 'local',
          outputRepository: REPOSITORY,
          outputBranch: 'learned',
          gpus: 1,
          maxCost: 1n,
          ratePerGpuHour: 1n,
          currency: 'usd',
          maxDurationSeconds: 1,
          state: 'succeeded',
          datasets: [{ repository: REPOSITORY, digest: last.built.digest }],
        },
      });
      if (values.analyze) await db.$executeRawUnsafe('ANALYZE');
      const held = await db.datasetRecord.count({ where: { repository: REPOSITORY } });
      const builds: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        await db.datasetRecord.deleteMany({ where: { repository: REPOSITORY, digest: { not: last.built.digest } } });
        await db.dataset.deleteMany({ where: { repository: REPOSITORY, digest: { not: last.built.digest } } });
        const store = await freshStore(dir, image, `store-increment-${round}`);
        const build = await timed(() =>
          buildDataset({ db, store }, { repository: REPOSITORY, reference: 'main', builtBy, unlearned: true }),
        );
        if (build.value.records.counts.records !== INCREMENT) {
          throw new Error(
            `the incremental dataset holds ${build.value.records.counts.records} records, not ${INCREMENT}`,
          );
        }
        builds.push(build.seconds);
        rmSync(store.location, { recursive: true, force: true });
      }
      const seconds = median(builds);
      console.log(
        `\nincremental (unlearned): ${INCREMENT} new records beside ${held} learned: ${seconds.toFixed(3)} s, ` +
          `${us(seconds, INCREMENT).toFixed(1)} µs/new record (rounds ${builds.map((s) => s.toFixed(2)).join(', ')})`,
      );
    }
  } finally {
    await db.$disconnect();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
