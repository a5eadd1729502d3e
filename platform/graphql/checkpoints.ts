// The germline's daily gpc checkpoints (with their files and download links), and promoting a
// checkpoint to the germline's main.
import { updateBudget } from '../../temporal/budget-client';
import { germlineHandle } from '../../temporal/germline-client';
import { FILEPATH_ANNOTATION, type ImageManifest } from '../../store/types';
import { promoteUpdate } from '../../workflows/germline-api';
import { listDailyCheckpoints } from '../checkpoint-listing';
import { builder, temporal } from './builder';
import { listSize } from './limits';
import { apiError, refused } from './refusals';

export interface CheckpointShape {
  repository: string;
  tag: string;
  day: string | null;
  nickname: string | null;
  digest: string | null;
  size: bigint | null;
  status: string;
  parentDigest: string | null;
}

const FileRef = builder
  .objectRef<{ path: string; size: number; digest: string; downloadUrl: string }>('CheckpointFile')
  .implement({
    fields: (t) => ({
      path: t.exposeString('path'),
      size: t.string({ description: 'bytes, as a string', resolve: (f) => String(f.size) }),
      digest: t.exposeString('digest'),
      downloadUrl: t.exposeString('downloadUrl', { description: 'relative to the platform; answers Range requests' }),
    }),
  });

export const CheckpointRef = builder.objectRef<CheckpointShape>('DailyCheckpoint').implement({
  fields: (t) => ({
    repository: t.exposeString('repository'),
    tag: t.exposeString('tag'),
    day: t.string({ nullable: true, resolve: (c) => c.day }),
    nickname: t.string({ nullable: true, resolve: (c) => c.nickname }),
    digest: t.string({ nullable: true, resolve: (c) => c.digest }),
    size: t.string({
      nullable: true,
      description: 'bytes, as a string (checkpoints outgrow 2^53)',
      resolve: (c) => c.size?.toString() ?? null,
    }),
    pull: t.string({ resolve: (c) => `computatrum pull ${c.repository}:${c.tag} <dir>` }),
    manifestUrl: t.string({ resolve: (c) => `/v2/${c.repository}/manifests/${c.tag}` }),
    parentDigest: t.string({
      nullable: true,
      description: 'the checkpoint it was trained or forked from (lineage)',
      resolve: (c) => c.parentDigest,
    }),
    files: t.field({
      type: [FileRef],
      resolve: async (c, _args, context) => {
        const manifest = await context.store.getManifest(c.repository, c.tag);
        if (!manifest) return [];
        return (JSON.parse(manifest.bytes.toString('utf8')) as ImageManifest).layers.map((layer) => {
          const filepath = layer.annotations?.[FILEPATH_ANNOTATION] ?? layer.digest;
          return {
            path: filepath,
            size: layer.size,
            digest: layer.digest,
            downloadUrl: `/hub/${c.repository}/resolve/${c.tag}/${filepath.split('/').map(encodeURIComponent).join('/')}`,
          };
        });
      },
    }),
  }),
});

const PromotionRef = builder
  .objectRef<{ digest: string; gate: string; metrics: Record<string, number> }>('Promotion')
  .implement({
    fields: (t) => ({
      digest: t.exposeString('digest'),
      gate: t.exposeString('gate'),
      metrics: t.string({ description: 'the metrics judged, as JSON', resolve: (p) => JSON.stringify(p.metrics) }),
    }),
  });

builder.queryFields((t) => ({
  dailyCheckpoints: t.field({
    type: [CheckpointRef],
    description: "The germline's daily gpc checkpoints, newest first.",
    ...listSize(365),
    args: { limit: t.arg.int({ defaultValue: 30 }) },
    resolve: async (_root, { limit }, context) => {
      if (!limit || limit < 1 || limit > 365) throw apiError('BAD_USER_INPUT', 'limit is 1 to 365');
      return listDailyCheckpoints(context.db, context.germline, limit);
    },
  }),
}));

builder.mutationFields((t) => ({
  promote: t.field({
    type: PromotionRef,
    description: "Moves the germline's main to a checkpoint whose training metrics pass the eval gate.",
    authScopes: { operator: true },
    args: { repository: t.arg.string({ required: true }), reference: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      updateBudget(germlineHandle(temporal(context), context.germline), promoteUpdate, {
        repo: args.repository,
        reference: args.reference,
      }).catch(refused),
  }),
}));
