// Training runs: listing them (their costs and payers are for operators), and a trainer starting one
// on the platform's trainer, paid from their credit.
import { startTrainerRun } from '../credit';
import { listTrainingRuns } from '../training-runs';
import { amount, builder, training } from './builder';
import { refused } from './refusals';

export interface RunShape {
  id: string;
  payer: string;
  state: string;
  outputRepository: string;
  outputBranch: string;
  gpus: number;
  gpuSeconds: number;
  step: number | null;
  loss: number | null;
  cost: bigint | null;
  maxCost: bigint;
  outputDigest: string | null;
  /** The feedback datasets it learned from: [{ repository, digest }]. */
  datasets: unknown;
  createdAt: Date;
}

export const RunRef = builder.objectRef<RunShape>('TrainingRun').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    state: t.exposeString('state'),
    outputRepository: t.exposeString('outputRepository'),
    outputBranch: t.exposeString('outputBranch'),
    gpus: t.exposeInt('gpus'),
    gpuSeconds: t.exposeInt('gpuSeconds'),
    step: t.int({ nullable: true, resolve: (r) => r.step }),
    loss: t.float({ nullable: true, resolve: (r) => r.loss }),
    outputDigest: t.string({ nullable: true, resolve: (r) => r.outputDigest }),
    createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
    payer: t.string({ nullable: true, authScopes: { operator: true }, resolve: (r) => r.payer }),
    cost: t.string({
      nullable: true,
      authScopes: { operator: true },
      description: 'minor units charged, once settled',
      resolve: (r) => r.cost?.toString() ?? null,
    }),
    maxCost: t.string({ nullable: true, authScopes: { operator: true }, resolve: (r) => r.maxCost.toString() }),
  }),
});

const StartedRunRef = builder
  .objectRef<{ id: string; workflowId: string; maxCost: string }>('StartedTrainingRun')
  .implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      workflowId: t.exposeString('workflowId', { description: 'follow it in the Temporal UI' }),
      maxCost: t.exposeString('maxCost', { description: 'minor units reserved from your credit' }),
    }),
  });

builder.queryFields((t) => ({
  trainingRuns: t.field({
    type: [RunRef],
    description: 'Training runs, newest first; `repository` keeps those publishing there.',
    args: { repository: t.arg.string(), limit: t.arg.int({ defaultValue: 30 }) },
    resolve: (_root, { repository, limit }, context) => listTrainingRuns(context.db, { repository, limit }),
  }),
}));

builder.mutationFields((t) => ({
  startTrainingRun: t.field({
    type: StartedRunRef,
    description:
      "Trains the platform's trainer from `base` into trainers/<you>/…:<branch>, paid from your credit (at most maxCost).",
    authScopes: { trainer: true },
    args: {
      base: t.arg.string({ description: 'the checkpoint to start from, e.g. germline/computatrum:gpc-2026-11-30' }),
      datasets: t.arg.stringList({
        description: 'feedback datasets to learn from, e.g. germline/computatrum@sha256:… (see `datasets`)',
      }),
      repository: t.arg.string({ required: true, description: 'trainers/<you>/<name>' }),
      branch: t.arg.string({ defaultValue: 'main' }),
      maxCost: t.arg.string({ required: true }),
      gpus: t.arg.int({ defaultValue: 1 }),
    },
    resolve: async (_root, args, context) => {
      const { client, settings } = training(context);
      const started = await startTrainerRun(
        { client, db: context.db, store: context.store, currency: context.currency, settings },
        context.caller.account!,
        {
          base: args.base ?? null,
          datasets: args.datasets ?? null,
          repository: args.repository,
          branch: args.branch ?? 'main',
          maxCost: amount(args.maxCost, context, 'maxCost'),
          gpus: args.gpus ?? 1,
        },
      ).catch(refused);
      return { id: started.id, workflowId: started.workflowId, maxCost: started.request.maxCost };
    },
  }),
}));
