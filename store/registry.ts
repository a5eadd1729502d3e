// The checkpoint store on any OCI Distribution registry (distribution/distribution, Harbor, Zot,
// GHCR, ...), spoken to over HTTP with Node's fetch. Blobs stream from and to disk, never whole in memory.
// Logins (Basic, or tokens from the registry's token service) are registry-auth.ts's business.
import { assertDigest, assertRepository, assertTag, isDigest } from './names';
import { CATALOG_SCOPE, RegistryAuth, pullScope, pushScope, type RegistryAuthOptions } from './registry-auth';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  StoreError,
  type ByteRange,
  type CheckpointStore,
  type StoredManifest,
} from './types';

export interface RegistryStoreOptions extends RegistryAuthOptions {
  /** The registry's base URL, e.g. http://127.0.0.1:5000. */
  url: string;
  /** Blobs larger than this go up in chunks (POST, PATCH..., PUT); smaller ones in one PUT. */
  chunkSize?: number;
}

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ');
const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;

/** Registry error codes that are StoreError codes as they are. */
const STORE_CODES = new Set([
  'BLOB_UNKNOWN',
  'MANIFEST_UNKNOWN',
  'NAME_UNKNOWN',
  'DIGEST_INVALID',
  'TAG_IMMUTABLE',
  'NAME_INVALID',
]);

/** Produces the bytes [start, end] (inclusive) of the content being uploaded. */
type ChunkSource = (start: number, end: number) => Promise<Readable | Buffer>;

interface RequestOptions {
  headers?: Record<string, string>;
  body?: Readable | Buffer;
  /** What the request needs from a token service (`repository:<repo>:pull`, ...). */
  scopes: string[];
}

export class RegistryStore implements CheckpointStore {
  readonly location: string;
  private readonly auth: RegistryAuth;
  private readonly chunkSize: number;

  constructor(options: RegistryStoreOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new Error('the registry address is not a URL (like http://127.0.0.1:5000)'); // not echoed: it may hold credentials
    }
    // Credentials in the URL would end up in messages and logs; they belong in the env vars.
    if (url.username || url.password) {
      throw new StoreError(
        'DENIED',
        'put the registry credentials in COMPUTATRUM_REGISTRY_USERNAME/COMPUTATRUM_REGISTRY_PASSWORD, not in its URL',
      );
    }
    this.location = options.url.replace(/\/+$/, '');
    this.auth = new RegistryAuth(options);
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!(this.chunkSize > 0)) throw new RangeError(`chunkSize must be positive, got ${this.chunkSize}`);
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    return (await this.blobSize(repo, digest)) !== undefined;
  }

  async blobSize(repo: string, digest: string): Promise<number | undefined> {
    return this.headBlob(repo, digest, pullScope(repo));
  }

  /** The blob's size; `scope` is what its token asks for (a push checks with the token it will upload with). */
  private async headBlob(repo: string, digest: string, scope: string): Promise<number | undefined> {
    const path = blobPath(repo, digest);
    const res = await this.request('HEAD', path, { scopes: [scope] });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.failure(res, 'HEAD', path);
    const size = Number(res.headers.get('content-length') ?? NaN);
    if (!Number.isSafeInteger(size))
      throw new Error(`registry ${this.location} gave no size for blob ${digest} of ${repo}`);
    return size;
  }

  async putBlobFile(repo: string, file: string, digest: string, size: number): Promise<{ written: number }> {
    if ((await this.headBlob(repo, digest, pushScope(repo))) !== undefined) return { written: 0 };
    const actual = (await stat(file)).size;
    if (actual !== size)
      throw new StoreError('DIGEST_INVALID', `${file} is ${actual} bytes, not the ${size} bytes of ${digest}`);
    const source: ChunkSource = async (start, end) => createReadStream(file, { start, end });
    await this.upload(repo, digest, size, source, `the content of ${file} does not match its digest ${digest}`);
    return { written: size };
  }

  async putBlobBytes(repo: string, bytes: Buffer, digest: string): Promise<{ written: number }> {
    if ((await this.headBlob(repo, digest, pushScope(repo))) !== undefined) return { written: 0 };
    await this.uploadMonolithic(
      repo,
      digest,
      bytes,
      bytes.length,
      `the ${bytes.length} bytes given do not match their digest ${digest}`,
    );
    return { written: bytes.length };
  }

  async mountBlob(repo: string, fromRepo: string, digest: string): Promise<void> {
    checkRepo(fromRepo);
    const path = `${uploadsPath(repo)}?mount=${encodeURIComponent(checkDigest(digest))}&from=${encodeURIComponent(fromRepo)}`;
    // A mount reads the source repository too: its token must grant both.
    const res = await this.request('POST', path, { scopes: [pushScope(repo), pullScope(fromRepo)] });
    if (res.status !== 201 && res.status !== 202) throw await this.failure(res, 'POST', path);
    await discard(res);
    if (res.status === 201) return;
    // 202: the registry could not mount and opened an upload session instead; copy the bytes.
    await this.cancelUpload(repo, this.sessionUrl(res, path));
    const size = await this.requireBlobSize(fromRepo, digest);
    const source: ChunkSource = async (start, end) => (await this.openBlob(fromRepo, digest, { start, end })).stream;
    await this.upload(repo, digest, size, source, `the blob ${digest} of ${fromRepo} does not match its digest`);
  }

  async openBlob(repo: string, digest: string, range?: ByteRange): Promise<{ stream: Readable; size: number }> {
    const path = blobPath(repo, digest);
    if (range) checkRange(range);
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {};
    const res = await this.request('GET', path, { headers, scopes: [pullScope(repo)] });
    if (res.status === 404) {
      await discard(res);
      throw new StoreError('BLOB_UNKNOWN', `blob ${digest} is not in ${repo} at ${this.location}`);
    }
    const size = range ? await this.rangeTotal(res, path, range) : await this.contentLength(res, path);
    if (!res.body) throw new Error(`registry ${this.location} sent no body for GET ${path}`);
    return { stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), size };
  }

  async putManifest(repo: string, manifest: Buffer, mediaType: string, tag?: string): Promise<string> {
    if (tag !== undefined) checkTag(tag);
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    await this.putManifestAt(repo, digest, manifest, mediaType, digest);
    if (tag !== undefined) await this.putManifestAt(repo, tag, manifest, mediaType, digest);
    return digest;
  }

  async getManifest(repo: string, reference: string): Promise<StoredManifest | undefined> {
    const path = manifestPath(repo, checkReference(reference));
    const res = await this.request('GET', path, { headers: { accept: MANIFEST_ACCEPT }, scopes: [pullScope(repo)] });
    if (res.status === 404) return discard(res).then(() => undefined);
    if (res.status !== 200) throw await this.failure(res, 'GET', path);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const claimed = res.headers.get('docker-content-digest') ?? (isDigest(reference) ? reference : digest);
    // Both the header and a digest reference must name what actually arrived.
    if (claimed !== digest || (isDigest(reference) && reference !== digest)) {
      throw new StoreError(
        'DIGEST_INVALID',
        `manifest ${repo}@${reference} from ${this.location} hashes to ${digest}, not ${claimed}`,
      );
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    return { bytes, digest, mediaType };
  }

  async listTags(repo: string): Promise<string[]> {
    const tags = new Set<string>();
    const seen = new Set<string>();
    let path: string | undefined = `/v2/${checkRepo(repo)}/tags/list`;
    while (path !== undefined && !seen.has(path)) {
      seen.add(path);
      const res = await this.request('GET', path, { scopes: [pullScope(repo)] });
      if (res.status === 404) return discard(res).then(() => []);
      if (res.status !== 200) throw await this.failure(res, 'GET', path);
      const page = (await res.json()) as { tags?: string[] | null };
      for (const tag of page.tags ?? []) tags.add(tag);
      path = nextLink(res.headers.get('link'));
    }
    return [...tags].sort();
  }

  /** The registry's catalog (`/v2/_catalog`, followed page by page). */
  async listRepositories(): Promise<string[]> {
    const repositories = new Set<string>();
    const seen = new Set<string>();
    let path: string | undefined = '/v2/_catalog?n=1000';
    while (path !== undefined && !seen.has(path)) {
      seen.add(path);
      const res = await this.request('GET', path, { scopes: [CATALOG_SCOPE] });
      if (res.status !== 200) throw await this.failure(res, 'GET', path);
      const page = (await res.json()) as { repositories?: string[] | null };
      for (const repo of page.repositories ?? []) repositories.add(repo);
      path = nextLink(res.headers.get('link'));
    }
    return [...repositories].sort();
  }

  // Uploads

  private async upload(
    repo: string,
    digest: string,
    size: number,
    source: ChunkSource,
    mismatch: string,
  ): Promise<void> {
    if (size > this.chunkSize) return this.uploadChunked(repo, digest, size, source, mismatch);
    // An empty blob is a PUT without a body (a read stream ending at byte 0 would still read one byte).
    const body = size === 0 ? Buffer.alloc(0) : await source(0, size - 1);
    try {
      await this.uploadMonolithic(repo, digest, body, size, mismatch);
    } finally {
      if (body instanceof Readable) body.destroy(); // closes the file when the upload failed before reading it
    }
  }

  private async uploadMonolithic(
    repo: string,
    digest: string,
    body: Readable | Buffer,
    size: number,
    mismatch: string,
  ): Promise<void> {
    const session = await this.startUpload(repo);
    await this.withSession(
      repo,
      () => session,
      () => this.finishUpload(repo, session, digest, body, size, mismatch),
    );
  }

  private async uploadChunked(
    repo: string,
    digest: string,
    size: number,
    source: ChunkSource,
    mismatch: string,
  ): Promise<void> {
    let session = await this.startUpload(repo);
    await this.withSession(
      repo,
      () => session,
      async () => {
        for (let start = 0; start < size; start += this.chunkSize) {
          const end = Math.min(start + this.chunkSize, size) - 1;
          const chunk = await source(start, end);
          try {
            session = await this.patchChunk(repo, session, chunk, start, end);
          } finally {
            if (chunk instanceof Readable) chunk.destroy();
          }
        }
        await this.finishUpload(repo, session, digest, Buffer.alloc(0), 0, mismatch);
      },
    );
  }

  private async startUpload(repo: string): Promise<string> {
    const path = uploadsPath(repo);
    const res = await this.request('POST', path, { scopes: [pushScope(repo)] });
    if (res.status !== 202) throw await this.failure(res, 'POST', path);
    await discard(res);
    return this.sessionUrl(res, path);
  }

  private async patchChunk(
    repo: string,
    session: string,
    chunk: Readable | Buffer,
    start: number,
    end: number,
  ): Promise<string> {
    const headers = {
      'content-type': 'application/octet-stream',
      'content-length': String(end - start + 1),
      'content-range': `${start}-${end}`,
    };
    const res = await this.request('PATCH', session, { headers, body: chunk, scopes: [pushScope(repo)] });
    if (res.status !== 202) throw await this.failure(res, 'PATCH', 'an upload session');
    await discard(res);
    // The registry says how much it holds; anything but all we sent would corrupt the blob silently.
    const held = res.headers.get('range');
    if (held !== null && held !== `0-${end}` && held !== `bytes=0-${end}`) {
      throw new Error(`registry ${this.location} holds bytes ${held} of an upload after receiving 0-${end}`);
    }
    return this.sessionUrl(res, session);
  }

  private async finishUpload(
    repo: string,
    session: string,
    digest: string,
    body: Readable | Buffer,
    size: number,
    mismatch: string,
  ): Promise<void> {
    const url = `${session}${session.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
    const res = await this.request('PUT', url, { headers, body, scopes: [pushScope(repo)] });
    if (res.status === 201) return discard(res);
    const error = await this.failure(res, 'PUT', 'an upload session');
    throw error instanceof StoreError && error.code === 'DIGEST_INVALID'
      ? new StoreError('DIGEST_INVALID', mismatch)
      : error;
  }

  /**
   * Runs the upload; on failure cancels its session (the latest URL: the registry checks the offset
   * in its state), so no half-written upload lingers. Best effort: distribution 2.8 refuses to
   * cancel after a failed PUT with a body, whose bytes its state no longer accounts for.
   */
  private async withSession(repo: string, session: () => string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      await this.cancelUpload(repo, session()).catch(() => undefined);
      throw error;
    }
  }

  private async cancelUpload(repo: string, session: string): Promise<void> {
    const res = await this.request('DELETE', session, { scopes: [pushScope(repo)] });
    await discard(res);
    // 404: the registry dropped the session already, or will purge it itself.
    if (!res.ok && res.status !== 404) throw await this.failure(res, 'DELETE', 'an upload session');
  }

  private sessionUrl(res: Response, requested: string): string {
    const location = res.headers.get('location');
    if (!location) throw new Error(`registry ${this.location} gave no upload location for ${redact(requested)}`);
    return new URL(location, this.url(requested)).href;
  }

  // Blobs and manifests

  private async requireBlobSize(repo: string, digest: string): Promise<number> {
    const size = await this.blobSize(repo, digest);
    if (size === undefined)
      throw new StoreError('BLOB_UNKNOWN', `blob ${digest} is not in ${repo} at ${this.location}`);
    return size;
  }

  private async putManifestAt(
    repo: string,
    reference: string,
    manifest: Buffer,
    mediaType: string,
    digest: string,
  ): Promise<void> {
    const path = manifestPath(repo, reference);
    const res = await this.request('PUT', path, {
      headers: { 'content-type': mediaType },
      body: manifest,
      scopes: [pushScope(repo)],
    });
    if (res.status !== 201) throw await this.failure(res, 'PUT', path);
    await discard(res);
    const stored = res.headers.get('docker-content-digest');
    if (stored !== null && stored !== digest) {
      throw new StoreError(
        'DIGEST_INVALID',
        `registry ${this.location} stored manifest ${repo}:${reference} as ${stored}, not ${digest}`,
      );
    }
  }

  /** The total size from a 206's Content-Range, which must be the range asked for. */
  private async rangeTotal(res: Response, path: string, range: ByteRange): Promise<number> {
    if (!res.ok) throw await this.failure(res, 'GET', path);
    const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
    const asked = `${range.start}-${range.end ?? ''}`;
    if (res.status !== 206 || !match) {
      await discard(res);
      throw new Error(
        `registry ${this.location} did not serve the byte range ${asked} of GET ${path} (status ${res.status}); it needs HTTP range support`,
      );
    }
    const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
    // A range past the end is served up to the last byte, as HTTP has it.
    if (start !== range.start || end !== Math.min(range.end ?? total - 1, total - 1)) {
      await discard(res);
      throw new Error(
        `registry ${this.location} answered bytes ${start}-${end} to a request for ${asked} of GET ${path}`,
      );
    }
    return total;
  }

  private async contentLength(res: Response, path: string): Promise<number> {
    if (res.status !== 200) throw await this.failure(res, 'GET', path);
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (!Number.isSafeInteger(length)) {
      await discard(res);
      throw new Error(`registry ${this.location} sent no Content-Length for GET ${path}`);
    }
    return length;
  }

  // HTTP

  private url(pathOrUrl: string): string {
    return /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.location}${pathOrUrl}`;
  }

  private async request(method: string, pathOrUrl: string, options: RequestOptions): Promise<Response> {
    const url = this.url(pathOrUrl);
    const headers: Record<string, string> = { ...options.headers };
    try {
      // Credentials and tokens go to the registry only (and its token service), not to another host
      // an upload Location may name. duplex 'half' lets fetch stream a request body (Node's fetch requires it for streams).
      const init = { method, headers, body: options.body, duplex: 'half' as const };
      return await this.auth.fetch(url, init, options.scopes);
    } catch (error) {
      throw this.unreachable(error);
    }
  }

  private unreachable(error: unknown): unknown {
    // Network failures reject as TypeError('fetch failed'); checked by name, as it may come from another realm (jest).
    const failed = error as Error & { cause?: NodeJS.ErrnoException };
    if (failed?.name !== 'TypeError' || failed.message !== 'fetch failed') return error;
    if (failed.cause?.path) return failed.cause; // reading the file being uploaded failed, not the network
    return new StoreError(
      'UNREACHABLE',
      `cannot reach the registry at ${this.location}: ${describeCause(failed)}; check the address and that it is running`,
    );
  }

  /** A non-2xx answer as an error carrying the registry's own error codes and messages. */
  private async failure(res: Response, method: string, what: string): Promise<Error> {
    const errors = await registryErrors(res);
    const detail = errors
      .map((e) => `${e.code}: ${e.message ?? ''}${e.detail ? ` (${JSON.stringify(e.detail).slice(0, 300)})` : ''}`)
      .join('; ');
    const summary = `registry ${this.location} answered ${res.status} to ${method} ${redact(what)}${detail ? `: ${detail}` : ''}`;
    if (res.status === 401 || res.status === 403) {
      const advice =
        this.auth.refusalAdvice(res) ??
        'set COMPUTATRUM_REGISTRY_USERNAME and COMPUTATRUM_REGISTRY_PASSWORD to credentials that may push and pull there';
      return new StoreError('DENIED', `${summary}; ${advice}`);
    }
    const known = errors.find((e) => STORE_CODES.has(e.code));
    return known ? new StoreError(known.code as StoreError['code'], summary) : new Error(summary);
  }
}

function checkRepo(repo: string): string {
  assertRepository(repo);
  return repo;
}

function checkDigest(digest: string): string {
  assertDigest(digest);
  return digest;
}

function checkTag(tag: string): string {
  assertTag(tag);
  return tag;
}

function checkReference(reference: string): string {
  return reference.startsWith('sha256:') ? checkDigest(reference) : checkTag(reference);
}

function checkRange({ start, end }: ByteRange): void {
  const valid =
    Number.isSafeInteger(start) && start >= 0 && (end === undefined || (Number.isSafeInteger(end) && end >= start));
  if (!valid) throw new RangeError(`invalid byte range ${start}-${end ?? ''}`);
}

const blobPath = (repo: string, digest: string) => `/v2/${checkRepo(repo)}/blobs/${checkDigest(digest)}`;
const manifestPath = (repo: string, reference: string) => `/v2/${checkRepo(repo)}/manifests/${reference}`;
const uploadsPath = (repo: string) => `/v2/${checkRepo(repo)}/blobs/uploads/`;

/** Upload session URLs carry opaque state; messages name the request without it. */
function redact(what: string): string {
  return what.replace(/\?.*$/, '');
}

/** The next page of a `Link: <url>; rel="next"` header, if any. */
function nextLink(link: string | null): string | undefined {
  const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link ?? '');
  return match?.[1];
}

/** Lets undici reuse the connection of a response whose body nobody reads. */
async function discard(res: Response): Promise<void> {
  if (!res.bodyUsed) await res.body?.cancel().catch(() => undefined);
}

interface RegistryErrorBody {
  code: string;
  message?: string;
  detail?: unknown;
}

async function registryErrors(res: Response): Promise<RegistryErrorBody[]> {
  if (res.bodyUsed) return [];
  try {
    const body = (await res.json()) as { errors?: RegistryErrorBody[] };
    return (body.errors ?? []).filter((e) => typeof e?.code === 'string');
  } catch {
    return []; // not JSON (a proxy's HTML page, an empty HEAD answer)
  }
}

/** Why fetch failed, from its cause (an AggregateError with an empty message when every address refused). */
function describeCause(error: Error): string {
  const cause = error.cause as (Error & { code?: string; errors?: Error[] }) | undefined;
  if (!cause) return error.message;
  return cause.message || cause.errors?.[0]?.message || cause.code || String(cause);
}
