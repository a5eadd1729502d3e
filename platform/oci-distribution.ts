// The read side of the OCI Distribution API under /v2/, so any OCI client (oras, skopeo, crane)
// pulls checkpoints from the platform, plus friendly download links /hub/<repo>/resolve/<ref>/<path>.
// Blobs are served with Range (206 + Content-Range) so interrupted downloads resume.
import { attachmentDisposition } from './attachment';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type Descriptor,
  FILEPATH_ANNOTATION,
  OCI_INDEX,
  type CheckpointStore,
  type ImageManifest,
  StoreError,
} from '../store/types';
import { isDigest } from '../store/names';

/**
 * Content named by its digest never changes: kept by the caller's own cache for a year. `private`,
 * because some of it is readable only by those who bought it (a shared cache must not serve it on).
 */
const IMMUTABLE = 'private, max-age=31536000, immutable';

/** True when the caller's copy (If-None-Match) is this digest's: a 304 instead of the bytes. */
function notModified(request: FastifyRequest, digest: string): boolean {
  const tags = request.headers['if-none-match'];
  if (!tags) return false;
  return tags.split(',').some((tag) => {
    const trimmed = tag.trim().replace(/^W\//, '');
    return trimmed === '*' || trimmed === `"${digest}"`;
  });
}

const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS_PATH = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS_PATH = /^\/v2\/(.+)\/referrers\/([^/]+)$/;
const RESOLVE_PATH = /^\/hub\/(.+)\/resolve\/([^/]+)\/(.+)$/;

type DistributionCode =
  | 'BLOB_UNKNOWN'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_UNKNOWN'
  | 'NAME_INVALID'
  | 'DIGEST_INVALID'
  | 'UNSUPPORTED'
  | 'RANGE_NOT_SATISFIABLE'
  | 'UNAUTHORIZED'
  | 'DENIED';

/** The manifests whose `subject` is `digest` (recordings), optionally of one artifact type. */
export type Referrers = (repo: string, digest: string, artifactType?: string) => Promise<Descriptor[]>;

/**
 * Why this request may not read `digest` (a manifest or blob that `repo` holds), or undefined when
 * it may. The store has already answered that `repo` holds it, so the name in the URL cannot lend
 * one repository's terms to another's bytes.
 */
export type ReadAccess = (
  request: FastifyRequest,
  repo: string,
  digest: string,
) => Promise<{ status: 401 | 403; message: string } | undefined>;

function distributionError(reply: FastifyReply, status: number, code: DistributionCode, message: string) {
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .send({ errors: [{ code, message }] });
}

/** Parses a single `bytes=a-b` range; undefined for none, null for one we cannot serve. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | null {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  let start: number, end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) return null;
  return { start, end };
}

/** Serves a GET or HEAD of /hub/<repo>/resolve/<ref>/<file> (a download, `content-disposition: attachment`). */
export type ResolveHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/** True for a friendly download link's path (without its query). */
export const isResolvePath = (path: string): boolean => RESOLVE_PATH.test(path);

/** Registers /v2/ and returns the handler of the friendly download links, for the one /hub/* route. */
export function registerOciDistribution(
  app: FastifyInstance,
  store: CheckpointStore,
  canRead: ReadAccess = async () => undefined,
  referrers: Referrers = async () => [],
): { resolve: ResolveHandler } {
  /** Answers the refusal and returns true when the caller may not read `digest` of `repo`. */
  const refused = async (
    request: FastifyRequest,
    reply: FastifyReply,
    repo: string,
    digest: string,
  ): Promise<boolean> => {
    const refusal = await canRead(request, repo, digest);
    if (!refusal) return false;
    if (refusal.status === 401) reply.header('www-authenticate', 'Bearer realm="computatrum"');
    await distributionError(reply, refusal.status, refusal.status === 401 ? 'UNAUTHORIZED' : 'DENIED', refusal.message);
    return true;
  };

  const sendBlob = async (
    request: FastifyRequest,
    reply: FastifyReply,
    repo: string,
    digest: string,
    filename?: string,
  ) => {
    if (!isDigest(digest)) return distributionError(reply, 400, 'DIGEST_INVALID', `"${digest}" is not a sha256 digest`);
    const size = await store.blobSize(repo, digest);
    if (size === undefined)
      return distributionError(reply, 404, 'BLOB_UNKNOWN', `blob ${digest} is unknown in ${repo}`);
    if (await refused(request, reply, repo, digest)) return reply;
    const head = request.method === 'HEAD';
    const rangeHeader = request.headers.range;
    reply
      .header('accept-ranges', 'bytes')
      .header('docker-content-digest', digest)
      .header('etag', `"${digest}"`)
      .header('cache-control', IMMUTABLE)
      .header('content-type', 'application/octet-stream');
    if (filename) reply.header('content-disposition', attachmentDisposition(filename));
    // Asked only once the caller may read it: a 304 says as much about the bytes as a 200 does.
    if (notModified(request, digest)) return reply.code(304).send();
    const range = parseRange(rangeHeader, size);
    if (range === null) {
      return distributionError(
        reply.header('content-range', `bytes */${size}`),
        416,
        'RANGE_NOT_SATISFIABLE',
        `range ${rangeHeader} is outside 0-${size - 1}`,
      );
    }
    if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
    reply.header('content-length', range ? range.end - range.start + 1 : size);
    if (head) return reply.send();
    const { stream } = await store.openBlob(repo, digest, range);
    return reply.send(stream);
  };

  app.get('/v2/', async (_request, reply) => reply.header('docker-distribution-api-version', 'registry/2.0').send({}));

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    handler: async (request, reply) => {
      reply.header('docker-distribution-api-version', 'registry/2.0');
      const url = request.url.split('?')[0]!;
      const head = request.method === 'HEAD';
      let match: RegExpExecArray | null;
      try {
        if ((match = MANIFEST_PATH.exec(url))) {
          const [, repo, reference] = match as unknown as [string, string, string];
          const manifest = await store.getManifest(repo, decodeURIComponent(reference));
          if (!manifest)
            return distributionError(reply, 404, 'MANIFEST_UNKNOWN', `${repo} has no manifest ${reference}`);
          if (await refused(request, reply, repo, manifest.digest)) return reply;
          reply
            .header('content-type', manifest.mediaType)
            .header('docker-content-digest', manifest.digest)
            .header('etag', `"${manifest.digest}"`)
            // A tag moves (asked again every time, answered 304 while it stays); a digest never does.
            .header('cache-control', isDigest(decodeURIComponent(reference)) ? IMMUTABLE : 'no-cache');
          if (notModified(request, manifest.digest)) return reply.code(304).send();
          reply.header('content-length', manifest.bytes.length);
          return head ? reply.send() : reply.send(manifest.bytes);
        }
        if ((match = BLOB_PATH.exec(url))) {
          const [, repo, digest] = match as unknown as [string, string, string];
          return await sendBlob(request, reply, repo, decodeURIComponent(digest));
        }
        if ((match = REFERRERS_PATH.exec(url))) {
          // The OCI 1.1 referrers API: an image index of the manifests that refer to this one.
          const [, repo, digest] = match as unknown as [string, string, string];
          if (!isDigest(decodeURIComponent(digest)))
            return distributionError(reply, 400, 'DIGEST_INVALID', `"${digest}" is not a sha256 digest`);
          const artifactType = (request.query as { artifactType?: string }).artifactType;
          const manifests = await referrers(repo, decodeURIComponent(digest), artifactType);
          if (artifactType) reply.header('oci-filters-applied', 'artifactType');
          return reply
            .header('content-type', OCI_INDEX)
            .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })));
        }
        if ((match = TAGS_PATH.exec(url))) {
          const repo = match[1]!;
          const tags = await store.listTags(repo);
          if (tags.length === 0) return distributionError(reply, 404, 'NAME_UNKNOWN', `repository ${repo} is unknown`);
          return reply.send({ name: repo, tags });
        }
        return distributionError(
          reply,
          404,
          'UNSUPPORTED',
          `${url} is not part of the read-only OCI Distribution API served here`,
        );
      } catch (error) {
        if (error instanceof StoreError && error.code === 'NAME_INVALID')
          return distributionError(reply, 400, 'NAME_INVALID', error.message);
        throw error;
      }
    },
  });

  // Friendly download links: /hub/<repo>/resolve/<tag or digest>/<file path in the checkpoint>. Fastify
  // allows one /hub/* route, which the pages own (pages/hub.ts): it sends these paths here.
  const resolve: ResolveHandler = async (request, reply) => {
    const match = RESOLVE_PATH.exec(request.url.split('?')[0]!);
    if (!match) return reply.code(404).send({ error: 'not found: use /hub/<repo>/resolve/<ref>/<file>' });
    const [, repo, reference, filepath] = match.map((part) => decodeURIComponent(part)) as [
      string,
      string,
      string,
      string,
    ];
    const manifest = await store.getManifest(repo, reference).catch(() => undefined);
    if (!manifest) return reply.code(404).send({ error: `${repo} has no checkpoint ${reference}` });
    if (await refused(request, reply, repo, manifest.digest)) return reply;
    const layer = (JSON.parse(manifest.bytes.toString('utf8')) as ImageManifest).layers.find(
      (l) => l.annotations?.[FILEPATH_ANNOTATION] === filepath,
    );
    if (!layer) return reply.code(404).send({ error: `${repo}:${reference} has no file ${filepath}` });
    return sendBlob(request, reply, repo, layer.digest, filepath.split('/').pop());
  };
  return { resolve };
}
