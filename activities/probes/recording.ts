// A probe's transcript as an automated recording of the image: an OCI artifact of the recording type
// whose `subject` is the image's manifest (so `GET /v2/<repo>/referrers/<digest>` lists it beside
// people's recordings, and any OCI client copies it), annotated as automated with the suite and the
// verdict, and a Recording row so that the hub lists it. Its author is the probes' system account,
// which nobody can sign in as.
import type { Database } from '../../db/prisma';
import { requireManifest } from '../../store/checkpoint';
import { pushRecording, RECORDING_ANNOTATION } from '../../store/recording';
import type { CheckpointStore } from '../../store/types';
import type { ProbeTranscript, ProbeVerdict } from '../../workflows/probe-api';

/** A probe's annotations beside the recording's own (store/recording.ts). */
export const PROBE_ANNOTATION = {
  suite: 'io.computatrum.probe.suite',
  verdict: 'io.computatrum.probe.verdict',
  judge: 'io.computatrum.probe.judge',
} as const;

/**
 * The account automated recordings are authored by. Its handle has a dot, which sign-up refuses
 * (ACCOUNT_HANDLE), so no person can take it; its password hash is no hash, so no one signs in as it.
 */
export const PROBE_ACCOUNT = {
  id: 'system-probes',
  handle: 'computatrum.probes',
  email: 'probes@computatrum.invalid',
  passwordHash: '!',
  role: 'system',
} as const;

export async function ensureProbeAccount(db: Database): Promise<void> {
  await db.account.upsert({ where: { id: PROBE_ACCOUNT.id }, create: { ...PROBE_ACCOUNT }, update: {} });
}

/**
 * Pushes the transcript beside the image and indexes it. Idempotent: the recording's id is the
 * probe's, and its bytes depend only on the inputs, so a retried activity stores the same artifact.
 */
export async function recordProbeTranscript(
  deps: { db: Database; store: CheckpointStore },
  input: { probeId: string; transcript: ProbeTranscript; verdict: ProbeVerdict; recordedAt: string },
): Promise<{ recordingId: string; manifestDigest: string }> {
  const { db, store } = deps;
  const { transcript, verdict } = input;
  const subject = await requireManifest(store, transcript.repo, transcript.digest);
  const filename = `probe-${transcript.suite}.json`;
  const content = Buffer.from(
    `${JSON.stringify({ automated: true, probe: input.probeId, ...transcript, verdict }, null, 2)}\n`,
  );
  const title = `Automated probe (${transcript.suite}): ${verdict.verdict}`;
  const pushed = await pushRecording(store, transcript.repo, {
    subject,
    filename,
    mediaType: 'application/json',
    content,
    annotations: {
      [RECORDING_ANNOTATION.name]: title,
      [RECORDING_ANNOTATION.author]: PROBE_ACCOUNT.handle,
      [RECORDING_ANNOTATION.created]: input.recordedAt,
      [RECORDING_ANNOTATION.automated]: 'true',
      [PROBE_ANNOTATION.suite]: transcript.suite,
      [PROBE_ANNOTATION.verdict]: verdict.verdict,
      [PROBE_ANNOTATION.judge]: verdict.judge,
    },
  });
  await ensureProbeAccount(db);
  const row = {
    repository: transcript.repo,
    manifestDigest: pushed.manifestDigest,
    subjectDigest: subject.digest,
    reference: null,
    manifestSize: pushed.manifestSize,
    blobDigest: pushed.blobDigest,
    title,
    filename,
    mediaType: 'application/json',
    size: content.length,
    authorId: PROBE_ACCOUNT.id,
  };
  await db.recording.upsert({ where: { id: input.probeId }, create: { id: input.probeId, ...row }, update: row });
  return { recordingId: input.probeId, manifestDigest: pushed.manifestDigest };
}
