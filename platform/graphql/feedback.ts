// Feedback on instances' answers: giving it (one record per person per answer, a second replaces the
// first), reading it beside an interaction, and hiding it (operators); and the datasets built from it.
// Anonymous visitors give theirs through the gateway (POST /v1/feedback), which knows them by address.
import type { BuiltDataset } from '../../activities/datasets';
import {
  buildAccountDataset,
  checkpointsLearnedFrom,
  type DatasetRow,
  datasetsOf,
  datasetFeedback,
  readableDatasetsOfRun,
} from '../datasets';
import { type FeedbackView, feedbackOn, giveFeedback, hideFeedback } from '../feedback';
import { CheckpointRef } from './checkpoints';
import { RunRef } from './training';
import { builder } from './builder';
import { InteractionRef } from './instances';
import { refused } from './refusals';

const FeedbackRef = builder.objectRef<FeedbackView>('Feedback').implement({
  description: 'What one person said about one answer: a label, optionally the answer that should have been given.',
  fields: (t) => ({
    id: t.exposeString('id'),
    interactionId: t.exposeString('interactionId', { description: 'the exchange whose answer it is about' }),
    author: t.string({
      nullable: true,
      description: 'the handle of the account that gave it; null: an anonymous visitor',
      resolve: (f) => f.authorHandle,
    }),
    label: t.exposeString('label', { description: 'good | bad' }),
    correction: t.exposeString('correction', { nullable: true, description: 'the answer that should have been given' }),
    comment: t.exposeString('comment', { nullable: true }),
    hidden: t.exposeBoolean('hidden', { description: 'hidden by an operator: in no listing and no later dataset' }),
    createdAt: t.string({ resolve: (f) => f.createdAt.toISOString() }),
    updatedAt: t.string({ resolve: (f) => f.updatedAt.toISOString() }),
  }),
});

builder.objectField(InteractionRef, 'feedback', (t) =>
  t.field({
    type: [FeedbackRef],
    description:
      "The feedback on this answer: the instance's owner sees every visible record, operators hidden ones too.",
    resolve: (interaction, _args, context) => feedbackOn(context.db, context.caller, interaction),
  }),
);

builder.mutationFields((t) => ({
  giveFeedback: t.field({
    type: FeedbackRef,
    description:
      "Says what you think of an answer (an interaction's completion; its id is the gateway's x-computatrum-interaction header): good or bad, and optionally the answer that should have been given. Your second feedback on an answer replaces the first.",
    authScopes: { trainer: true },
    args: {
      interaction: t.arg.string({ required: true }),
      label: t.arg.string({ required: true, description: 'good | bad' }),
      correction: t.arg.string({ description: 'the answer that should have been given' }),
      comment: t.arg.string(),
    },
    resolve: (_root, args, context) => giveFeedback(context.db, context.caller, args).catch(refused),
  }),
  hideFeedback: t.field({
    type: FeedbackRef,
    description: 'Hides a feedback record from every listing and every later dataset (operators).',
    authScopes: { operator: true },
    args: { id: t.arg.string({ required: true }), reason: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => hideFeedback(context.db, context.caller, args).catch(refused),
  }),
}));

const DatasetRef = builder.objectRef<DatasetRow>('Dataset').implement({
  description:
    "A feedback dataset: an OCI artifact (application/vnd.computatrum.dataset.v1) beside the image it is about, holding the feedback on that image's answers as JSONL.",
  fields: (t) => ({
    repository: t.exposeString('repository'),
    digest: t.exposeString('digest', { description: "the dataset's manifest: pull it by repository@digest" }),
    subjectDigest: t.exposeString('subjectDigest', { description: 'the image manifest it is about' }),
    records: t.exposeInt('records', { description: 'feedback records it holds' }),
    preferences: t.exposeInt('preferences', {
      description: 'rows of preferences.jsonl (a correction over the answer)',
    }),
    labelled: t.exposeInt('labelled', { description: 'rows of labelled.jsonl (an answer labelled good or bad)' }),
    transcripts: t.exposeInt('transcripts', { description: 'rows of transcripts.jsonl (conversations to learn)' }),
    asOf: t.string({
      nullable: true,
      description: "the newest record's time",
      resolve: (d) => d.asOf?.toISOString() ?? null,
    }),
    builtBy: t.exposeString('builtBy', { description: 'the account that built it, or the germline' }),
    createdAt: t.string({ resolve: (d) => d.createdAt.toISOString() }),
  }),
});

const BuiltDatasetRef = builder.objectRef<BuiltDataset>('BuiltDataset').implement({
  fields: (t) => ({
    repository: t.exposeString('repository'),
    digest: t.exposeString('digest'),
    subjectDigest: t.exposeString('subjectDigest'),
    records: t.int({ resolve: (d) => d.records.counts.records }),
    created: t.exposeBoolean('created', { description: 'false: the same records had been built before (same digest)' }),
  }),
});

builder.queryFields((t) => ({
  datasets: t.field({
    type: [DatasetRef],
    description: "An image's feedback datasets, newest first.",
    args: { repository: t.arg.string({ required: true }) },
    resolve: (_root, { repository }, context) => datasetsOf(context.db, context.caller, repository).catch(refused),
  }),
}));

builder.mutationFields((t) => ({
  buildDataset: t.field({
    type: BuiltDatasetRef,
    description:
      "Builds a dataset of the new feedback on an image's answers (since its newest dataset, or `since`) and pushes it beside the image. Your own private instances' exchanges are in it; no one else's.",
    authScopes: { trainer: true },
    args: {
      image: t.arg.string({ required: true, description: 'repository:tag or repository@digest' }),
      since: t.arg.string({ description: 'only feedback given at or after this time (ISO 8601)' }),
    },
    resolve: (_root, args, context) => buildAccountDataset(context, context.caller, args).catch(refused),
  }),
}));

// Lineage, both ways: a daily checkpoint → the run that made it → the datasets it learned from →
// their feedback records → the interactions they judged; and a record → the checkpoints it is in.
builder.objectField(CheckpointRef, 'trainingRun', (t) =>
  t.field({
    type: RunRef,
    nullable: true,
    description: 'the training run that made this checkpoint (null: pushed or forked, not trained here)',
    resolve: (c, _args, context) => (c.digest ? context.loaders.runThatMade.load(c.digest) : null),
  }),
);

builder.objectField(RunRef, 'datasets', (t) =>
  t.field({
    type: [DatasetRef],
    description: 'the feedback datasets the run learned from',
    resolve: (run, _args, context) => readableDatasetsOfRun(context.db, context.caller, run),
  }),
);

builder.objectField(DatasetRef, 'feedback', (t) =>
  t.field({
    type: [FeedbackRef],
    description:
      'the feedback records the dataset holds, as its files show them (who gave them, and their comments: operators only)',
    resolve: (dataset, _args, context) => datasetFeedback(context.db, context.caller, dataset).catch(refused),
  }),
);

builder.objectField(FeedbackRef, 'learnedBy', (t) =>
  t.field({
    type: [CheckpointRef],
    description: 'the published checkpoints trained on a dataset that holds this record',
    resolve: (feedback, _args, context) => checkpointsLearnedFrom(context.db, feedback.id),
  }),
);
