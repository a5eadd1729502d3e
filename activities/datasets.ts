// Building a feedback dataset of an image: the feedback given on the answers its instances gave
// (interactions with the image's digest), turned into the dataset files (store/dataset.ts) and pushed
// beside the image, then indexed for lineage (Dataset, DatasetRecord). Built by the germline's own
// cycle (an activity), `computatrum dataset build` and GraphQL's buildDataset.
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { requireManifest } from '../store/checkpoint';
import {
  type ChatMessage,
  type DatasetContent,
  type DatasetRecords,
  type LabelledRow,
  type PreferenceRow,
  pushDataset,
  type TranscriptRow,
} from '../store/dataset';
import type { CheckpointStore } from '../store/types';
import {
  FINAL_TRAINING_STATES,
  type TrainingDefaults,
  type TrainingRequest,
  trainingRequest,
} from '../workflows/training-api';
import { germlineRepository, germlineWorkflowId } from '../workflows/names';
import type { MinorUnits } from '../workflows/money';
import type { FeedbackSummary } from '../workflows/guardrails';

export class DatasetError extends Error {
  override name = 'DatasetError';
  constructor(
    readonly code: 'NOTHING_NEW' | 'NOT_FOUND',
    message: string,
  ) {
    super(message);
  }
}

export interface BuildDatasetInput {
  repository: string;
  /** The image: a tag or a digest. */
  reference: string;
  /** Who builds it: an account's handle, or a germline (`germline/<name>`), which sees only public exchanges. */
  builtBy: { account: string } | { germline: string };
  /** Only feedback given (or changed) at or after this time; default: after the image's newest dataset. */
  since?: Date;
  /** Only feedback that no training run has learned (or is learning) through a dataset of the repository, at any time. */
  unlearned?: boolean;
}

/**
 * Feedback record `f` is learned in `repository` when a dataset there holds it and a run used that
 * dataset and succeeded or still runs. A dataset built by hand, or a run refused or failed, teaches
 * nothing: its records stay to be learned.
 */
function learnedIn(repository: string): Prisma.Sql {
  return Prisma.sql`EXISTS (
    SELECT 1 FROM "DatasetRecord" r
    JOIN "TrainingRun" t
      ON t."datasets" @> jsonb_build_array(jsonb_build_object('repository', r."repository", 'digest', r."digest"))
    WHERE r."feedbackId" = f."id" AND r."repository" = ${repository}
      AND t."state" NOT IN ('failed', 'refused', 'cancelled', 'cost-cap', 'deadline')
  )`;
}

export interface BuiltDataset {
  repository: string;
  digest: string;
  subjectDigest: string;
  records: DatasetRecords;
  asOf?: string;
  /** False when the same records had been built into this very artifact before. */
  created: boolean;
}

const ROLES = new Set(['system', 'user', 'assistant']);

/** The request's messages as a dataset holds them: text only (the parts of a multi-part content joined). */
function promptOf(request: unknown): ChatMessage[] {
  const messages = (request as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return [];
  return messages.flatMap((m): ChatMessage[] => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.has(role)) return [];
    const text =
      typeof content === 'string'
        ? content
        : Array.isArray(content)
          ? content
              .map((part) =>
                (part as { type?: unknown })?.type === 'text' ? String((part as { text?: unknown }).text ?? '') : '',
              )
              .join('')
          : '';
    return [{ role: role as ChatMessage['role'], content: text }];
  });
}

const answer = (content: string): ChatMessage[] => [{ role: 'assistant', content }];

/** One record's rows: a correction is preferred over the answer and learnt; a good answer is learnt; every label is kept. */
export function rowsOf(
  record: { id: string; label: string; correction: string | null },
  interaction: { request: unknown; completion: string },
): Pick<DatasetContent, 'preferences' | 'labelled' | 'transcripts'> {
  const prompt = promptOf(interaction.request);
  const given = answer(interaction.completion);
  const preferences: PreferenceRow[] = [];
  const transcripts: TranscriptRow[] = [];
  const labelled: LabelledRow[] = [{ record: record.id, prompt, completion: given, label: record.label === 'good' }];
  if (record.correction !== null && record.correction !== interaction.completion) {
    preferences.push({ record: record.id, prompt, chosen: answer(record.correction), rejected: given });
    transcripts.push({ record: record.id, messages: [...prompt, ...answer(record.correction)] });
  } else if (record.label === 'good') {
    transcripts.push({ record: record.id, messages: [...prompt, ...given] });
  }
  return { preferences, labelled, transcripts };
}

/**
 * Builds and pushes the dataset of an image's new feedback. What a private instance was told stays
 * with its owner: only its owner's build takes feedback on its exchanges; anyone else's (and the
 * germline's) takes public instances' only. Hidden records are never taken.
 */
export async function buildDataset(
  deps: { db: Database; store: CheckpointStore },
  input: BuildDatasetInput,
): Promise<BuiltDataset> {
  const { db, store } = deps;
  const subject = await requireManifest(store, input.repository, input.reference);
  const builtBy = 'account' in input.builtBy ? input.builtBy.account : input.builtBy.germline;
  const since = input.unlearned
    ? undefined
    : (input.since ??
      (
        await db.dataset.findFirst({
          where: { repository: input.repository, subjectDigest: subject.digest, asOf: { not: null } },
          orderBy: { asOf: 'desc' },
          select: { asOf: true },
        })
      )?.asOf ??
      undefined);

  // One query, joined in the database: the image's interactions (most of which have no feedback) stay
  // there, and no list of ids (interactions, held records) travels as bind parameters, which a large
  // image's would exceed (PostgreSQL takes at most 32,767 per query).
  const visible =
    'account' in input.builtBy
      ? Prisma.sql`(n."visibility" = 'public' OR n."ownerHandle" = ${input.builtBy.account})`
      : Prisma.sql`n."visibility" = 'public'`;
  const unlearned = input.unlearned ? Prisma.sql`AND NOT ${learnedIn(input.repository)}` : Prisma.empty;
  // The default start is the newest dataset's last record, which that dataset holds already.
  const changed = !since
    ? Prisma.empty
    : input.since
      ? Prisma.sql`AND f."updatedAt" >= ${since}`
      : Prisma.sql`AND f."updatedAt" > ${since}`;
  const feedback = await db.$queryRaw<
    Array<{
      id: string;
      label: string;
      correction: string | null;
      updatedAt: Date;
      request: unknown;
      completion: string;
    }>
  >(Prisma.sql`
    SELECT f."id", f."label", f."correction", f."updatedAt", i."request", i."completion"
    FROM "Feedback" f
    JOIN "Interaction" i ON i."id" = f."interactionId"
    JOIN "Instance" n ON n."id" = i."instanceId"
    WHERE i."digest" = ${subject.digest} AND n."digest" = ${subject.digest} AND ${visible}
      AND f."hiddenBy" IS NULL ${unlearned} ${changed}
    ORDER BY f."id" ASC`);
  const where = `${input.repository}@${subject.digest}`;
  if (feedback.length === 0) {
    throw new DatasetError(
      'NOTHING_NEW',
      `no new feedback on ${where}${since ? ` since ${since.toISOString()}` : ''}: nothing to build (feedback comes from /zookeeper, giveFeedback or POST /v1/feedback)`,
    );
  }

  const content: DatasetContent = { preferences: [], labelled: [], transcripts: [] };
  for (const record of feedback) {
    const rows = rowsOf(record, record);
    content.preferences.push(...rows.preferences);
    content.labelled.push(...rows.labelled);
    content.transcripts.push(...rows.transcripts);
  }
  // A loop, not Math.max(...times): that many arguments overflow the stack.
  content.asOf = new Date(feedback.reduce((newest, f) => Math.max(newest, f.updatedAt.getTime()), -Infinity));
  const pushed = await pushDataset(store, input.repository, content, {
    mediaType: subject.mediaType,
    digest: subject.digest,
    size: subject.bytes.length,
  });

  const key = { repository: input.repository, digest: pushed.digest };
  const existing = await db.dataset.findUnique({ where: { repository_digest: key } });
  if (!existing) {
    await db.$transaction([
      db.dataset.createMany({
        data: [
          {
            ...key,
            subjectDigest: subject.digest,
            manifestSize: pushed.size,
            records: pushed.records.counts.records,
            preferences: pushed.records.counts.preferences,
            labelled: pushed.records.counts.labelled,
            transcripts: pushed.records.counts.transcripts,
            asOf: content.asOf,
            builtBy,
          },
        ],
        skipDuplicates: true,
      }),
      // The record ids as one array parameter: createMany's three bind parameters a row cost 5-7 times
      // as long for a large dataset (bench/feedback.ts). ON CONFLICT DO NOTHING: skipDuplicates.
      db.$executeRaw(Prisma.sql`
        INSERT INTO "DatasetRecord" ("repository", "digest", "feedbackId")
        SELECT ${key.repository}, ${key.digest}, unnest(${pushed.records.records}::text[])
        ON CONFLICT DO NOTHING`),
    ]);
  }
  return {
    repository: input.repository,
    digest: pushed.digest,
    subjectDigest: subject.digest,
    records: pushed.records,
    asOf: content.asOf.toISOString(),
    created: !existing,
  };
}

/** The branch a germline's runs on feedback publish to; a run that passes the eval gate is promoted to `main`. */
export const LEARNED_BRANCH = 'learned';

/** Run ids of the germline's runs on feedback start with this (workflows/autonomy.ts: autoRunId('learn', germline, tick)). */
export const learnRunPrefix = (germline: string) => `learn-${germline}-`;

/** The feedback on the germline's public answers that no run of it has learned (or is learning) yet. */
async function unlearned(db: Database, germline: string): Promise<Array<{ digest: string; records: number }>> {
  const repository = germlineRepository(germline);
  const rows = await db.$queryRaw<Array<{ digest: string; records: bigint }>>(Prisma.sql`
    SELECT i."digest" AS digest, count(*) AS records
    FROM "Feedback" f
    JOIN "Interaction" i ON i."id" = f."interactionId"
    JOIN "Instance" n ON n."id" = i."instanceId"
    WHERE n."repository" = ${repository} AND n."visibility" = 'public' AND f."hiddenBy" IS NULL
      AND NOT ${learnedIn(repository)}
    GROUP BY i."digest"
    ORDER BY i."digest"`);
  return rows.map((r) => ({ digest: r.digest, records: Number(r.records) }));
}

/** How much the germline has not learned yet, and whether a run on feedback is in flight (for its tick). */
export async function measureFeedback(db: Database, germline: string): Promise<FeedbackSummary> {
  const [pending, inFlight] = await Promise.all([
    unlearned(db, germline),
    db.trainingRun.count({
      where: { id: { startsWith: learnRunPrefix(germline) }, state: { notIn: [...FINAL_TRAINING_STATES] } },
    }),
  ]);
  return { newRecords: pending.reduce((sum, p) => sum + p.records, 0), learning: inFlight > 0 };
}

export interface DatasetActivities {
  /**
   * Builds the datasets of the germline's unlearned feedback (one per image its public instances
   * served) and the training run that learns from them: its head as the base, the `learned` branch
   * as the output. No request when there is nothing new.
   */
  prepareLearning(input: {
    germline: string;
    runId: string;
    maxCost: MinorUnits;
    currency: string;
  }): Promise<{ request?: TrainingRequest; datasets: string[] }>;
  /**
   * The dataset-builds schedule's work: the germline's unlearned feedback built into datasets beside
   * its images, ready for operators and the next learning run. Answers the datasets (`repo@digest`),
   * each new or the same as before when nothing was given since.
   */
  buildFeedbackDatasets(input: { germline: string }): Promise<{ datasets: string[] }>;
}

/** One dataset of unlearned feedback per image of the germline that has some. */
async function buildUnlearnedDatasets(
  deps: { db: Database; store: CheckpointStore },
  germline: string,
): Promise<BuiltDataset[]> {
  const repository = germlineRepository(germline);
  const built: BuiltDataset[] = [];
  for (const { digest } of await unlearned(deps.db, germline)) {
    try {
      built.push(
        await buildDataset(deps, {
          repository,
          reference: digest,
          builtBy: { germline: germlineWorkflowId(germline) },
          unlearned: true,
        }),
      );
    } catch (error) {
      // Given meanwhile on an image that is gone, or learned by a run that just finished: nothing to add.
      if (!(error instanceof DatasetError)) throw error;
    }
  }
  return built;
}

export function createDatasetActivities(deps: {
  db: Database;
  store: CheckpointStore;
  training: TrainingDefaults;
}): DatasetActivities {
  return {
    async prepareLearning({ germline, runId, maxCost, currency }) {
      const repository = germlineRepository(germline);
      const built = await buildUnlearnedDatasets(deps, germline);
      const datasets = built.map((d) => `${d.repository}@${d.digest}`);
      if (built.length === 0) return { datasets };
      const request = trainingRequest(deps.training, {
        id: runId,
        payer: germlineWorkflowId(germline),
        currency,
        base: { repo: repository, reference: 'main' },
        datasets: built.map((d) => ({ repo: d.repository, reference: d.digest })),
        output: { repo: repository, branch: LEARNED_BRANCH },
        maxCost: BigInt(maxCost),
      });
      return { request, datasets };
    },

    async buildFeedbackDatasets({ germline }) {
      const built = await buildUnlearnedDatasets(deps, germline);
      return { datasets: built.map((d) => `${d.repository}@${d.digest}`) };
    },
  };
}
