// The germline's decision policies: from an observation to proposals (spawn, fund, train, retire),
// each with the reason it was made. Proposals are only proposals: the workflow judges every one
// against the guardrails (workflows/guardrails.ts) before anything is done.
// - `rules`: deterministic thresholds, documented below;
// - `http`: the observation is POSTed to an agent (for example the computatrum model itself), whose
//   answer is validated; a slow, failing or malformed answer proposes nothing and says why.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Database } from '../db/prisma';
import { type ChildSummary, type Judgement, type Observation, type Proposal } from '../workflows/guardrails';
import { NAME } from '../workflows/names';

export interface RulesPolicyParams {
  /** Breeds the germline may spawn, in order: a child is named after its purpose. */
  purposes: string[];
  /** A new child's allowance, as a share of the available funds (percent, whole number). */
  allowancePercent: number;
  /** Most one training run of a child may cost, in minor units. */
  runCost: string;
  /** Spawn only while the funds left would cover this many days of net burn (stricter than the guardrail). */
  spawnRunwayDays: number;
  /** A child whose last this-many training losses did not improve is retired. */
  patience: number;
  /** The germline learns from feedback once this many new records have arrived (0: never by itself). */
  feedbackThreshold: number;
}

export const DEFAULT_RULES: RulesPolicyParams = {
  purposes: ['coder', 'animator', 'web-agent', 'tutor'],
  allowancePercent: 10,
  runCost: '500',
  spawnRunwayDays: 60,
  patience: 3,
  feedbackThreshold: 10,
};

export interface PolicyProposal {
  proposal: Proposal;
  /** Why the policy proposes it, in a sentence an operator reads. */
  why: string;
}

export interface PolicyAnswer {
  policy: 'rules' | 'http';
  proposals: PolicyProposal[];
  /** Set when the policy could not answer (timeout, error, malformed): nothing is proposed. */
  rejected?: string;
}

/** A child's training results, newest last; absent when it has not trained yet. */
export type TrainingHistory = Record<string, number[]>;

function improving(losses: number[], patience: number): boolean {
  if (losses.length <= patience) return true;
  const best = Math.min(...losses.slice(0, losses.length - patience));
  return losses.slice(-patience).some((loss) => loss < best);
}

/**
 * The rules policy (a child with a training run in flight is left alone until it settles):
 * 1. retire an active child that cannot pay for another run, or whose last `patience` losses did
 *    not beat its best before them;
 * 2. train every other active child with allowance left for a run of `runCost`;
 * 3. spawn the first purpose not yet taken, with `allowancePercent` of the available funds, while
 *    the funds left cover `spawnRunwayDays` of net burn;
 * 4. learn from feedback (a run of `runCost` on the germline's head) once `feedbackThreshold` new
 *    records have arrived and no such run is in flight.
 */
export function rulesPolicy(
  observation: Observation,
  history: TrainingHistory,
  params: RulesPolicyParams = DEFAULT_RULES,
): PolicyProposal[] {
  const proposals: PolicyProposal[] = [];
  const runCost = BigInt(params.runCost);
  const active = observation.children.filter((c) => c.state === 'active');
  for (const child of active) {
    // A run in flight holds part of the allowance: the child is judged again once it has settled.
    if (BigInt(child.reserved ?? '0') > 0n) continue;
    const left = BigInt(child.allowance) - BigInt(child.spent);
    const losses = history[child.name] ?? [];
    if (left < runCost) {
      proposals.push({
        proposal: { kind: 'retire', child: child.name, reason: 'allowance spent' },
        why: `${child.name} has ${left} left, less than one run (${runCost})`,
      });
    } else if (!improving(losses, params.patience)) {
      proposals.push({
        proposal: { kind: 'retire', child: child.name, reason: 'stopped improving' },
        why: `${child.name}'s last ${params.patience} losses did not beat ${Math.min(...losses.slice(0, -params.patience))}`,
      });
    } else {
      proposals.push({
        proposal: { kind: 'train', child: child.name, maxCost: runCost.toString() },
        why: `${child.name} has ${left} left and is improving`,
      });
    }
  }

  const taken = new Set(observation.children.map((c: ChildSummary) => c.name));
  const purpose = params.purposes.find((p) => !taken.has(p));
  const available = BigInt(observation.budget.available);
  const allowance = (available * BigInt(params.allowancePercent)) / 100n;
  const netBurn = BigInt(observation.burnPerDay) - BigInt(observation.revenuePerDay);
  const runwayKept = netBurn <= 0n || available - allowance >= netBurn * BigInt(params.spawnRunwayDays);
  if (purpose && allowance >= runCost && runwayKept && !observation.budget.paused) {
    proposals.push({
      proposal: { kind: 'spawn', child: purpose, allowance: allowance.toString(), purpose: `${purpose} breed` },
      why: `no ${purpose} child yet; ${params.allowancePercent}% of the available funds keeps ${params.spawnRunwayDays} days of runway`,
    });
  }
  const feedback = observation.feedback;
  if (
    feedback &&
    params.feedbackThreshold > 0 &&
    feedback.newRecords >= params.feedbackThreshold &&
    !feedback.learning &&
    !observation.budget.paused
  ) {
    proposals.push({
      proposal: { kind: 'learn', maxCost: runCost.toString(), records: feedback.newRecords },
      why: `${feedback.newRecords} new feedback records on the germline's answers, at least ${params.feedbackThreshold}: train its head on them`,
    });
  }
  return proposals;
}

const minor = z.string().regex(/^[1-9]\d*$/, 'whole minor units above zero, as a string');
const child = z.string().regex(NAME, 'lowercase letters, digits and dashes');
const agentAnswer = z.object({
  proposals: z
    .array(
      z.object({
        proposal: z.discriminatedUnion('kind', [
          z.object({ kind: z.literal('spawn'), child, allowance: minor, purpose: z.string().min(1).max(200) }),
          z.object({ kind: z.literal('fund'), child, amount: minor }),
          z.object({ kind: z.literal('train'), child, maxCost: minor }),
          z.object({ kind: z.literal('retire'), child, reason: z.string().min(1).max(200) }),
          z.object({ kind: z.literal('learn'), maxCost: minor, records: z.number().int().min(1) }),
        ]),
        why: z.string().min(1).max(1000),
      }),
    )
    .max(20),
});

/** Asks an agent over HTTP; never throws: a failure is an answer that proposes nothing, with the reason. */
export async function httpPolicy(
  endpoint: string,
  observation: Observation,
  history: TrainingHistory,
  options: { timeoutMs?: number; token?: string } = {},
): Promise<PolicyAnswer> {
  const reject = (why: string): PolicyAnswer => ({ policy: 'http', proposals: [], rejected: why });
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify({ observation, history }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    const name = (error as Error).name;
    return reject(
      name === 'TimeoutError'
        ? `the agent at ${endpoint} did not answer within ${options.timeoutMs ?? 10_000} ms`
        : `cannot reach the agent at ${endpoint}: ${(error as Error).message}`,
    );
  }
  if (!response.ok) return reject(`the agent at ${endpoint} answered ${response.status}`);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return reject(`the agent at ${endpoint} answered something that is not JSON`);
  }
  const parsed = agentAnswer.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return reject(`the agent's answer is malformed at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return { policy: 'http', proposals: parsed.data.proposals as PolicyProposal[] };
}

/** A stable digest of what was observed, so a decision can be matched to its inputs. */
export function observationDigest(observation: Observation, history: TrainingHistory): string {
  return `sha256:${createHash('sha256').update(canonicalJson({ observation, history })).digest('hex')}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export type DecisionOutcome =
  'executed' | 'refused' | 'awaiting-approval' | 'approved' | 'rejected' | 'failed' | 'no-answer';

export interface DecisionRecord {
  /** `<germline>/<tick>/<index>`: the same decision recorded again changes nothing. */
  id: string;
  germline: string;
  policy: 'rules' | 'http' | 'operator';
  observationDigest: string;
  proposal?: Proposal;
  why?: string;
  judgement?: Judgement;
  outcome: DecisionOutcome;
  reason: string;
}

/** Stores a decision once (by id); a later outcome (approved, executed) updates it. */
export async function recordDecision(db: Database, decision: DecisionRecord): Promise<void> {
  const data = {
    germline: decision.germline,
    policy: decision.policy,
    observationDigest: decision.observationDigest,
    proposal: (decision.proposal ?? null) as never,
    why: decision.why ?? null,
    verdicts: (decision.judgement?.verdicts ?? null) as never,
    outcome: decision.outcome,
    reason: decision.reason,
  };
  await db.decision.upsert({
    where: { id: decision.id },
    create: { id: decision.id, ...data },
    update: { outcome: data.outcome, reason: data.reason },
  });
}
