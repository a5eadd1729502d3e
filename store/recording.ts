// The recording artifact: a file of a session with a model (a person's upload, or a probe's
// transcript) stored beside the image it is about, as an OCI artifact whose `subject` is the image's
// manifest, so the referrers API lists it and any OCI client copies it with the image. One home for
// its format: the hub's uploads and the probes' transcripts both push through here.
import { createHash } from 'node:crypto';
import { type CheckpointStore, type Descriptor, type ImageManifest, OCI_MANIFEST } from './types';

/** The artifact type of a recording's manifest, for referrers listings filtered by type. */
export const RECORDING_ARTIFACT = 'application/vnd.computatrum.recording.v1';

export const RECORDING_ANNOTATION = {
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  author: 'io.computatrum.recording.author',
  name: 'io.computatrum.recording.name',
  /** "true" on a recording no person made (a behaviour probe's transcript). */
  automated: 'io.computatrum.recording.automated',
} as const;

/** The OCI empty config (`{}`), which artifacts without a config of their own use. */
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface PushedRecording {
  manifestDigest: string;
  manifestSize: number;
  blobDigest: string;
}

/**
 * Pushes `content` as a recording of the image manifest `subject` in `repository`: its file, the
 * empty config and the manifest with `annotations` (the name, author and time, and any of the
 * pusher's own). The same inputs push the same bytes, so a retry stores nothing twice.
 */
export async function pushRecording(
  store: CheckpointStore,
  repository: string,
  input: {
    subject: { mediaType: string; digest: string; bytes: Buffer };
    filename: string;
    mediaType: string;
    content: Buffer;
    annotations: Record<string, string>;
  },
): Promise<PushedRecording> {
  const blob: Descriptor = {
    mediaType: input.mediaType,
    digest: sha256(input.content),
    size: input.content.length,
    annotations: { [RECORDING_ANNOTATION.title]: input.filename },
  };
  const config: Descriptor = {
    mediaType: EMPTY_CONFIG.mediaType,
    digest: sha256(EMPTY_CONFIG.bytes),
    size: EMPTY_CONFIG.bytes.length,
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: RECORDING_ARTIFACT,
    config,
    layers: [blob],
    subject: { mediaType: input.subject.mediaType, digest: input.subject.digest, size: input.subject.bytes.length },
    annotations: input.annotations,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await store.putBlobBytes(repository, EMPTY_CONFIG.bytes, config.digest);
  await store.putBlobBytes(repository, input.content, blob.digest);
  const manifestDigest = await store.putManifest(repository, bytes, OCI_MANIFEST);
  return { manifestDigest, manifestSize: bytes.length, blobDigest: blob.digest };
}
