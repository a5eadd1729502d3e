// The hub: its images, the community's threads and comments, recordings of sessions with the
// model, reports for the operators, and forking a checkpoint.
import {
  addComment,
  attachRecording,
  type CommentView,
  forkImage,
  type ImageView,
  listImages,
  listRecordings,
  listReports,
  listThreads,
  RECORDINGS_PER_IMAGE,
  type RecordingView,
  reportImage,
  type ReportView,
  startThread,
  THREADS_PER_IMAGE,
  type ThreadView,
} from '../hub';
import { builder } from './builder';
import { listSize } from './limits';
import { refused } from './refusals';

/** The hub's images are not paged (one per repository): counted as this many. */
const IMAGES_COUNTED = 50;

const ForkRef = builder.objectRef<{ repository: string; branch: string; digest: string }>('Fork').implement({
  fields: (t) => ({
    repository: t.exposeString('repository'),
    branch: t.exposeString('branch'),
    digest: t.exposeString('digest'),
  }),
});

const CommentRef = builder.objectRef<CommentView>('Comment').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    author: t.exposeString('author'),
    body: t.exposeString('body'),
    createdAt: t.string({ resolve: (c) => c.createdAt.toISOString() }),
  }),
});

const ThreadRef = builder.objectRef<ThreadView>('Thread').implement({
  description: 'A discussion of an image; its first comment is the opening text.',
  fields: (t) => ({
    id: t.exposeString('id'),
    repository: t.exposeString('repository'),
    reference: t.string({
      nullable: true,
      description: 'the tag or digest it is about; null: the image as a whole',
      resolve: (th) => th.reference,
    }),
    title: t.exposeString('title'),
    author: t.exposeString('author'),
    createdAt: t.string({ resolve: (th) => th.createdAt.toISOString() }),
    // Not paged: counted as the default list size.
    comments: t.field({ type: [CommentRef], resolve: (th) => th.comments }),
  }),
});

const RecordingRef = builder.objectRef<RecordingView>('Recording').implement({
  description: "A recording of a session with the model, stored as a referrer of the image's manifest.",
  fields: (t) => ({
    id: t.exposeString('id'),
    repository: t.exposeString('repository'),
    subjectDigest: t.exposeString('subjectDigest'),
    reference: t.string({ nullable: true, resolve: (r) => r.reference }),
    title: t.exposeString('title'),
    filename: t.exposeString('filename'),
    mediaType: t.exposeString('mediaType'),
    size: t.exposeInt('size'),
    author: t.exposeString('author'),
    createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
    downloadUrl: t.exposeString('downloadUrl'),
  }),
});

const ReportRef = builder.objectRef<ReportView>('Report').implement({
  fields: (t) => ({
    id: t.exposeString('id'),
    repository: t.exposeString('repository'),
    reference: t.string({ nullable: true, resolve: (r) => r.reference }),
    reason: t.exposeString('reason'),
    reporter: t.exposeString('reporter'),
    createdAt: t.string({ resolve: (r) => r.createdAt.toISOString() }),
  }),
});

const ImageRef = builder.objectRef<ImageView>('Image').implement({
  description: "An image on the hub: a repository of checkpoints (the germline, a child, a trainer's breed).",
  fields: (t) => ({
    repository: t.exposeString('repository'),
    kind: t.exposeString('kind', { description: 'germline | child | trainer' }),
    tags: t.exposeInt('tags'),
    latestTag: t.string({ nullable: true, resolve: (i) => i.latestTag }),
    latestNickname: t.string({ nullable: true, resolve: (i) => i.latestNickname }),
    breedTitle: t.string({ nullable: true, resolve: (i) => i.breed?.title ?? null }),
    price: t.string({
      nullable: true,
      description: 'minor units as a string; null: free',
      resolve: (i) => i.breed?.price?.toString() ?? null,
    }),
    reports: t.exposeInt('reports'),
    threads: t.field({
      type: [ThreadRef],
      ...listSize(THREADS_PER_IMAGE),
      resolve: (i, _args, context) => context.loaders.threadsOf.load(i.repository),
    }),
    recordings: t.field({
      type: [RecordingRef],
      ...listSize(RECORDINGS_PER_IMAGE),
      resolve: (i, _args, context) => context.loaders.recordingsOf.load(i.repository),
    }),
  }),
});

builder.queryFields((t) => ({
  images: t.field({
    type: [ImageRef],
    description: "The hub's images, the germline's first; `search` matches names, breed titles and nicknames.",
    args: { search: t.arg.string() },
    ...listSize(IMAGES_COUNTED),
    resolve: (_root, { search }, context) =>
      listImages(context.db, context.store, { germline: context.germline, ...(search ? { search } : {}) }),
  }),
  threads: t.field({
    type: [ThreadRef],
    ...listSize(THREADS_PER_IMAGE),
    args: { repository: t.arg.string({ required: true }) },
    resolve: (_root, { repository }, context) => listThreads(context.db, repository),
  }),
  recordings: t.field({
    type: [RecordingRef],
    ...listSize(RECORDINGS_PER_IMAGE),
    args: { repository: t.arg.string({ required: true }) },
    resolve: (_root, { repository }, context) => listRecordings(context.db, repository),
  }),
  reports: t.field({
    type: [ReportRef],
    description: 'Images flagged by the community, newest first.',
    authScopes: { operator: true },
    ...listSize(500),
    args: { repository: t.arg.string(), limit: t.arg.int({ defaultValue: 50 }) },
    resolve: (_root, { repository, limit }, context) =>
      listReports(context.db, { ...(repository ? { repository } : {}), limit: limit ?? 50 }),
  }),
}));

builder.mutationFields((t) => ({
  fork: t.field({
    type: ForkRef,
    description:
      'Forks a checkpoint (no bytes copied) to a branch under trainers/<your handle>/ (operators: anywhere).',
    authScopes: { trainer: true },
    args: { from: t.arg.string({ required: true }), to: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      forkImage(context.db, context.store, context.caller.account!, args.from, args.to).catch(refused),
  }),
  startThread: t.field({
    type: ThreadRef,
    description: 'Opens a discussion of an image (or one checkpoint of it); the body is its first comment.',
    authScopes: { trainer: true },
    args: {
      repository: t.arg.string({ required: true }),
      reference: t.arg.string(),
      title: t.arg.string({ required: true }),
      body: t.arg.string({ required: true }),
    },
    resolve: (_root, args, context) =>
      startThread(context.db, context.store, context.caller.account!, args).catch(refused),
  }),
  comment: t.field({
    type: CommentRef,
    authScopes: { trainer: true },
    args: { threadId: t.arg.string({ required: true }), body: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => addComment(context.db, context.caller.account!, args).catch(refused),
  }),
  attachRecording: t.field({
    type: RecordingRef,
    description: 'Attaches a text transcript of a session with the model (files: POST /api/recordings/<repo>).',
    authScopes: { trainer: true },
    args: {
      repository: t.arg.string({ required: true }),
      reference: t.arg.string({ required: true, description: 'the tag or digest recorded' }),
      title: t.arg.string({ required: true }),
      transcript: t.arg.string({ required: true }),
      filename: t.arg.string({ defaultValue: 'transcript.txt' }),
    },
    resolve: (_root, args, context) =>
      attachRecording(context.db, context.store, context.caller.account!, {
        repository: args.repository,
        reference: args.reference,
        title: args.title,
        filename: args.filename ?? 'transcript.txt',
        content: Buffer.from(args.transcript, 'utf8'),
      }).catch(refused),
  }),
  reportImage: t.field({
    type: ReportRef,
    description: 'Flags an image (or one checkpoint of it) for the operators, with the reason.',
    authScopes: { trainer: true },
    args: {
      repository: t.arg.string({ required: true }),
      reference: t.arg.string(),
      reason: t.arg.string({ required: true }),
    },
    resolve: (_root, args, context) =>
      reportImage(context.db, context.store, context.caller.account!, args).catch(refused),
  }),
}));
