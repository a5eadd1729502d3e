// Behaviour probes: each image's probes and verdicts and the flags they raise (public: people see
// why an image is flagged, beside their own reports and recordings); starting a probe by hand and
// deciding a flag are the operators'.
import { type ImageFlagView, listFlags, listProbes, type ProbeView, reviewFlag, startProbeByHand } from '../probes';
import type { ProbeFinding } from '../../workflows/probe-api';
import { apiError } from './refusals';
import { builder, temporal } from './builder';
import { refused } from './refusals';

const FLAG_STATES = ['pending', 'confirmed', 'cleared'];

const FindingRef = builder.objectRef<ProbeFinding>('ProbeFinding').implement({
  description: 'What the judge found in one answer.',
  fields: (t) => ({
    prompt: t.exposeString('prompt', { description: "the suite's prompt id ('*': the transcript as a whole)" }),
    category: t.exposeString('category'),
    rule: t.exposeString('rule'),
    why: t.exposeString('why'),
    excerpt: t.string({ nullable: true, resolve: (f) => f.excerpt ?? null }),
  }),
});

const ProbeRef = builder.objectRef<ProbeView>('Probe').implement({
  description: 'A behaviour probe of one checkpoint: the suite put to an instance of it, and the verdict.',
  fields: (t) => ({
    id: t.exposeString('id'),
    workflowId: t.exposeString('workflowId'),
    repository: t.exposeString('repository'),
    digest: t.exposeString('digest'),
    suite: t.exposeString('suite'),
    judge: t.exposeString('judge', { description: 'rules:<suite> or detector:<image>' }),
    trigger: t.exposeString('trigger', { description: 'daily | publish | push | manual' }),
    requestedBy: t.string({ nullable: true, resolve: (p) => p.requestedBy }),
    state: t.exposeString('state', { description: 'running | passed | flagged | error' }),
    attempts: t.exposeInt('attempts'),
    reason: t.string({ nullable: true, resolve: (p) => p.reason }),
    findings: t.field({ type: [FindingRef], resolve: (p) => p.findings }),
    recordingUrl: t.string({
      nullable: true,
      description: 'the transcript, an automated recording of the image',
      resolve: (p) => (p.recordingId ? `/api/recordings/${p.recordingId}` : null),
    }),
    startedAt: t.string({ resolve: (p) => p.startedAt.toISOString() }),
    finishedAt: t.string({ nullable: true, resolve: (p) => p.finishedAt?.toISOString() ?? null }),
  }),
});

const FlagRef = builder.objectRef<ImageFlagView>('ImageFlag').implement({
  description: 'A checkpoint a probe flagged: pending until an operator confirms or clears it.',
  fields: (t) => ({
    repository: t.exposeString('repository'),
    digest: t.exposeString('digest'),
    probeId: t.exposeString('probeId'),
    state: t.exposeString('state', { description: 'pending | confirmed | cleared' }),
    reason: t.exposeString('reason'),
    blocking: t.exposeBoolean('blocking', { description: 'new public instances and purchases are refused' }),
    reviewedBy: t.string({ nullable: true, resolve: (f) => f.reviewedBy }),
    reviewNote: t.string({ nullable: true, resolve: (f) => f.reviewNote }),
    reviewedAt: t.string({ nullable: true, resolve: (f) => f.reviewedAt?.toISOString() ?? null }),
    createdAt: t.string({ resolve: (f) => f.createdAt.toISOString() }),
  }),
});

const StartedProbeRef = builder
  .objectRef<{ workflowId: string; repository: string; digest: string }>('StartedProbe')
  .implement({
    fields: (t) => ({
      workflowId: t.exposeString('workflowId'),
      repository: t.exposeString('repository'),
      digest: t.exposeString('digest'),
    }),
  });

const FlagDecision = builder.enumType('FlagDecision', {
  description: 'clear: a false alarm, it blocks no more; confirm: malicious, it keeps blocking',
  values: { CLEAR: { value: 'clear' }, CONFIRM: { value: 'confirm' } } as const,
});

builder.queryFields((t) => ({
  probes: t.field({
    type: [ProbeRef],
    description: "An image's behaviour probes and their verdicts, newest first.",
    args: {
      repository: t.arg.string({ required: true }),
      digest: t.arg.string(),
      limit: t.arg.int({ defaultValue: 50 }),
    },
    resolve: (_root, { repository, digest, limit }, context) =>
      listProbes(context.db, repository, { ...(digest ? { digest } : {}), limit: limit ?? 50 }),
  }),
  imageFlags: t.field({
    type: [FlagRef],
    description:
      "Checkpoints probes flagged, newest first: one repository's, or all in a state (pending: awaiting an operator).",
    args: { repository: t.arg.string(), state: t.arg.string(), limit: t.arg.int({ defaultValue: 50 }) },
    resolve: (_root, { repository, state, limit }, context) => {
      if (state && !FLAG_STATES.includes(state))
        throw apiError('BAD_USER_INPUT', `state is one of ${FLAG_STATES.join(', ')}, not "${state}"`);
      return listFlags(context.db, {
        ...(repository ? { repository } : {}),
        ...(state ? { state } : {}),
        limit: limit ?? 50,
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  startProbe: t.field({
    type: StartedProbeRef,
    description:
      'Probes a checkpoint now (repo:tag or repo@digest), again if it was probed before; optionally judged by a detector image.',
    authScopes: { operator: true },
    args: { image: t.arg.string({ required: true }), detector: t.arg.string() },
    resolve: (_root, args, context) => {
      const client = temporal(context);
      if (!context.training)
        throw apiError('UNAVAILABLE', "the worker's task queue is not configured on this platform process");
      return startProbeByHand(
        {
          client,
          db: context.db,
          store: context.store,
          germline: context.germline,
          taskQueue: context.training.taskQueue,
        },
        context.caller.account!,
        args,
      ).catch(refused);
    },
  }),
  reviewImageFlag: t.field({
    type: FlagRef,
    description:
      "An operator's decision on a flagged checkpoint: CLEAR (it blocks no more) or CONFIRM (it keeps blocking).",
    authScopes: { operator: true },
    args: {
      repository: t.arg.string({ required: true }),
      digest: t.arg.string({ required: true }),
      decision: t.arg({ type: FlagDecision, required: true }),
      note: t.arg.string(),
    },
    resolve: (_root, args, context) => reviewFlag(context.db, context.caller.account!, args).catch(refused),
  }),
}));
