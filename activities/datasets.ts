// Building a feedback dataset of an image: the feedback given on the answers its instances gave
// (interactions with the image's digest), turned into the dataset files (store/dataset.ts) and pushed
// beside the image, then indexed for lineage (Dataset, DatasetRecord). Built by the germline's own
// cycle (an activity), `computatrum dataset build` and GraphQL's buildDataset.
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
  const since =
    input.since ??
    (
      await db.dataset.findFirst({
        where: { repository: input.repository, subjectDigest: subject.digest, asOf: { not: null } },
        orderBy: { asOf: 'desc' },
        select: { asOf: true },
      })
    )?.asOf ??
    undefined;

  const instances = await db.instance.findMany({
    where: {
      digest: subject.digest,
      OR: [{ visibility: 'public' }, ...('account' in input.builtBy ? [{ ownerHandle: input.builtBy.account }] : [])],
    },
    select: { id: true },
  });
  const interactions = await db.interaction.findMany({
    where: { digest: subject.digest, instanceId: { in: instances.map((i) => i.id) } },
    select: { id: true, request: true, completion: true },
  });
  const byId = new Map(interactions.map((i) => [i.id, i]));
  const feedback = await db.feedback.findMany({
    where: {
      interactionId: { in: [...byId.keys()] },
      hiddenBy: null,
      // The default start is the newest dataset's last record, which that dataset holds already.
      ...(since ? { updatedAt: input.since ? { gte: since } : { gt: since } } : {}),
    },
    orderBy: { id: 'asc' },
  });
  const where = `${input.repository}@${subject.digest}`;
  if (feedback.length === 0) {
    throw new DatasetError(
      'NOTHING_NEW',
      `no new feedback on ${where}${since ? ` since ${since.toISOString()}` : ''}: nothing to build (feedback comes from /zookeeper, giveFeedback or POST /v1/feedback)`,
    );
  }

  const content: DatasetContent = { preferences: [], labelled: [], transcripts: [] };
  for (const record of feedback) {
    const rows = rowsOf(record, byId.get(record.interactionId)!);
    content.preferences.push(...rows.preferences);
    content.labelled.push(...rows.labelled);
    content.transcripts.push(...rows.transcripts);
  }
  content.asOf = new Date(Math.max(...feedback.map((f) => f.updatedAt.getTime())));
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
      db.datasetRecord.createMany({
        data: pushed.records.records.map((feedbackId) => ({ ...key, feedbackId })),
        skipDuplicates: true,
      }),
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
