// Downloads a checkpoint from any OCI Distribution endpoint (the platform's /v2/ or a registry):
// files in parallel, each into `<file>.partial`, resumed with Range after an interruption (only a
// 206 with the matching Content-Range is accepted), hashed as it is written (the bytes an earlier
// attempt kept are hashed from the disk first), synced, and renamed to its final name only when
// the digest of the whole file matches. No half file ever carries a final name.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { safeTargetPath } from './checkpoint';
import { hashPool } from './hashing';
import { ReceiveError, receivePool, type Received } from './receive';
import { RegistryAuth, pullScope, type RegistryRequestInit } from './registry-auth';
import { FILEPATH_ANNOTATION, type ImageManifest, OCI_MANIFEST, StoreError } from './types';

export interface PullProgress {
  file: string;
  /** Bytes of this file on disk so far (including what an earlier attempt left). */
  done: number;
  size: number;
  /** Bytes received from the server in this pull. */
  received: number;
  state: 'downloading' | 'verified' | 'skipped';
}

export interface PullOptions {
  /** Base URL of the endpoint, e.g. http://127.0.0.1:8080 (the platform) or a registry. */
  baseUrl: string;
  repo: string;
  reference: string;
  dir: string;
  concurrency?: number;
  headers?: Record<string, string>;
  /**
   * The login of the registry at baseUrl (Basic, or exchanged for tokens). Without one, a registry
   * that hands out tokens (GHCR, Docker Hub) still gets an anonymous exchange: public repositories read.
   */
  auth?: RegistryAuth;
  onProgress?: (progress: PullProgress) => void;
  /** Called once the manifest is read, before any file. */
  onManifest?: (files: number, size: number) => void;
}

export interface PullResult {
  digest: string;
  files: number;
  size: number;
  /** Bytes transferred by this pull (less than size after a resume). */
  received: number;
}

export class PullError extends Error {
  override name = 'PullError';
}

type Pull = PullOptions & { auth: RegistryAuth };

/** A read of the repository, with the registry's login or token when it wants one. */
async function request(options: Pull, url: string, init: RegistryRequestInit): Promise<Response> {
  try {
    return await options.auth.fetch(url, init, [pullScope(options.repo)]);
  } catch (error) {
    if (error instanceof StoreError) throw error; // its token service refused or is unreachable: it says so
    throw unreachable(error, options.baseUrl);
  }
}

function unreachable(error: unknown, baseUrl: string): StoreError {
  const cause =
    (error as { cause?: { code?: string; message?: string } }).cause ?? (error as { code?: string; message?: string });
  return new StoreError(
    'UNREACHABLE',
    `cannot reach ${baseUrl} (${cause.code ?? cause.message ?? (error as Error).message}): is \`computatrum up\` running there, or is --from right?`,
  );
}

/** The server's own reason for a 401 or 403 (an OCI error body), or what to try when it gives none. */
async function refusalReason(response: Response): Promise<string> {
  const fallback =
    response.status === 401 ? 'sign in: set COMPUTATRUM_TOKEN to an API token' : 'this account may not read it';
  try {
    const body = (await response.json()) as { errors?: Array<{ message?: unknown }> };
    const message = body.errors?.[0]?.message;
    return typeof message === 'string' && message ? message.slice(0, 500) : fallback;
  } catch {
    return fallback;
  }
}

async function fetchManifest(options: Pull): Promise<{ manifest: ImageManifest; digest: string }> {
  const url = `${options.baseUrl}/v2/${options.repo}/manifests/${encodeURIComponent(options.reference)}`;
  const response = await request(options, url, { headers: { accept: OCI_MANIFEST, ...options.headers } });
  if (response.status === 404) {
    const tags = await request(options, `${options.baseUrl}/v2/${options.repo}/tags/list`, {
      headers: options.headers,
    });
    const known = tags.ok ? ((await tags.json()) as { tags: string[] }).tags : [];
    throw new StoreError(
      'MANIFEST_UNKNOWN',
      known.length === 0
        ? `${options.repo} is unknown at ${options.baseUrl}: check the repository name (computatrum tags <repo>)`
        : `${options.repo} has no ${options.reference}; its tags are: ${known.slice(-10).join(', ')}`,
    );
  }
  if (response.status === 401 || response.status === 403) {
    const advice = options.auth.refusalAdvice(response);
    throw new StoreError(
      'DENIED',
      `${options.baseUrl} refused access to ${options.repo}: ${await refusalReason(response)}${advice ? `; ${advice}` : ''}`,
    );
  }
  if (!response.ok) throw new PullError(`${url} answered ${response.status}: ${await response.text()}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (options.reference.startsWith('sha256:') && digest !== options.reference) {
    throw new PullError(`the manifest served for ${options.reference} has digest ${digest}: refusing it`);
  }
  return { manifest: JSON.parse(bytes.toString('utf8')) as ImageManifest, digest };
}

function diskError(error: unknown, file: string): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC')
    throw new PullError(
      `the disk is full while writing ${file}: free some space and run pull again; it resumes where it stopped`,
    );
  if (code === 'EACCES' || code === 'EROFS')
    throw new PullError(`cannot write ${file} (${code}): choose a folder you can write to`);
  throw error;
}

/** A download that did not finish, as the error the user reads. */
function receiveError(error: unknown, url: string, file: string, baseUrl: string): never {
  if (!(error instanceof ReceiveError)) throw error;
  const failure = error.failure;
  switch (failure.kind) {
    case 'status':
      throw new PullError(`${url} answered ${failure.status} ${failure.contentRange ?? ''}: cannot download ${file}`);
    case 'unreachable':
      throw unreachable(error, baseUrl);
    case 'disk':
      if (failure.code === 'ENOSPC' || failure.code === 'EACCES' || failure.code === 'EROFS') diskError(error, file);
      throw new PullError(`cannot write ${file} (${failure.message}); run pull again: it resumes where it stopped`);
    case 'interrupted':
      throw new PullError(
        `the download of ${file} was interrupted (${failure.message}); run pull again: it resumes where it stopped`,
      );
  }
}

/** The sha256 of what a file holds, hashed on a worker thread so downloads keep streaming meanwhile. */
async function digestOf(file: string): Promise<{ digest: string; size: number } | undefined> {
  try {
    return await hashPool().hash(file);
  } catch (error) {
    if ((await stat(file).catch(() => undefined)) === undefined) return undefined;
    throw error;
  }
}

async function pullFile(
  options: Pull,
  layer: { digest: string; size: number; filepath: string },
  report: (p: PullProgress) => void,
): Promise<number> {
  const target = safeTargetPath(options.dir, layer.filepath);
  const partial = `${target}.partial`;
  if (
    (await stat(target).catch(() => undefined))?.size === layer.size &&
    (await digestOf(target))?.digest === layer.digest
  ) {
    report({ file: layer.filepath, done: layer.size, size: layer.size, received: 0, state: 'skipped' });
    return 0;
  }
  await mkdir(path.dirname(target), { recursive: true }).catch((error) => diskError(error, target));
  let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (have > layer.size) {
    await rm(partial, { force: true });
    have = 0;
  }
  let actual: Received | { digest: string; size: number; received: 0 } | undefined;
  if (have === layer.size && have > 0) {
    // An earlier attempt received everything but stopped before the rename: check what it kept.
    actual = await digestOf(partial).then((d) => d && { ...d, received: 0 as const });
  } else {
    actual = await receiveBlob(options, layer, partial, have, report);
  }
  if (actual?.digest !== layer.digest || actual.size !== layer.size) {
    await rm(partial, { force: true });
    throw new PullError(
      `${layer.filepath} is corrupt: expected ${layer.digest} (${layer.size} bytes), got ${actual?.digest} (${actual?.size} bytes); ` +
        `it was discarded, run pull again`,
    );
  }
  await rename(partial, target);
  report({ file: layer.filepath, done: layer.size, size: layer.size, received: actual.received, state: 'verified' });
  return actual.received;
}

/**
 * The receiving thread writes each byte to the .partial file and hashes it on the way: what is
 * renamed is exactly what was hashed, and the file is synced before the digest is reported. A
 * token that the registry refuses half way through a long pull is exchanged again, once.
 */
async function receiveBlob(
  options: Pull,
  layer: { digest: string; size: number; filepath: string },
  partial: string,
  have: number,
  report: (p: PullProgress) => void,
): Promise<Received> {
  const url = `${options.baseUrl}/v2/${options.repo}/blobs/${layer.digest}`;
  const scopes = [pullScope(options.repo)];
  const receive = (authorization: string | undefined, kept: number) =>
    receivePool().receive(
      {
        url,
        headers: { ...options.headers, ...(authorization ? { authorization } : {}) },
        file: partial,
        have: kept,
        size: layer.size,
      },
      (done, received) => report({ file: layer.filepath, done, size: layer.size, received, state: 'downloading' }),
    );
  const sent = await options.auth.authorization(url, scopes);
  try {
    return await receive(sent, have);
  } catch (error) {
    const refused = error instanceof ReceiveError && error.failure.kind === 'status' && error.failure.status === 401;
    const renewed = refused ? await options.auth.renew(scopes, sent) : undefined;
    if (renewed === undefined) return receiveError(error, url, layer.filepath, options.baseUrl);
    const kept = (await stat(partial).catch(() => undefined))?.size ?? 0;
    return receive(renewed, kept).catch((again) => receiveError(again, url, layer.filepath, options.baseUrl));
  }
}

export async function pullCheckpoint(pullOptions: PullOptions): Promise<PullResult> {
  const options: Pull = { ...pullOptions, auth: pullOptions.auth ?? new RegistryAuth({ url: pullOptions.baseUrl }) };
  const { manifest, digest } = await fetchManifest(options);
  const layers = manifest.layers.map((layer) => {
    const filepath = layer.annotations?.[FILEPATH_ANNOTATION];
    if (!filepath)
      throw new PullError(
        `layer ${layer.digest} of ${options.repo}:${options.reference} names no file (${FILEPATH_ANNOTATION})`,
      );
    safeTargetPath(options.dir, filepath); // refuse a hostile manifest before writing anything
    return { digest: layer.digest, size: layer.size, filepath };
  });
  options.onManifest?.(
    layers.length,
    layers.reduce((sum, l) => sum + l.size, 0),
  );
  const report = options.onProgress ?? (() => undefined);
  let next = 0;
  let received = 0;
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency ?? 4, layers.length) }, async () => {
      while (next < layers.length) {
        const got = await pullFile(options, layers[next++]!, report);
        received += got; // after the await: `received += await ...` would lose other files' bytes
      }
    }),
  );
  return { digest, files: layers.length, size: layers.reduce((sum, l) => sum + l.size, 0), received };
}
