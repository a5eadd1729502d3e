// The checkpoint store: OCI content (blobs and manifests by sha256 digest, tags per repository),
// behind one interface with two backends: an OCI Image Layout directory (layout.ts, the embedded
// default) and any OCI Distribution registry over HTTP (registry.ts).
import type { Readable } from 'node:stream';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** CNCF ModelPack: the artifact type of a model manifest and the media type of its config. */
export const MODEL_ARTIFACT = 'application/vnd.cncf.model.manifest.v1+json';
export const MODEL_CONFIG = 'application/vnd.cncf.model.config.v1+json';
/** One raw (uncompressed) layer per file. */
export const MODEL_WEIGHT_LAYER = 'application/vnd.cncf.model.weight.v1.raw';
export const MODEL_FILE_LAYER = 'application/vnd.cncf.model.file.v1.raw';
export const FILEPATH_ANNOTATION = 'org.cncf.model.filepath';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface StoredManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive; undefined: to the end. */
  end?: number;
}

/** A failure a user can act on; `code` follows the OCI Distribution error codes where one fits. */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code:
      | 'BLOB_UNKNOWN'
      | 'MANIFEST_UNKNOWN'
      | 'NAME_UNKNOWN'
      | 'DIGEST_INVALID'
      | 'TAG_IMMUTABLE'
      | 'NAME_INVALID'
      | 'UNREACHABLE'
      | 'DENIED',
    message: string,
  ) {
    super(message);
  }
}

export interface CheckpointStore {
  /** Where the store is, for messages (a folder or a registry URL). */
  readonly location: string;
  /** True when `repo` can serve the blob (the layout store shares blobs between repositories). */
  hasBlob(repo: string, digest: string): Promise<boolean>;
  /** The blob's size in bytes, or undefined when `repo` cannot serve it. */
  blobSize(repo: string, digest: string): Promise<number | undefined>;
  /**
   * Stores the file as the blob `digest` in `repo`, verifying its sha256 on the way in; nothing is
   * written when the blob is there already. Returns the bytes written (0 for a blob already held).
   */
  putBlobFile(repo: string, file: string, digest: string, size: number): Promise<{ written: number }>;
  /** Stores small content (configs, cards) the same way. */
  putBlobBytes(repo: string, bytes: Buffer, digest: string): Promise<{ written: number }>;
  /** Makes a blob of `fromRepo` available in `repo` without copying its bytes. */
  mountBlob(repo: string, fromRepo: string, digest: string): Promise<void>;
  /** Reads a blob, whole or a byte range. Throws StoreError BLOB_UNKNOWN when absent. */
  openBlob(repo: string, digest: string, range?: ByteRange): Promise<{ stream: Readable; size: number }>;
  /** Stores a manifest under its digest and, when `tag` is given, points the tag at it. Returns its digest. */
  putManifest(repo: string, manifest: Buffer, mediaType: string, tag?: string): Promise<string>;
  /** A manifest by tag or by digest; undefined when unknown. */
  getManifest(repo: string, reference: string): Promise<StoredManifest | undefined>;
  /** The tags of a repository, sorted; empty for an unknown repository. */
  listTags(repo: string): Promise<string[]>;
  /** Every repository in the store, sorted. */
  listRepositories(): Promise<string[]>;
}
