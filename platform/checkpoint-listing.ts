// The checkpoints of a repository, read once for the hub's pages and for GET /api/checkpoints/<repo>
// (JSON): tags with nickname, size, digest, files, parent and download links, newest first.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../db/prisma';
import { ANNOTATION } from '../store/checkpoint';
import { assertRepository } from '../store/names';
import { type CheckpointStore, FILEPATH_ANNOTATION, type ImageManifest, StoreError } from '../store/types';
import { germlineRepository } from '../workflows/names';
import { etagOf, matchesEtag } from './public-cache';

export interface CheckpointFile {
  path: string;
  size: number;
  digest: string;
}

/** One tag of a repository, as its manifest and its Checkpoint row describe it. */
export interface CheckpointVersion {
  tag: string;
  digest: string;
  nickname: string | null;
  size: number;
  files: CheckpointFile[];
  /** The digest it was trained or forked from (lineage). */
  parent: string | null;
  created: string | null;
  trainingRun: string | null;
  metrics: Record<string, unknown> | null;
}

export interface Checkpoints {
  repository: string;
  tags: CheckpointVersion[];
  skippedDays: Array<{ day: string; reason: string | null }>;
}

export interface CheckpointListing {
  repository: string;
  tags: Array<{
    tag: string;
    digest: string;
    nickname: string | null;
    size: number;
    files: number;
    parent: string | null;
    created: string | null;
    pull: string;
  }>;
  skippedDays: Array<{ day: string; reason: string | null }>;
}

function parseMetrics(text: string | undefined): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The repository's tags, newest first; undefined when the repository is unknown. Throws StoreError NAME_INVALID for a bad name. */
export async function readCheckpoints(
  store: CheckpointStore,
  db: Database,
  repository: string,
): Promise<Checkpoints | undefined> {
  assertRepository(repository);
  const [tags, rows] = await Promise.all([
    store.listTags(repository),
    db.checkpoint.findMany({ where: { repository } }),
  ]);
  if (tags.length === 0 && rows.length === 0) return undefined;
  const byTag = new Map(rows.map((row) => [row.tag, row]));
  const versions = await Promise.all(
    tags.map(async (tag): Promise<CheckpointVersion | undefined> => {
      const manifest = await store.getManifest(repository, tag);
      if (!manifest) return undefined;
      const parsed = JSON.parse(manifest.bytes.toString('utf8')) as ImageManifest;
      return {
        tag,
        digest: manifest.digest,
        nickname: byTag.get(tag)?.nickname ?? null,
        size: parsed.layers.reduce((sum, l) => sum + l.size, 0),
        files: parsed.layers.map((l) => ({
          path: l.annotations?.[FILEPATH_ANNOTATION] ?? l.digest,
          size: l.size,
          digest: l.digest,
        })),
        parent: parsed.annotations?.[ANNOTATION.parent] ?? null,
        created: parsed.annotations?.[ANNOTATION.created] ?? null,
        trainingRun: parsed.annotations?.[ANNOTATION.trainingRun] ?? null,
        metrics: parseMetrics(parsed.annotations?.[ANNOTATION.metrics]),
      };
    }),
  );
  const listed = versions.filter((v): v is CheckpointVersion => v !== undefined);
  listed.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || b.tag.localeCompare(a.tag));
  return {
    repository,
    tags: listed,
    skippedDays: rows.filter((r) => r.status === 'skipped').map((r) => ({ day: r.day ?? '', reason: r.reason })),
  };
}

/** The germline's published daily gpc checkpoints (their Checkpoint rows), newest day first. */
export function listDailyCheckpoints(db: Database, germline: string, limit: number) {
  return db.checkpoint.findMany({
    where: { repository: germlineRepository(germline), status: 'published' },
    orderBy: { day: 'desc' },
    take: limit,
  });
}

export function registerCheckpointListing(app: FastifyInstance, store: CheckpointStore, db: Database): void {
  app.get<{ Params: { '*': string } }>('/api/checkpoints/*', async (request, reply) => {
    const repository = request.params['*'];
    let checkpoints: Checkpoints | undefined;
    try {
      checkpoints = await readCheckpoints(store, db, repository);
    } catch (error) {
      if (error instanceof StoreError && error.code === 'NAME_INVALID')
        return reply.code(400).send({ error: error.message });
      throw error;
    }
    if (!checkpoints) return reply.code(404).send({ error: `repository ${repository} is unknown` });
    const listing: CheckpointListing = {
      repository,
      tags: checkpoints.tags.map((v) => ({
        tag: v.tag,
        digest: v.digest,
        nickname: v.nickname,
        size: v.size,
        files: v.files.length,
        parent: v.parent,
        created: v.created,
        pull: `computatrum pull ${repository}:${v.tag} <dir>`,
      })),
      skippedDays: checkpoints.skippedDays,
    };
    // Asked again every time (a tag may be added), answered 304 while the listing is the same.
    const body = JSON.stringify(listing);
    const etag = etagOf(body);
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (matchesEtag(request.headers['if-none-match'], etag)) return reply.code(304).send();
    return reply.type('application/json; charset=utf-8').send(body);
  });
}
