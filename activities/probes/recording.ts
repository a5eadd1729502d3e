// A probe's transcript as an automated recording of the image: an OCI artifact of the recording type
// whose `subject` is the image's manifest (so `GET /v2/<repo>/referrers/<digest>` lists it beside
// people's recordings, and any OCI client copies it), annotated as automated with the suite and the
// verdict, and a Recording row so that the hub lists it. Its author is the probes' system account,
// which nobody can sign in as.
import { createHash } from 'node:crypto';
import type { Database } from '../../db/prisma';
import { requireManifest } from '../../store/checkpoint';
import { type Descriptor, type ImageManifest, OCI_MANIFEST, type CheckpointStore } from '../../store/types';
import type { ProbeTranscript, ProbeVerdict } from '../../workflows/probe-api';

/** The recording artifact type platform/hub.ts lists (RECORDING_ARTIFACT): a probe's is a recording too. */
export const RECORDING_ARTIFACT = 'application/vnd.computatrum.recording.v1';

export const PROBE_ANNOTATION = {
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  name: 'io.computatrum.recording.name',
  author: 'io.computatrum.recording.author',
  automated: 'io.computatrum.recording.automated',
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

const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

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
  const blob: Descriptor = {
    mediaType: 'application/json',
    digest: sha256(content),
    size: content.length,
    annotations: { [PROBE_ANNOTATION.title]: filename },
  };
  const config: Descriptor = {
    mediaType: EMPTY_CONFIG.mediaType,
    digest: sha256(EMPTY_CONFIG.bytes),
    size: EMPTY_CONFIG.bytes.length,
  };
  const title = `Automated probe (${transcript.suite}): ${verdict.verdict}`;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: RECORDING_ARTIFACT,
    config,
    layers: [blob],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
    annotations: {
      [PROBE_ANNOTATION.name]: title,
      [PROBE_ANNOTATION.author]: PROBE_ACCOUNT.handle,
      [PROBE_ANNOTATION.created]: input.recordedAt,
      [PROBE_ANNOTATION.automated]: 'true',
      [PROBE_ANNOTATION.suite]: transcript.suite,
      [PROBE_ANNOTATION.verdict]: verdict.verdict,
      [PROBE_ANNOTATION.judge]: verdict.judge,
    },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await store.putBlobBytes(transcript.repo, EMPTY_CONFIG.bytes, config.digest);
  await store.putBlobBytes(transcript.repo, content, blob.digest);
  const manifestDigest = await store.putManifest(transcript.repo, bytes, OCI_MANIFEST);
  await ensureProbeAccount(db);
  const row = {
    repository: transcript.repo,
    manifestDigest,
    subjectDigest: subject.digest,
    reference: null,
    manifestSize: bytes.length,
    blobDigest: blob.digest,
    title,
    filename,
    mediaType: 'application/json',
    size: content.length,
    authorId: PROBE_ACCOUNT.id,
  };
  await db.recording.upsert({ where: { id: input.probeId }, create: { id: input.probeId, ...row }, update: row });
  return { recordingId: input.probeId, manifestDigest };
}
