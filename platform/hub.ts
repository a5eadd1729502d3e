// The hub: every image in the checkpoint store (daily gpc checkpoints, children, trainers' breeds)
// with the community's discussion of it: threads and comments, recordings of sessions with the model
// (OCI artifacts whose `subject` is the image's manifest, so any OCI tool finds them as referrers),
// and reports that flag an image for the operators. Recordings are the community's defence against
// malicious models, so they stay readable by everyone, even on a paid breed.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { forkCheckpoint, requireManifest } from '../store/checkpoint';
import { DATASET_ANNOTATION, DATASET_ARTIFACT } from '../store/dataset';
import { pushRecording, RECORDING_ANNOTATION, RECORDING_ARTIFACT } from '../store/recording';
import { assertRepository, parseReference } from '../store/names';
import { scanBytes } from '../store/scan';
import { type CheckpointStore, type Descriptor, OCI_MANIFEST, StoreError } from '../store/types';
import { type AccountView, assertOwnRepository } from './accounts';
import { PlatformError } from './errors';
import { assertMayRead, inheritTerms } from './read-access';
import { germlineRepository } from '../workflows/names';

export interface CommentView {
  id: string;
  author: string;
  body: string;
  createdAt: Date;
}

export interface ThreadView {
  id: string;
  repository: string;
  reference: string | null;
  title: string;
  author: string;
  createdAt: Date;
  comments: CommentView[];
}

export interface RecordingView {
  id: string;
  repository: string;
  subjectDigest: string;
  reference: string | null;
  title: string;
  filename: string;
  mediaType: string;
  size: number;
  author: string;
  createdAt: Date;
  /** Downloads the recorded file (relative to the platform). */
  downloadUrl: string;
}

export interface ReportView {
  id: string;
  repository: string;
  reference: string | null;
  reason: string;
  reporter: string;
  createdAt: Date;
}

export interface ImageView {
  repository: string;
  kind: 'germline' | 'child' | 'trainer';
  tags: number;
  latestTag: string | null;
  latestNickname: string | null;
  breed: { title: string; price: bigint | null; currency: string } | null;
  reports: number;
}

export const LIMITS = { title: 200, comment: 10_000, reason: 2_000, filename: 200, recordingBytes: 16 * 1024 * 1024 };

const MEDIA_TYPE = /^[a-z]+\/[a-z0-9][a-z0-9.+-]{0,126}$/;
const MEDIA_TYPES_BY_EXTENSION: Record<string, string> = {
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.log': 'text/plain',
  '.webm': 'video/webm',
  '.mp4': 'video/mp4',
  '.ogg': 'audio/ogg',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.gif': 'image/gif',
};

function text(value: unknown, field: string, max: number): string {
  const trimmed = String(value ?? '').trim();
  if (!trimmed) throw new PlatformError('BAD_USER_INPUT', `${field} is empty: write something`);
  if (trimmed.length > max)
    throw new PlatformError('BAD_USER_INPUT', `${field} is ${trimmed.length} characters; at most ${max}`);
  return trimmed;
}

/** The repository must be a valid name that holds checkpoints. */
async function requireImage(store: CheckpointStore, repository: string): Promise<void> {
  try {
    assertRepository(repository);
  } catch (error) {
    throw new PlatformError('BAD_USER_INPUT', (error as StoreError).message);
  }
  if ((await store.listTags(repository)).length === 0)
    throw new PlatformError('NOT_FOUND', `${repository} is not an image on the hub (it has no checkpoints)`);
}

/** The manifest `reference` names in `repository`, as a NOT_FOUND the user can act on. */
async function requireSubject(store: CheckpointStore, repository: string, reference: string) {
  try {
    return await requireManifest(store, repository, reference);
  } catch (error) {
    if (error instanceof StoreError)
      throw new PlatformError(error.code === 'MANIFEST_UNKNOWN' ? 'NOT_FOUND' : 'BAD_USER_INPUT', error.message);
    throw error;
  }
}

function kindOf(repository: string): ImageView['kind'] {
  if (repository.startsWith('germline/')) return 'germline';
  if (repository.startsWith('children/')) return 'child';
  return 'trainer';
}

/** The images on the hub: the germline's own first, then the others by name; `search` matches names, titles and nicknames. */
export async function listImages(
  db: Database,
  store: CheckpointStore,
  options: { search?: string; germline?: string } = {},
): Promise<ImageView[]> {
  const [repositories, breeds, checkpoints, reports] = await Promise.all([
    store.listRepositories(),
    db.breed.findMany(),
    db.checkpoint.findMany({
      where: { status: 'published' },
      orderBy: [{ day: 'desc' }, { createdAt: 'desc' }],
      select: { repository: true, tag: true, nickname: true },
    }),
    db.report.groupBy({ by: ['repository'], _count: { _all: true } }),
  ]);
  const breedOf = new Map(breeds.map((b) => [b.repository, b]));
  const reportsOf = new Map(reports.map((r) => [r.repository, r._count._all]));
  const newestDaily = new Map<string, { tag: string; nickname: string | null }>();
  for (const c of checkpoints) if (!newestDaily.has(c.repository)) newestDaily.set(c.repository, c);
  const nicknames = new Map(checkpoints.map((c) => [`${c.repository}:${c.tag}`, c.nickname]));

  const images = await Promise.all(
    repositories.map(async (repository): Promise<ImageView | undefined> => {
      const tags = await store.listTags(repository);
      if (tags.length === 0) return undefined; // only untagged manifests: nothing to show
      const latestTag = newestDaily.get(repository)?.tag ?? (tags.includes('main') ? 'main' : tags.at(-1)!);
      const breed = breedOf.get(repository);
      return {
        repository,
        kind: kindOf(repository),
        tags: tags.length,
        latestTag,
        latestNickname: nicknames.get(`${repository}:${latestTag}`) ?? null,
        breed: breed ? { title: breed.title, price: breed.price, currency: breed.currency } : null,
        reports: reportsOf.get(repository) ?? 0,
      };
    }),
  );
  const search = options.search?.trim().toLowerCase();
  const own = options.germline ? germlineRepository(options.germline) : undefined;
  return images
    .filter((image): image is ImageView => image !== undefined)
    .filter(
      (image) =>
        !search ||
        [image.repository, image.breed?.title, image.latestNickname].some((field) =>
          field?.toLowerCase().includes(search),
        ),
    )
    .sort(
      (a, b) =>
        Number(b.repository === own) - Number(a.repository === own) ||
        Number(b.kind === 'germline') - Number(a.kind === 'germline') ||
        a.repository.localeCompare(b.repository),
    );
}

const withAuthor = { author: { select: { handle: true } } } as const;

/** The newest threads of an image (at most THREADS_PER_IMAGE), with their comments in order. */
export async function listThreads(db: Database, repository: string): Promise<ThreadView[]> {
  return (await listThreadsOf(db, [repository])).get(repository) ?? [];
}

export const THREADS_PER_IMAGE = 100;

/** listThreads for many images in one round of queries (a list of images asks once, not once per image). */
export async function listThreadsOf(db: Database, repositories: string[]): Promise<Map<string, ThreadView[]>> {
  const threads = await db.thread.findMany({
    where: repositories.length === 1 ? { repository: repositories[0]! } : { repository: { in: repositories } },
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
    ...(repositories.length === 1 ? { take: THREADS_PER_IMAGE } : {}),
    include: { ...withAuthor, comments: { orderBy: { createdAt: 'asc' }, include: withAuthor } },
  });
  const byRepository = new Map<string, ThreadView[]>(repositories.map((r) => [r, []]));
  for (const t of threads) {
    const list = byRepository.get(t.repository)!;
    if (list.length === THREADS_PER_IMAGE) continue;
    list.push({
      id: t.id,
      repository: t.repository,
      reference: t.reference,
      title: t.title,
      author: t.author.handle,
      createdAt: t.createdAt,
      comments: t.comments.map((c) => ({ id: c.id, author: c.author.handle, body: c.body, createdAt: c.createdAt })),
    });
  }
  return byRepository;
}

/** Opens a discussion on an image (or one checkpoint of it, by tag or digest); `body` is its first comment. */
export async function startThread(
  db: Database,
  store: CheckpointStore,
  author: AccountView,
  input: { repository: string; reference?: string | null; title: string; body: string },
): Promise<ThreadView> {
  const title = text(input.title, 'the title', LIMITS.title);
  const body = text(input.body, 'the comment', LIMITS.comment);
  await requireImage(store, input.repository);
  const reference = input.reference?.trim() || null;
  if (reference) await requireSubject(store, input.repository, reference);
  const thread = await db.thread.create({
    data: {
      id: randomUUID(),
      repository: input.repository,
      reference,
      title,
      authorId: author.id,
      comments: { create: { id: randomUUID(), authorId: author.id, body } },
    },
    include: { comments: true },
  });
  const first = thread.comments[0]!;
  return {
    id: thread.id,
    repository: thread.repository,
    reference,
    title,
    author: author.handle,
    createdAt: thread.createdAt,
    comments: [{ id: first.id, author: author.handle, body, createdAt: first.createdAt }],
  };
}

export async function addComment(
  db: Database,
  author: AccountView,
  input: { threadId: string; body: string },
): Promise<CommentView> {
  const body = text(input.body, 'the comment', LIMITS.comment);
  try {
    const comment = await db.comment.create({
      data: { id: randomUUID(), threadId: String(input.threadId), authorId: author.id, body },
    });
    return { id: comment.id, author: author.handle, body, createdAt: comment.createdAt };
  } catch (error) {
    // The thread's foreign key: it was never there, or was removed.
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2003')
      throw new PlatformError('NOT_FOUND', `there is no thread ${input.threadId}`);
    throw error;
  }
}

function recordingView(r: {
  id: string;
  repository: string;
  subjectDigest: string;
  reference: string | null;
  title: string;
  filename: string;
  mediaType: string;
  size: number;
  createdAt: Date;
  author: { handle: string };
}): RecordingView {
  return {
    id: r.id,
    repository: r.repository,
    subjectDigest: r.subjectDigest,
    reference: r.reference,
    title: r.title,
    filename: r.filename,
    mediaType: r.mediaType,
    size: r.size,
    author: r.author.handle,
    createdAt: r.createdAt,
    downloadUrl: `/api/recordings/${r.id}`,
  };
}

export async function listRecordings(db: Database, repository: string): Promise<RecordingView[]> {
  return (await listRecordingsOf(db, [repository])).get(repository) ?? [];
}

export const RECORDINGS_PER_IMAGE = 100;

/** listRecordings for many images in one query. */
export async function listRecordingsOf(db: Database, repositories: string[]): Promise<Map<string, RecordingView[]>> {
  const rows = await db.recording.findMany({
    where: repositories.length === 1 ? { repository: repositories[0]! } : { repository: { in: repositories } },
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
    ...(repositories.length === 1 ? { take: RECORDINGS_PER_IMAGE } : {}),
    include: withAuthor,
  });
  const byRepository = new Map<string, RecordingView[]>(repositories.map((r) => [r, []]));
  for (const row of rows) {
    const list = byRepository.get(row.repository)!;
    if (list.length < RECORDINGS_PER_IMAGE) list.push(recordingView(row));
  }
  return byRepository;
}

export async function findRecording(
  db: Database,
  id: string,
): Promise<(RecordingView & { blobDigest: string }) | undefined> {
  const row = await db.recording.findUnique({ where: { id }, include: withAuthor });
  return row ? { ...recordingView(row), blobDigest: row.blobDigest } : undefined;
}

/** A recording's file name: one path segment of printable characters. */
function recordingFilename(name: unknown): string {
  const filename = text(name, 'the file name', LIMITS.filename);
  const unprintable = [...filename].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
  if (
    filename !== path.basename(filename) ||
    filename === '.' ||
    filename === '..' ||
    unprintable ||
    /[/\\]/.test(filename)
  ) {
    throw new PlatformError(
      'BAD_USER_INPUT',
      `"${filename}" is not a file name: give a plain name like session.webm, without folders`,
    );
  }
  return filename;
}

/**
 * Stores a recording of a session with the model as an OCI artifact referring to the image's
 * manifest (`subject`), then indexes it for the hub and the referrers API.
 */
export async function attachRecording(
  db: Database,
  store: CheckpointStore,
  author: AccountView,
  input: {
    repository: string;
    reference: string;
    title: string;
    filename: string;
    mediaType?: string;
    content: Buffer;
  },
): Promise<RecordingView> {
  const title = text(input.title, 'the title', LIMITS.title);
  const filename = recordingFilename(input.filename);
  const mediaType =
    (input.mediaType?.split(';')[0]?.trim().toLowerCase() ||
      MEDIA_TYPES_BY_EXTENSION[path.extname(filename).toLowerCase()]) ??
    'application/octet-stream';
  if (!MEDIA_TYPE.test(mediaType))
    throw new PlatformError('BAD_USER_INPUT', `"${mediaType}" is not a media type like text/plain or video/webm`);
  const content = input.content;
  if (content.length === 0) throw new PlatformError('BAD_USER_INPUT', 'the recording is empty');
  if (content.length > LIMITS.recordingBytes)
    throw new PlatformError(
      'BAD_USER_INPUT',
      `the recording is ${content.length} bytes; at most ${LIMITS.recordingBytes} (16 MiB): link a longer video from a comment instead`,
    );
  // Decided by the whole content, whatever the name: pickles (bare, zipped, compressed), object arrays.
  const refusal = await scanBytes(filename, content);
  if (refusal) throw new PlatformError('BAD_USER_INPUT', refusal);
  await requireImage(store, input.repository);
  const subject = await requireSubject(store, input.repository, input.reference);

  const pushed = await pushRecording(store, input.repository, {
    subject,
    filename,
    mediaType,
    content,
    annotations: {
      [RECORDING_ANNOTATION.name]: title,
      [RECORDING_ANNOTATION.author]: author.handle,
      [RECORDING_ANNOTATION.created]: new Date().toISOString(),
    },
  });
  const row = await db.recording.create({
    data: {
      id: randomUUID(),
      repository: input.repository,
      manifestDigest: pushed.manifestDigest,
      subjectDigest: subject.digest,
      reference: input.reference === subject.digest ? null : input.reference,
      manifestSize: pushed.manifestSize,
      blobDigest: pushed.blobDigest,
      title,
      filename,
      mediaType,
      size: content.length,
      authorId: author.id,
    },
    include: withAuthor,
  });
  return recordingView(row);
}

/** The referrers of a manifest, as the OCI referrers API lists them (descriptors with artifact type and annotations): recordings and feedback datasets. */
export async function listReferrers(
  db: Database,
  repository: string,
  digest: string,
  artifactType?: string,
): Promise<Descriptor[]> {
  const wanted = (type: string) => !artifactType || artifactType === type;
  const recordings = wanted(RECORDING_ARTIFACT)
    ? await db.recording.findMany({
        where: { repository, subjectDigest: digest },
        orderBy: { createdAt: 'asc' },
        include: withAuthor,
      })
    : [];
  const datasets = wanted(DATASET_ARTIFACT)
    ? await db.dataset.findMany({ where: { repository, subjectDigest: digest }, orderBy: { createdAt: 'asc' } })
    : [];
  return [
    ...recordings.map((r) => ({
      mediaType: OCI_MANIFEST,
      digest: r.manifestDigest,
      size: r.manifestSize,
      artifactType: RECORDING_ARTIFACT,
      annotations: {
        [RECORDING_ANNOTATION.name]: r.title,
        [RECORDING_ANNOTATION.author]: r.author.handle,
        [RECORDING_ANNOTATION.created]: r.createdAt.toISOString(),
      },
    })),
    ...datasets.map((d) => ({
      mediaType: OCI_MANIFEST,
      digest: d.digest,
      size: d.manifestSize,
      artifactType: DATASET_ARTIFACT,
      annotations: {
        [DATASET_ANNOTATION.records]: String(d.records),
        [DATASET_ANNOTATION.preferences]: String(d.preferences),
        [DATASET_ANNOTATION.labelled]: String(d.labelled),
        [DATASET_ANNOTATION.transcripts]: String(d.transcripts),
        ...(d.asOf ? { [DATASET_ANNOTATION.asOf]: d.asOf.toISOString() } : {}),
      },
    })),
  ];
}

/** Flags an image (or one checkpoint of it) for the operators; one report per person and checkpoint, a second one updates it. */
export async function reportImage(
  db: Database,
  store: CheckpointStore,
  reporter: AccountView,
  input: { repository: string; reference?: string | null; reason: string },
): Promise<ReportView> {
  const reason = text(input.reason, 'the reason', LIMITS.reason);
  await requireImage(store, input.repository);
  const reference = input.reference?.trim() || null;
  const subjectDigest = reference ? (await requireSubject(store, input.repository, reference)).digest : '';
  const report = await db.report.upsert({
    where: {
      reporterId_repository_subjectDigest: { reporterId: reporter.id, repository: input.repository, subjectDigest },
    },
    create: {
      id: randomUUID(),
      repository: input.repository,
      subjectDigest,
      reference,
      reason,
      reporterId: reporter.id,
    },
    update: { reason, reference },
  });
  return {
    id: report.id,
    repository: report.repository,
    reference: report.reference,
    reason: report.reason,
    reporter: reporter.handle,
    createdAt: report.createdAt,
  };
}

export async function listReports(
  db: Database,
  options: { repository?: string; limit?: number } = {},
): Promise<ReportView[]> {
  const rows = await db.report.findMany({
    where: options.repository ? { repository: options.repository } : {},
    orderBy: { createdAt: 'desc' },
    take: Math.min(Math.max(options.limit ?? 50, 1), 500),
    include: { reporter: { select: { handle: true } } },
  });
  return rows.map((r) => ({
    id: r.id,
    repository: r.repository,
    reference: r.reference,
    reason: r.reason,
    reporter: r.reporter.handle,
    createdAt: r.createdAt,
  }));
}

/**
 * Forks the checkpoint `from` (`repo:tag`) to the branch `to` (`repo:branch`) as `account`: no bytes
 * are copied. Trainers fork into their own namespace, operators anywhere. `keepExisting` refuses a
 * branch that exists already, where a form should not silently move someone's work.
 */
export async function forkImage(
  db: Database,
  store: CheckpointStore,
  account: AccountView,
  from: string,
  to: string,
  options: { keepExisting?: boolean } = {},
): Promise<{ repository: string; branch: string; digest: string }> {
  const source = parseReference(from);
  const target = parseReference(to);
  assertOwnRepository(account, target.repo, 'you can fork', { operatorsAnywhere: true });
  // A paid breed forks only for those who may download it, and the fork keeps its terms.
  await assertMayRead(db, { role: account.role, account }, source.repo, 'fork');
  if (options.keepExisting && (await store.getManifest(target.repo, target.reference))) {
    throw new PlatformError('CONFLICT', `${target.repo}:${target.reference} exists already: choose another name`);
  }
  // Recorded before any content arrives, so the fork is never readable on looser terms.
  await inheritTerms(db, source.repo, target.repo);
  const digest = await forkCheckpoint(store, source, { repo: target.repo, branch: target.reference });
  return { repository: target.repo, branch: target.reference, digest };
}
