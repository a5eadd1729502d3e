// Feedback on the answers instances gave: a label (good or bad), optionally the answer that should
// have been given (a correction) and a comment, on one interaction's completion. One record per
// person per answer (a second replaces the first); anonymous visitors of public instances give it
// on their own exchanges, keyed by their visitor id. Operators hide records, which keeps them out of
// every listing and every later dataset. GraphQL, the chat page, the gateway (/v1/feedback) and the
// CLI all ask here.
import { randomUUID } from 'node:crypto';
import type { Database } from '../db/prisma';
import type { Caller } from './accounts';
import { PlatformError } from './errors';

export const FEEDBACK_LABELS = ['good', 'bad'] as const;
export type FeedbackLabel = (typeof FEEDBACK_LABELS)[number];

/** A correction is an answer, a comment a few lines: anything longer is a mistake or an abuse. */
export const FEEDBACK_LIMITS = { correction: 20_000, comment: 2_000, reason: 2_000 } as const;

export interface FeedbackInput {
  interaction: string;
  label: string;
  correction?: string | null;
  comment?: string | null;
}

export interface FeedbackView {
  id: string;
  interactionId: string;
  /** The account that gave it, or null for an anonymous visitor. */
  authorHandle: string | null;
  label: FeedbackLabel;
  correction: string | null;
  comment: string | null;
  hidden: boolean;
  createdAt: Date;
  updatedAt: Date;
}

type FeedbackRow = NonNullable<Awaited<ReturnType<Database['feedback']['findUnique']>>>;

export function feedbackView(row: FeedbackRow): FeedbackView {
  return {
    id: row.id,
    interactionId: row.interactionId,
    authorHandle: row.authorHandle,
    label: row.label as FeedbackLabel,
    correction: row.correction,
    comment: row.comment,
    hidden: row.hiddenBy !== null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** The author key that makes feedback one per person: the account, or the anonymous visitor. */
function authorOf(
  caller: Caller,
  visitorId: string | undefined,
): { author: string; handle?: string; visitor?: string } {
  if (caller.account) return { author: `account:${caller.account.handle}`, handle: caller.account.handle };
  if (visitorId) return { author: `visitor:${visitorId}`, visitor: visitorId };
  throw new PlatformError('FORBIDDEN', 'sign in (or send an API token) to give feedback');
}

/** Optional text: trimmed, empty is none, too long is refused naming the limit. */
function optionalText(value: string | null | undefined, what: string, limit: number): string | null {
  if (value === undefined || value === null) return null;
  const text = value.trim();
  if (text.length === 0) return null;
  if (text.length > limit)
    throw new PlatformError('BAD_USER_INPUT', `${what} is ${text.length} characters; at most ${limit}`);
  return text;
}

/**
 * The interaction, once `caller` may give feedback on it: whoever had the exchange (the account, or
 * the same anonymous visitor), the instance's owner, and operators. Anyone else is told it does not
 * exist: an exchange is private to those who may read it.
 */
async function interactionFor(db: Database, caller: Caller, visitorId: string | undefined, id: string) {
  const interaction =
    typeof id === 'string' && id.length <= 100 ? await db.interaction.findUnique({ where: { id } }) : null;
  const missing = () =>
    new PlatformError(
      'NOT_FOUND',
      `no interaction ${id}: give feedback with the id the gateway answered in x-computatrum-interaction`,
    );
  if (!interaction) throw missing();
  if (caller.role === 'operator') return interaction;
  if (caller.account && interaction.callerHandle === caller.account.handle) return interaction;
  if (!caller.account && visitorId && interaction.visitorId === visitorId) return interaction;
  if (caller.account) {
    const instance = await db.instance.findUnique({
      where: { id: interaction.instanceId },
      select: { ownerHandle: true },
    });
    if (instance?.ownerHandle === caller.account.handle) return interaction;
  }
  throw missing();
}

/** Records `caller`'s feedback on an answer, replacing their earlier record on it. */
export async function giveFeedback(
  db: Database,
  caller: Caller,
  input: FeedbackInput,
  visitorId?: string,
): Promise<FeedbackView> {
  if (!(FEEDBACK_LABELS as readonly string[]).includes(input.label))
    throw new PlatformError('BAD_USER_INPUT', `label "${input.label}" is not one of: ${FEEDBACK_LABELS.join(', ')}`);
  const correction = optionalText(input.correction, 'the correction', FEEDBACK_LIMITS.correction);
  const comment = optionalText(input.comment, 'the comment', FEEDBACK_LIMITS.comment);
  const who = authorOf(caller, visitorId);
  const interaction = await interactionFor(db, caller, visitorId, input.interaction);
  const content = { label: input.label, correction, comment };
  // A replaced record keeps its id (datasets name records by id) and loses an operator's hiding only
  // when its author changes it: hiding is about what was said.
  const row = await db.feedback.upsert({
    where: { interactionId_author: { interactionId: interaction.id, author: who.author } },
    create: {
      id: randomUUID(),
      interactionId: interaction.id,
      author: who.author,
      authorHandle: who.handle ?? null,
      visitorId: who.visitor ?? null,
      ...content,
    },
    update: { ...content, hiddenBy: null, hiddenReason: null },
  });
  return feedbackView(row);
}

/** Hides a record (operators): it leaves every listing and every later dataset. */
export async function hideFeedback(
  db: Database,
  caller: Caller,
  input: { id: string; reason: string },
): Promise<FeedbackView> {
  if (caller.role !== 'operator' || !caller.account)
    throw new PlatformError('FORBIDDEN', 'only operators hide feedback');
  const reason = optionalText(input.reason, 'the reason', FEEDBACK_LIMITS.reason);
  if (!reason) throw new PlatformError('BAD_USER_INPUT', 'say why the feedback is hidden (a reason)');
  const found = await db.feedback.findUnique({ where: { id: input.id } });
  if (!found) throw new PlatformError('NOT_FOUND', `no feedback ${input.id}`);
  const row = await db.feedback.update({
    where: { id: input.id },
    data: { hiddenBy: caller.account.handle, hiddenReason: reason },
  });
  return feedbackView(row);
}

/**
 * The feedback on an interaction that `caller` may see: operators and the instance's owner see every
 * visible record (operators hidden ones too); anyone else their own record only.
 */
export async function feedbackOn(
  db: Database,
  caller: Caller,
  interaction: { id: string; instanceId: string },
  visitorId?: string,
): Promise<FeedbackView[]> {
  const rows = await db.feedback.findMany({ where: { interactionId: interaction.id }, orderBy: { createdAt: 'asc' } });
  if (caller.role === 'operator') return rows.map(feedbackView);
  const owner = caller.account
    ? (await db.instance.findUnique({ where: { id: interaction.instanceId }, select: { ownerHandle: true } }))
        ?.ownerHandle === caller.account.handle
    : false;
  const own = caller.account ? `account:${caller.account.handle}` : visitorId ? `visitor:${visitorId}` : undefined;
  return rows.filter((r) => r.author === own || (owner && r.hiddenBy === null)).map(feedbackView);
}
