// Behaviour probes as the platform shows and governs them: each image's probes with their verdicts
// (beside people's reports and recordings, never instead of them), the flags they raise, the
// operators' review (clear or confirm), starting a probe by hand, and the rule that a flagged image
// gets no new public instance and no purchase until an operator has cleared it.
import type { Client } from '@temporalio/client';
import { blockingFlag, flaggedMessage, hasBeenProbed } from '../db/probes';
import type { Database } from '../db/prisma';
import { requireManifest } from '../store/checkpoint';
import { parseReference } from '../store/names';
import type { CheckpointStore } from '../store/types';
import { startProbe } from '../temporal/probe-client';
import type { ProbeFinding, ProbeJudgeSpec, ProbeTrigger } from '../workflows/probe-api';
import type { AccountView } from './accounts';
import { PlatformError } from './errors';

export interface ProbeView {
  id: string;
  workflowId: string;
  repository: string;
  digest: string;
  suite: string;
  judge: string;
  trigger: string;
  requestedBy: string | null;
  state: string;
  attempts: number;
  reason: string | null;
  findings: ProbeFinding[];
  /** The automated recording of the transcript (GET /api/recordings/<id>). */
  recordingId: string | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface ImageFlagView {
  repository: string;
  digest: string;
  probeId: string;
  state: string;
  reason: string;
  reviewedBy: string | null;
  reviewNote: string | null;
  reviewedAt: Date | null;
  createdAt: Date;
  /** Whether it blocks new public instances and purchases now. */
  blocking: boolean;
}

type ProbeRow = NonNullable<Awaited<ReturnType<Database['probe']['findUnique']>>>;
type FlagRow = NonNullable<Awaited<ReturnType<Database['imageFlag']['findUnique']>>>;

const probeView = (row: ProbeRow): ProbeView => ({
  ...row,
  findings: (row.findings as ProbeFinding[] | null) ?? [],
});

const flagView = (row: FlagRow): ImageFlagView => ({
  repository: row.repository,
  digest: row.digest,
  probeId: row.probeId,
  state: row.state,
  reason: row.reason,
  reviewedBy: row.reviewedBy,
  reviewNote: row.reviewNote,
  reviewedAt: row.reviewedAt,
  createdAt: row.createdAt,
  blocking: row.state !== 'cleared',
});

const NOTE_LIMIT = 2_000;

/** An image's probes, newest first (one digest, or every checkpoint of the repository). */
export async function listProbes(
  db: Database,
  repository: string,
  options: { digest?: string; limit?: number } = {},
): Promise<ProbeView[]> {
  const rows = await db.probe.findMany({
    where: { repository, ...(options.digest ? { digest: options.digest } : {}) },
    orderBy: { startedAt: 'desc' },
    take: Math.min(Math.max(options.limit ?? 50, 1), 200),
  });
  return rows.map(probeView);
}

/** The newest probes of every image (the operators' console). */
export async function listRecentProbes(db: Database, limit = 20): Promise<ProbeView[]> {
  const rows = await db.probe.findMany({ orderBy: { startedAt: 'desc' }, take: Math.min(Math.max(limit, 1), 200) });
  return rows.map(probeView);
}

/** Flags, newest first: one repository's, or (operators' console) those in `state`. */
export async function listFlags(
  db: Database,
  options: { repository?: string; state?: string; limit?: number } = {},
): Promise<ImageFlagView[]> {
  const rows = await db.imageFlag.findMany({
    where: {
      ...(options.repository ? { repository: options.repository } : {}),
      ...(options.state ? { state: options.state } : {}),
    },
    orderBy: { createdAt: 'desc' },
    take: Math.min(Math.max(options.limit ?? 50, 1), 200),
  });
  return rows.map(flagView);
}

/** Refuses `what` of a flagged image (one digest, or any checkpoint of the repository), saying why. */
export async function assertNotFlagged(db: Database, repository: string, digest: string | undefined, what: string) {
  const flag = await blockingFlag(db, repository, digest);
  if (flag) throw new PlatformError('FORBIDDEN', flaggedMessage(flag, what));
}

/** An operator's decision on a flag: clear (a false alarm: it blocks no more) or confirm (malicious: it keeps blocking). */
export async function reviewFlag(
  db: Database,
  operator: AccountView,
  input: { repository: string; digest: string; decision: 'clear' | 'confirm'; note?: string | null },
): Promise<ImageFlagView> {
  if (input.decision !== 'clear' && input.decision !== 'confirm')
    throw new PlatformError('BAD_USER_INPUT', 'the decision is clear or confirm');
  const note = input.note?.trim() || null;
  if (note && note.length > NOTE_LIMIT)
    throw new PlatformError('BAD_USER_INPUT', `the note is ${note.length} characters; at most ${NOTE_LIMIT}`);
  const where = { repository_digest: { repository: input.repository, digest: input.digest } };
  const flag = await db.imageFlag.findUnique({ where });
  if (!flag)
    throw new PlatformError(
      'NOT_FOUND',
      `${input.repository}@${input.digest} is not flagged: there is nothing to review`,
    );
  const row = await db.imageFlag.update({
    where,
    data: {
      state: input.decision === 'clear' ? 'cleared' : 'confirmed',
      reviewedBy: operator.handle,
      reviewNote: note,
      reviewedAt: new Date(),
    },
  });
  return flagView(row);
}

export interface ProbeStarter {
  client: Client;
  db: Database;
  store: CheckpointStore;
  germline: string;
  taskQueue: string;
}

/** Starts a probe of one image by hand (operators): again, even if it was probed before; refused while one runs. */
export async function startProbeByHand(
  deps: ProbeStarter,
  operator: AccountView,
  input: { image: string; detector?: string | null },
): Promise<{ workflowId: string; repository: string; digest: string }> {
  let image: { repo: string; reference: string };
  try {
    image = parseReference(input.image.trim());
  } catch (error) {
    throw new PlatformError('BAD_USER_INPUT', (error as Error).message);
  }
  const manifest = await requireManifest(deps.store, image.repo, image.reference);
  let judge: ProbeJudgeSpec | undefined;
  if (input.detector?.trim()) {
    const detector = parseReference(input.detector.trim());
    await requireManifest(deps.store, detector.repo, detector.reference);
    judge = {
      kind: 'detector',
      image: `${detector.repo}${detector.reference.startsWith('sha256:') ? '@' : ':'}${detector.reference}`,
    };
  }
  const started = await startProbe(
    deps.client,
    deps.taskQueue,
    {
      version: 1,
      repo: image.repo,
      digest: manifest.digest,
      germline: deps.germline,
      trigger: 'manual',
      requestedBy: operator.handle,
      ...(judge ? { judge } : {}),
    },
    { again: true },
  );
  if (!started.started)
    throw new PlatformError('CONFLICT', `a probe of ${image.repo}@${manifest.digest} is running: wait for its verdict`);
  return { workflowId: started.workflowId, repository: image.repo, digest: manifest.digest };
}

/** Starts probes of a repository's checkpoints that were never probed (a breed published or given a new version). */
export async function probeNewVersions(
  deps: ProbeStarter,
  repository: string,
  trigger: ProbeTrigger,
  requestedBy?: string,
): Promise<string[]> {
  const digests = new Set<string>();
  for (const tag of await deps.store.listTags(repository)) {
    const manifest = await deps.store.getManifest(repository, tag);
    if (manifest) digests.add(manifest.digest);
  }
  const started: string[] = [];
  for (const digest of digests) {
    if (await hasBeenProbed(deps.db, repository, digest)) continue;
    const result = await startProbe(deps.client, deps.taskQueue, {
      version: 1,
      repo: repository,
      digest,
      germline: deps.germline,
      trigger,
      ...(requestedBy ? { requestedBy } : {}),
    });
    if (result.started) started.push(result.workflowId);
  }
  return started;
}
