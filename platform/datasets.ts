// Feedback datasets as the platform offers them: an account builds one of an image it may read (its
// own private instances' exchanges included, no one else's), and anyone who may read an image lists
// its datasets (the hub page, GraphQL). The build itself is activities/datasets.ts, shared with the
// germline's own cycle and the operator's CLI.
import { buildDataset, type BuiltDataset, DatasetError } from '../activities/datasets';
import type { Database } from '../db/prisma';
import { parseReference } from '../store/names';
import { StoreError, type CheckpointStore } from '../store/types';
import type { Caller } from './accounts';
import { PlatformError } from './errors';
import { feedbackView, type FeedbackView } from './feedback';
import { assertMayRead, readRefusal } from './read-access';

export type DatasetRow = NonNullable<Awaited<ReturnType<Database['dataset']['findUnique']>>>;

/** Builds the dataset of `image`'s new feedback as `caller`'s account. */
export async function buildAccountDataset(
  deps: { db: Database; store: CheckpointStore },
  caller: Caller,
  input: { image: string; since?: string | null },
): Promise<BuiltDataset> {
  if (!caller.account) throw new PlatformError('FORBIDDEN', 'sign in (or send an API token) to build a dataset');
  let image: { repo: string; reference: string };
  try {
    image = parseReference(input.image);
  } catch (error) {
    throw new PlatformError('BAD_USER_INPUT', (error as Error).message);
  }
  const since = input.since ? new Date(input.since) : undefined;
  if (since && Number.isNaN(since.getTime()))
    throw new PlatformError(
      'BAD_USER_INPUT',
      `since "${input.since}" is not a time: write it like 2026-11-30 or 2026-11-30T12:00:00Z`,
    );
  await assertMayRead(deps.db, caller, image.repo, 'build a dataset of');
  try {
    return await buildDataset(deps, {
      repository: image.repo,
      reference: image.reference,
      builtBy: { account: caller.account.handle },
      ...(since ? { since } : {}),
    });
  } catch (error) {
    if (error instanceof DatasetError)
      throw new PlatformError(error.code === 'NOTHING_NEW' ? 'CONFLICT' : 'NOT_FOUND', error.message);
    if (error instanceof StoreError && error.code === 'MANIFEST_UNKNOWN')
      throw new PlatformError('NOT_FOUND', error.message);
    throw error;
  }
}

/** An image's datasets, newest first, for whoever may read the image. */
export async function datasetsOf(db: Database, caller: Caller, repository: string): Promise<DatasetRow[]> {
  await assertMayRead(db, caller, repository, 'list the datasets of');
  return db.dataset.findMany({ where: { repository }, orderBy: { createdAt: 'desc' }, take: 100 });
}

/** The datasets a training run learned from (its TrainingRun.datasets), as indexed. */
export async function datasetsOfRun(db: Database, run: { datasets: unknown }): Promise<DatasetRow[]> {
  const named = Array.isArray(run.datasets) ? (run.datasets as Array<{ repository?: unknown; digest?: unknown }>) : [];
  const keys = named.filter(
    (d): d is { repository: string; digest: string } =>
      typeof d.repository === 'string' && typeof d.digest === 'string',
  );
  if (keys.length === 0) return [];
  return db.dataset.findMany({ where: { OR: keys.map((k) => ({ repository: k.repository, digest: k.digest })) } });
}

/** The training run that made a checkpoint (its output digest), if one did. */
export function runThatMade(db: Database, digest: string | null) {
  if (!digest) return Promise.resolve(null);
  return db.trainingRun.findFirst({
    where: { outputDigest: digest, state: 'succeeded' },
    orderBy: { createdAt: 'asc' },
  });
}

/** runThatMade for many checkpoints in one query (a list of checkpoints asks once). */
export async function runsThatMade(db: Database, digests: string[]) {
  const runs = await db.trainingRun.findMany({
    where: { outputDigest: { in: digests }, state: 'succeeded' },
    orderBy: { createdAt: 'asc' },
  });
  const first = new Map<string, (typeof runs)[number]>();
  for (const run of runs) if (run.outputDigest && !first.has(run.outputDigest)) first.set(run.outputDigest, run);
  return first;
}

/** The feedback records a dataset holds. */
export async function recordsOf(db: Database, dataset: { repository: string; digest: string }) {
  const rows = await db.datasetRecord.findMany({
    where: { repository: dataset.repository, digest: dataset.digest },
    select: { feedbackId: true },
  });
  return db.feedback.findMany({ where: { id: { in: rows.map((r) => r.feedbackId) } }, orderBy: { id: 'asc' } });
}

/**
 * Back from a feedback record: the published checkpoints (daily tags among them) made by training
 * runs that learned from a dataset holding it.
 */
export async function checkpointsLearnedFrom(db: Database, feedbackId: string) {
  const holders = await db.datasetRecord.findMany({
    where: { feedbackId },
    select: { repository: true, digest: true },
  });
  if (holders.length === 0) return [];
  const runs = await db.trainingRun.findMany({
    where: {
      state: 'succeeded',
      outputDigest: { not: null },
      OR: holders.map((h) => ({ datasets: { array_contains: [{ repository: h.repository, digest: h.digest }] } })),
    },
    select: { outputDigest: true },
  });
  const digests = runs.map((r) => r.outputDigest!);
  if (digests.length === 0) return [];
  return db.checkpoint.findMany({
    where: { digest: { in: digests }, status: 'published' },
    orderBy: [{ day: 'asc' }, { tag: 'asc' }],
  });
}

export type TrainingRunRow = NonNullable<Awaited<ReturnType<Database['trainingRun']['findFirst']>>>;

/** The datasets a run names (its TrainingRun.datasets), as keys. */
function datasetKeysOf(run: { datasets: unknown }): Array<{ repository: string; digest: string }> {
  const named = Array.isArray(run.datasets) ? (run.datasets as Array<{ repository?: unknown; digest?: unknown }>) : [];
  return named
    .filter(
      (d): d is { repository: string; digest: string } =>
        typeof d.repository === 'string' && typeof d.digest === 'string',
    )
    .map((d) => ({ repository: d.repository, digest: d.digest }));
}

/**
 * For many checkpoints at once (a hub page's tags): the training run here that made each digest (as
 * runThatMade), with the indexed datasets it learned from (as datasetsOfRun), in two queries however
 * many digests. Digests no run made are absent.
 */
export async function trainingLineageOf(
  db: Database,
  digests: string[],
): Promise<Map<string, { run: TrainingRunRow; datasets: DatasetRow[] }>> {
  const wanted = [...new Set(digests)];
  if (wanted.length === 0) return new Map();
  const runs = await db.trainingRun.findMany({
    where: { outputDigest: { in: wanted }, state: 'succeeded' },
    orderBy: { createdAt: 'asc' },
  });
  const first = new Map<string, TrainingRunRow>();
  for (const run of runs) if (!first.has(run.outputDigest!)) first.set(run.outputDigest!, run);
  const keyOf = (d: { repository: string; digest: string }) => `${d.repository}@${d.digest}`;
  const keys = new Map([...first.values()].flatMap((run) => datasetKeysOf(run)).map((k) => [keyOf(k), k]));
  const rows = keys.size ? await db.dataset.findMany({ where: { OR: [...keys.values()] } }) : [];
  const indexed = new Map(rows.map((row) => [keyOf(row), row]));
  return new Map(
    [...first].map(([digest, run]) => [
      digest,
      {
        run,
        datasets: datasetKeysOf(run)
          .map((k) => indexed.get(keyOf(k)))
          .filter((row): row is DatasetRow => row !== undefined),
      },
    ]),
  );
}

/**
 * The datasets a run learned from that `caller` may see: those of images they may read (a paid
 * breed's datasets are its buyers' and owner's, as its files are).
 */
export async function readableDatasetsOfRun(
  db: Database,
  caller: Caller,
  run: { datasets: unknown },
): Promise<DatasetRow[]> {
  const rows = await datasetsOfRun(db, run);
  const repositories = [...new Set(rows.map((d) => d.repository))];
  const refused = new Set<string>();
  for (const repository of repositories) if (await readRefusal(db, caller, repository)) refused.add(repository);
  return rows.filter((d) => !refused.has(d.repository));
}

/**
 * The feedback records a dataset holds, as its files show them to whoever may read its image: the
 * label and the correction. Who gave them and their comments (not in the files) only to operators.
 */
export async function datasetFeedback(
  db: Database,
  caller: Caller,
  dataset: { repository: string; digest: string },
): Promise<FeedbackView[]> {
  await assertMayRead(db, caller, dataset.repository, 'read the datasets of');
  const views = (await recordsOf(db, dataset)).map(feedbackView);
  return caller.role === 'operator' ? views : views.map((v) => ({ ...v, authorHandle: null, comment: null }));
}
