// Feedback on instances' answers: giving it (one record per person per answer, a second replaces the
// first), reading it beside an interaction, and hiding it (operators). Anonymous visitors give
// theirs through the gateway (POST /v1/feedback), which knows them by address.
import { type FeedbackView, feedbackOn, giveFeedback, hideFeedback } from '../feedback';
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
