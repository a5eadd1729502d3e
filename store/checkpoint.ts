// Checkpoints as CNCF ModelPack artifacts: publishing a folder (one raw layer per file, lineage in
// annotations), tagging (gpc-* immutable, branches move), forking (no bytes copied), and the
// safety checks that refuse dangerous or broken files (scan.ts) and paths that escape the folder.
import { createHash } from 'node:crypto';
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { hashPool } from './hashing';
import { LayoutStore } from './layout';
import { assertRepository, assertTag } from './names';
import { scanFile } from './scan';
import {
  type CheckpointStore,
  type Descriptor,
  FILEPATH_ANNOTATION,
  type ImageManifest,
  MODEL_ARTIFACT,
  MODEL_CONFIG,
  MODEL_FILE_LAYER,
  MODEL_WEIGHT_LAYER,
  OCI_MANIFEST,
  StoreError,
} from './types';

export const ANNOTATION = {
  created: 'org.opencontainers.image.created',
  parent: 'io.computatrum.parent',
  trainingRun: 'io.computatrum.training-run',
  metrics: 'io.computatrum.metrics',
  /** The feedback datasets a checkpoint learned from: a JSON array of `repo@digest`. */
  datasets: 'io.computatrum.datasets',
  nickname: 'io.computatrum.nickname',
} as const;

/** Daily tags: once written, they never point anywhere else. */
export const IMMUTABLE_TAG = /^gpc-\d{4}-\d{2}-\d{2}$/;

const WEIGHT_EXTENSIONS = new Set(['.safetensors', '.gguf', '.onnx']);

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface PublishOptions {
  /** Branch or daily tag to point at the new manifest. */
  tag?: string;
  /** Digest of the checkpoint this one was trained from. */
  parent?: string;
  /** The feedback datasets it learned from (`repo@digest`), named in its config as in its annotations. */
  datasets?: string[];
  annotations?: Record<string, string>;
  /** Pickle files can run code when loaded, so they are refused unless explicitly allowed (safetensors are validated regardless). */
  allowPickle?: boolean;
  /** When it was made (ISO 8601); defaults to now. */
  created?: string;
  onFile?: (file: string, written: number) => void;
}

export interface Published {
  digest: string;
  manifest: ImageManifest;
  /** Total size of the files. */
  size: number;
  /** Blob bytes actually written: 0 for files the store already had. */
  written: number;
}

/** The files of a checkpoint folder, as relative POSIX paths, refusing links that leave it, dangle or loop. */
export async function checkpointFiles(dir: string): Promise<string[]> {
  const root = await realpath(dir).catch((error: NodeJS.ErrnoException) => {
    throw new CheckpointError(
      error.code === 'ELOOP'
        ? `checkpoint folder ${dir} is a symbolic link loop: give the folder itself`
        : `checkpoint folder ${dir} does not exist`,
    );
  });
  if (!(await lstat(root)).isDirectory())
    throw new CheckpointError(`${dir} is not a folder: push the folder that holds the checkpoint's files`);
  const files: string[] = [];
  async function walk(relative: string): Promise<void> {
    for (const entry of await readdir(path.join(root, relative), { withFileTypes: true })) {
      const child = path.posix.join(relative, entry.name);
      if (entry.isSymbolicLink()) {
        const target = await linkTarget(root, child);
        if ((await lstat(target)).isFile()) files.push(child);
      } else if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) files.push(child);
    }
  }
  await walk('');
  if (files.length === 0) throw new CheckpointError(`checkpoint folder ${dir} has no files`);
  return files.sort();
}

/** Where the link `child` finally points, refused when that is nowhere, a loop, or outside the folder. */
async function linkTarget(root: string, child: string): Promise<string> {
  const link = path.join(root, child);
  const target = await realpath(link).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ELOOP')
      throw new CheckpointError(
        `${child} is a symbolic link loop (${link}): replace it with the file it should point to, or remove it, and push again`,
      );
    if (error.code === 'ENOENT') {
      const points = await readlink(link).catch(() => '?');
      throw new CheckpointError(
        `${child} links to ${points}, which does not exist: copy the file in, or remove the link, and push again`,
      );
    }
    throw error;
  });
  if (!isInside(root, target)) {
    throw new CheckpointError(`${child} links to ${target}, outside the checkpoint folder: copy the file in instead`);
  }
  return target;
}

function isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/**
 * A path from a manifest made safe to write under `dir`: relative, no `..`, no drive or backslash
 * tricks. A checkpoint from someone else must never write outside the folder it is pulled into.
 */
export function safeTargetPath(dir: string, filepath: string): string {
  const normalized = path.posix.normalize(filepath);
  if (
    filepath === '' ||
    filepath.includes('\\') ||
    filepath.includes('\0') ||
    path.posix.isAbsolute(filepath) ||
    normalized.split('/').includes('..') ||
    normalized === '.'
  ) {
    throw new CheckpointError(`refused file path "${filepath}": it escapes the checkpoint folder`);
  }
  return path.join(dir, ...normalized.split('/'));
}

/** Refuses a file the content scan finds dangerous (pickles, unless allowed) or broken (safetensors). */
async function assertPublishable(file: string, relative: string, allowPickle: boolean): Promise<void> {
  const refusal = await scanFile(file, relative, { allowPickle });
  if (refusal) throw new CheckpointError(refusal);
}

function layerMediaType(file: string): string {
  return WEIGHT_EXTENSIONS.has(path.extname(file).toLowerCase()) ? MODEL_WEIGHT_LAYER : MODEL_FILE_LAYER;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Publishes the files of `dir` as one checkpoint manifest in `repo`. */
export async function publishCheckpoint(
  store: CheckpointStore,
  repo: string,
  dir: string,
  options: PublishOptions = {},
): Promise<Published> {
  assertRepository(repo);
  if (options.tag !== undefined) assertTag(options.tag);
  const root = await realpath(dir).catch(() => dir);
  const files = await checkpointFiles(root);
  for (const file of files) await assertPublishable(path.join(root, file), file, options.allowPickle === true);

  // Layers in file order; files go to the store several at once (the hash pool bounds the work).
  const layers = await Promise.all(
    files.map(async (file): Promise<Descriptor & { written: number }> => {
      const absolute = path.join(root, file);
      let digest: string, size: number, written: number;
      if (store instanceof LayoutStore) {
        ({ digest, size, written } = await store.ingestFile(absolute));
      } else {
        ({ digest, size } = await hashPool().hash(absolute));
        ({ written } = await store.putBlobFile(repo, absolute, digest, size));
      }
      options.onFile?.(file, written);
      return { mediaType: layerMediaType(file), digest, size, annotations: { [FILEPATH_ANNOTATION]: file }, written };
    }),
  );

  const created = options.created ?? new Date().toISOString();
  const config = Buffer.from(
    JSON.stringify({
      descriptor: { name: repo, family: 'computatrum', createdAt: created },
      config: { format: layers.some((l) => l.mediaType === MODEL_WEIGHT_LAYER) ? 'safetensors' : 'files' },
      modelfs: { type: 'layers', diffIds: layers.map((l) => l.digest) },
      ...(options.datasets?.length ? { [ANNOTATION.datasets]: options.datasets } : {}),
    }),
  );
  const configDigest = sha256(config);
  const configWritten = (await store.putBlobBytes(repo, config, configDigest)).written;

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: MODEL_ARTIFACT,
    config: { mediaType: MODEL_CONFIG, digest: configDigest, size: config.length },
    layers: layers.map(({ written: _written, ...descriptor }) => descriptor),
    annotations: {
      [ANNOTATION.created]: created,
      ...(options.parent ? { [ANNOTATION.parent]: options.parent } : {}),
      ...options.annotations,
    },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  if (options.tag !== undefined) await assertTagMayPoint(store, repo, options.tag, sha256(bytes));
  const digest = await store.putManifest(repo, bytes, OCI_MANIFEST, options.tag);
  return {
    digest,
    manifest,
    size: layers.reduce((sum, l) => sum + l.size, 0),
    written: layers.reduce((sum, l) => sum + l.written, configWritten),
  };
}

/** Refuses to move an immutable (gpc-*) tag; the same digest again is fine. */
export async function assertTagMayPoint(
  store: CheckpointStore,
  repo: string,
  tag: string,
  digest: string,
): Promise<void> {
  if (!IMMUTABLE_TAG.test(tag)) return;
  const current = await store.getManifest(repo, tag);
  if (current && current.digest !== digest) {
    throw new StoreError(
      'TAG_IMMUTABLE',
      `${repo}:${tag} already points at ${current.digest}; daily gpc tags never move. Publish under a branch instead`,
    );
  }
}

/** Points `tag` of `repo` at the manifest `reference` already in `repo`. */
export async function tagCheckpoint(
  store: CheckpointStore,
  repo: string,
  reference: string,
  tag: string,
): Promise<string> {
  assertTag(tag);
  const manifest = await requireManifest(store, repo, reference);
  await assertTagMayPoint(store, repo, tag, manifest.digest);
  return store.putManifest(repo, manifest.bytes, manifest.mediaType, tag);
}

/** A branch of `toRepo` pointing at an existing checkpoint: blobs are mounted, never copied. */
export async function forkCheckpoint(
  store: CheckpointStore,
  from: { repo: string; reference: string },
  to: { repo: string; branch: string },
): Promise<string> {
  assertRepository(to.repo);
  assertTag(to.branch);
  if (IMMUTABLE_TAG.test(to.branch))
    throw new StoreError('TAG_IMMUTABLE', `a fork is a branch; ${to.branch} is a daily tag name: choose another`);
  const source = await requireManifest(store, from.repo, from.reference);
  const manifest = JSON.parse(source.bytes.toString('utf8')) as ImageManifest;
  for (const blob of [manifest.config, ...manifest.layers]) await store.mountBlob(to.repo, from.repo, blob.digest);
  return store.putManifest(to.repo, source.bytes, source.mediaType, to.branch);
}

export async function requireManifest(store: CheckpointStore, repo: string, reference: string) {
  const manifest = await store.getManifest(repo, reference);
  if (!manifest) {
    const tags = await store.listTags(repo);
    throw new StoreError(
      'MANIFEST_UNKNOWN',
      tags.length === 0
        ? `${repo} has no checkpoints in ${store.location}: push one first (computatrum push <dir> ${repo}:main)`
        : `${repo} has no ${reference}; its tags are: ${tags.slice(-10).join(', ')}`,
    );
  }
  return manifest;
}
