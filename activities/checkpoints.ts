// Daily gpc tagging: the germline's head checkpoint becomes `gpc-YYYY-MM-DD` with a nickname, a row
// in PostgreSQL and a model card. Every step is idempotent, so a retried activity or a second run
// for the same day changes nothing.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Prisma } from '@prisma/client';
import { pricedBreedsGoverning } from '../db/breed-terms';
import type { Database } from '../db/prisma';
import { ANNOTATION, forkCheckpoint, tagCheckpoint } from '../store/checkpoint';
import type { CheckpointStore, ImageManifest } from '../store/types';
import { nicknameCandidate, NICKNAME_SPACE } from '../workflows/nickname';
import { germlineRepository } from '../workflows/names';

export interface DailyTagInput {
  germline: string;
  /** UTC day, YYYY-MM-DD. */
  day: string;
}

export interface DailyTagResult {
  status: 'published' | 'skipped';
  repository: string;
  tag: string;
  digest?: string;
  nickname?: string;
  reason?: string;
}

export interface CheckpointActivities {
  tagDailyCheckpoint(input: DailyTagInput): Promise<DailyTagResult>;
  /** A checkpoint's digest and the training metrics its manifest records. */
  readCheckpointMetrics(input: {
    repo: string;
    reference: string;
  }): Promise<{ digest: string; metrics: Record<string, number> }>;
  /** Forks `from` to `to` (no bytes copied); undefined when `from` has no such tag yet. */
  forkBranch(input: {
    from: { repo: string; reference: string };
    to: { repo: string; branch: string };
  }): Promise<string | undefined>;
}

export const HEAD_BRANCH = 'main';

function modelCard(
  result: Required<Pick<DailyTagResult, 'repository' | 'tag' | 'digest' | 'nickname'>>,
  manifest: ImageManifest,
  size: number,
): string {
  const files = manifest.layers.map(
    (l) => `| ${l.annotations?.['org.cncf.model.filepath']} | ${l.size} | \`${l.digest}\` |`,
  );
  return [
    `# ${result.repository}:${result.tag} — "${result.nickname}"`,
    '',
    `The daily checkpoint of the independent germline computatrum for ${result.tag.slice(4)}.`,
    '',
    `- digest: \`${result.digest}\``,
    `- size: ${size} bytes in ${manifest.layers.length} files`,
    `- parent: ${manifest.annotations?.[ANNOTATION.parent] ? `\`${manifest.annotations[ANNOTATION.parent]}\`` : 'none (a root checkpoint)'}`,
    '',
    'Pull it with any OCI client (`oras pull`, `skopeo copy`) or `computatrum pull ' +
      `${result.repository}:${result.tag} <dir>\`.`,
    '',
    '| file | bytes | sha256 |',
    '| --- | ---: | --- |',
    ...files,
    '',
  ].join('\n');
}

export function createCheckpointActivities(deps: {
  store: CheckpointStore;
  db: Database;
  dataDir: string;
}): CheckpointActivities {
  const { store, db } = deps;
  return {
    async readCheckpointMetrics({ repo, reference }) {
      // The germline's head is free for everyone: a paid breed's content never becomes it.
      const paid = await pricedBreedsGoverning(db, repo);
      if (paid.length > 0) {
        throw ApplicationFailure.create({
          type: 'PaidContent',
          nonRetryable: true,
          message: `${repo} holds content of the paid breed ${paid.map((b) => b.repository).join(', ')}: promoting it would give it away for free; promote a checkpoint free of paid content`,
        });
      }
      const stored = await store.getManifest(repo, reference);
      if (!stored)
        throw ApplicationFailure.create({
          type: 'CheckpointUnknown',
          nonRetryable: true,
          message: `${repo} has no ${reference} in ${store.location}`,
        });
      const annotation = (JSON.parse(stored.bytes.toString('utf8')) as ImageManifest).annotations?.[ANNOTATION.metrics];
      let metrics: Record<string, number> = {};
      try {
        const parsed = annotation ? (JSON.parse(annotation) as Record<string, unknown>) : {};
        metrics = Object.fromEntries(
          Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number'),
        );
      } catch {
        log.warn('a checkpoint has unreadable metrics', { repo, reference });
      }
      return { digest: stored.digest, metrics };
    },

    async forkBranch({ from, to }) {
      if (!(await store.getManifest(from.repo, from.reference))) return undefined;
      return forkCheckpoint(store, from, to);
    },

    async tagDailyCheckpoint({ germline, day }) {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) throw new Error(`day must be YYYY-MM-DD, got ${day}`);
      const repository = germlineRepository(germline);
      const tag = `gpc-${day}`;
      const id = `${repository}:${tag}`;
      const recorded = await db.checkpoint.findUnique({ where: { id } });
      if (recorded?.status === 'skipped')
        return { status: 'skipped', repository, tag, reason: recorded.reason ?? undefined };

      const head = recorded?.digest
        ? await store.getManifest(repository, recorded.digest)
        : await store.getManifest(repository, HEAD_BRANCH);
      if (!head) {
        const reason = `no head checkpoint yet: push one to ${repository}:${HEAD_BRANCH}`;
        await db.checkpoint.createMany({
          data: [{ id, repository, tag, day, status: 'skipped', reason }],
          skipDuplicates: true,
        });
        log.warn('daily checkpoint skipped', { repository, tag, reason });
        return { status: 'skipped', repository, tag, reason };
      }
      await tagCheckpoint(store, repository, head.digest, tag);
      const manifest = JSON.parse(head.bytes.toString('utf8')) as ImageManifest;
      const size = manifest.layers.reduce((sum, l) => sum + l.size, 0);

      let nickname = recorded?.nickname ?? undefined;
      for (let attempt = 0; nickname === undefined; attempt++) {
        if (attempt >= NICKNAME_SPACE) throw new Error(`every nickname of ${repository} is taken`);
        const candidate = nicknameCandidate(day, head.digest, attempt);
        try {
          await db.checkpoint.create({
            data: {
              id,
              repository,
              tag,
              day,
              status: 'published',
              nickname: candidate,
              digest: head.digest,
              size: BigInt(size),
              parentDigest: manifest.annotations?.[ANNOTATION.parent] ?? null,
            },
          });
          nickname = candidate;
        } catch (error) {
          if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')) throw error;
          const row = await db.checkpoint.findUnique({ where: { id } });
          if (row?.nickname) nickname = row.nickname; // recorded meanwhile by an earlier attempt
          // otherwise another day holds this nickname: try the next candidate
        }
      }
      const result = { status: 'published' as const, repository, tag, digest: head.digest, nickname };
      const card = path.join(deps.dataDir, 'model-cards', repository, `${tag}.md`);
      await mkdir(path.dirname(card), { recursive: true });
      await writeFile(card, modelCard(result, manifest, size));
      log.info('daily checkpoint published', { repository, tag, nickname, digest: head.digest });
      return result;
    },
  };
}
