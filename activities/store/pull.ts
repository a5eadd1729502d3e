// Downloads a checkpoint from any OCI Distribution endpoint (the platform's /v2/ or a registry):
// files in parallel, each into `<file>.partial`, resumed with Range after an interruption (only a
// 206 with the matching Content-Range is accepted), verified against its sha256 as written on disk,
// and renamed to its final name only when the digest matches. No half file ever carries a final name.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { safeTargetPath } from './checkpoint';
import { hashPool } from './hashing';
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

async function request(url: string, init: RequestInit, baseUrl: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    throw unreachable(error, baseUrl);
  }
}

function unreachable(error: unknown, baseUrl: string): StoreError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause ?? (error as { code?: string; message?: string });
  return new StoreError(
    'UNREACHABLE',
    `cannot reach ${baseUrl} (${cause.code ?? cause.message ?? (error as Error).message}): is \`computatrum up\` running there, or is --from right?`,
  );
}

// Blobs stream through node:http rather than fetch: measured in bench/checkpoints, WHATWG streams
// cost about a third of the throughput. Kept-alive sockets serve the files one after another.
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

function getStream(url: string, headers: Record<string, string>, baseUrl: string): Promise<IncomingMessage> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    client
      .get(target, { headers, agent: agents[target.protocol as keyof typeof agents] }, resolve)
      .on('error', (error) => reject(unreachable(error, baseUrl)));
  });
}

async function fetchManifest(options: PullOptions): Promise<{ manifest: ImageManifest; digest: string }> {
  const url = `${options.baseUrl}/v2/${options.repo}/manifests/${encodeURIComponent(options.reference)}`;
  const response = await request(url, { headers: { accept: OCI_MANIFEST, ...options.headers } }, options.baseUrl);
  if (response.status === 404) {
    const tags = await request(`${options.baseUrl}/v2/${options.repo}/tags/list`, { headers: options.headers }, options.baseUrl);
    const known = tags.ok ? ((await tags.json()) as { tags: string[] }).tags : [];
    throw new StoreError(
      'MANIFEST_UNKNOWN',
      known.length === 0
        ? `${options.repo} is unknown at ${options.baseUrl}: check the repository name (computatrum tags <repo>)`
        : `${options.repo} has no ${options.reference}; its tags are: ${known.slice(-10).join(', ')}`,
    );
  }
  if (response.status === 401 || response.status === 403) throw new StoreError('DENIED', `${options.baseUrl} refused access to ${options.repo}: sign in or use an API token`);
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
  if (code === 'ENOSPC') throw new PullError(`the disk is full while writing ${file}: free some space and run pull again; it resumes where it stopped`);
  if (code === 'EACCES' || code === 'EROFS') throw new PullError(`cannot write ${file} (${code}): choose a folder you can write to`);
  throw error;
}

/** A failure while bytes flow: the disk, or the connection dropping mid-file. */
function transferError(error: unknown, file: string): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS') diskError(error, file);
  throw new PullError(`the download of ${file} was interrupted (${(error as Error).message}); run pull again: it resumes where it stopped`);
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

async function pullFile(options: PullOptions, layer: { digest: string; size: number; filepath: string }, report: (p: PullProgress) => void): Promise<number> {
  const target = safeTargetPath(options.dir, layer.filepath);
  const partial = `${target}.partial`;
  if ((await stat(target).catch(() => undefined))?.size === layer.size && (await digestOf(target))?.digest === layer.digest) {
    report({ file: layer.filepath, done: layer.size, size: layer.size, received: 0, state: 'skipped' });
    return 0;
  }
  await mkdir(path.dirname(target), { recursive: true }).catch((error) => diskError(error, target));
  let done = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (done > layer.size) {
    await rm(partial, { force: true });
    done = 0;
  }
  let received = 0;
  if (done < layer.size) {
    const url = `${options.baseUrl}/v2/${options.repo}/blobs/${layer.digest}`;
    const headers: Record<string, string> = { ...options.headers };
    if (done > 0) headers.range = `bytes=${done}-`;
    const body = await getStream(url, headers, options.baseUrl);
    const status = body.statusCode ?? 0;
    const resumed = done > 0 && status === 206 && body.headers['content-range'] === `bytes ${done}-${layer.size - 1}/${layer.size}`;
    if (status < 200 || status > 299 || (status === 206 && !resumed)) {
      body.resume();
      throw new PullError(`${url} answered ${status} ${body.headers['content-range'] ?? ''}: cannot download ${layer.filepath}`);
    }
    if (done > 0 && !resumed) done = 0; // a 200 to a Range request: the whole blob again, from the start
    try {
      body.on('data', (chunk: Buffer) => {
        done += chunk.length;
        received += chunk.length;
        report({ file: layer.filepath, done, size: layer.size, received: chunk.length, state: 'downloading' });
      });
      await pipeline(body, createWriteStream(partial, { flags: done > 0 ? 'a' : 'w', highWaterMark: 1 << 20 }));
      const handle = await open(partial, 'r+');
      await handle.sync().finally(() => handle.close());
    } catch (error) {
      transferError(error, layer.filepath);
    }
  }
  // Verified from the disk, not from the wire: what is renamed is exactly what was checked.
  const actual = await digestOf(partial);
  if (actual?.digest !== layer.digest || actual.size !== layer.size) {
    await rm(partial, { force: true });
    throw new PullError(
      `${layer.filepath} is corrupt: expected ${layer.digest} (${layer.size} bytes), got ${actual?.digest} (${actual?.size} bytes); ` +
        `it was discarded, run pull again`,
    );
  }
  await rename(partial, target);
  report({ file: layer.filepath, done: layer.size, size: layer.size, received: 0, state: 'verified' });
  return received;
}

export async function pullCheckpoint(options: PullOptions): Promise<PullResult> {
  const { manifest, digest } = await fetchManifest(options);
  const layers = manifest.layers.map((layer) => {
    const filepath = layer.annotations?.[FILEPATH_ANNOTATION];
    if (!filepath) throw new PullError(`layer ${layer.digest} of ${options.repo}:${options.reference} names no file (${FILEPATH_ANNOTATION})`);
    safeTargetPath(options.dir, filepath); // refuse a hostile manifest before writing anything
    return { digest: layer.digest, size: layer.size, filepath };
  });
  options.onManifest?.(layers.length, layers.reduce((sum, l) => sum + l.size, 0));
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
