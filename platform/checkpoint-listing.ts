// GET /api/checkpoints/<repo>: the tags of a repository with nickname, size, digest, parent and
// download links, newest first (the GraphQL API will serve the same data later).
import type { FastifyInstance } from 'fastify';
import type { Database } from '../activities/db/prisma';
import { ANNOTATION } from '../activities/store/checkpoint';
import { assertRepository } from '../activities/store/names';
import { type CheckpointStore, type ImageManifest, StoreError } from '../activities/store/types';

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

export function registerCheckpointListing(app: FastifyInstance, store: CheckpointStore, db: Database): void {
  app.get<{ Params: { '*': string } }>('/api/checkpoints/*', async (request, reply) => {
    const repository = request.params['*'];
    try {
      assertRepository(repository);
    } catch (error) {
      return reply.code(400).send({ error: (error as StoreError).message });
    }
    const [tags, rows] = await Promise.all([
      store.listTags(repository),
      db.checkpoint.findMany({ where: { repository } }),
    ]);
    if (tags.length === 0 && rows.length === 0) return reply.code(404).send({ error: `repository ${repository} is unknown` });
    const byTag = new Map(rows.map((row) => [row.tag, row]));
    const listing: CheckpointListing = { repository, tags: [], skippedDays: [] };
    for (const tag of tags) {
      const manifest = await store.getManifest(repository, tag);
      if (!manifest) continue;
      const parsed = JSON.parse(manifest.bytes.toString('utf8')) as ImageManifest;
      listing.tags.push({
        tag,
        digest: manifest.digest,
        nickname: byTag.get(tag)?.nickname ?? null,
        size: parsed.layers.reduce((sum, l) => sum + l.size, 0),
        files: parsed.layers.length,
        parent: parsed.annotations?.[ANNOTATION.parent] ?? null,
        created: parsed.annotations?.[ANNOTATION.created] ?? null,
        pull: `computatrum pull ${repository}:${tag} <dir>`,
      });
    }
    listing.tags.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || b.tag.localeCompare(a.tag));
    listing.skippedDays = rows.filter((r) => r.status === 'skipped').map((r) => ({ day: r.day ?? '', reason: r.reason }));
    return listing;
  });
}
