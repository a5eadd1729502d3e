// The guardrails of the germline's autonomy: every proposal (from the rules policy, an agent over
// HTTP, or an operator) is judged here against the operators' limits before anything is done.
// Pure and deterministic: the germline workflow judges with it, and property tests check it
// against the budget's own rules for many random histories.
import { formatMoney, type MinorUnits, minorUnitsProblem } from './money';
import type { BudgetStatus } from './budget-api';
import { NAME } from './names';

/** The operators' limits on what the germline may do by itself. */
export interface AutonomyPolicy {
  /** Children funded at once (active or paused). */
  maxChildren: number;
  /** Most one child's allowance may reach, in minor units; null: no cap. */
  perChildAllowanceCap: MinorUnits | null;
  /** Days the germline must still be able to pay at its net burn after a proposal. */
  minRunwayDays: number;
  /** Proposals moving more than this wait for an operator's approve/reject; null: none wait. */
  approvalThreshold: MinorUnits | null;
}

export const DEFAULT_AUTONOMY_POLICY: AutonomyPolicy = {
  maxChildren: 8,
  perChildAllowanceCap: null,
  minRunwayDays: 30,
  approvalThreshold: null,
};

export type ChildState = 'active' | 'paused' | 'retired' | 'left';

export interface ChildSummary {
  name: string;
  state: ChildState;
  /** Reserved for the child from the germline budget, in total. */
  allowance: MinorUnits;
  /** Spent out of the allowance so far. */
  spent: MinorUnits;
  /** Held for its training runs in flight (absent: none). */
  reserved?: MinorUnits;
}

/** What the germline sees when it decides. */
export interface Observation {
  budget: Pick<BudgetStatus, 'available' | 'paused' | 'committedToday' | 'policy' | 'currency'>;
  /** Average spend per day over the recent past, in minor units. */
  burnPerDay: MinorUnits;
  /** Average income per day (marketplace fees, deposits excluded), in minor units. */
  revenuePerDay: MinorUnits;
  children: ChildSummary[];
  /** What people said about the germline's public answers that it has not learned from yet. */
  feedback?: FeedbackSummary;
}

export interface FeedbackSummary {
  /** Visible feedback records on the germline's public instances' answers that no run of it has learned yet. */
  newRecords: number;
  /** A run learning from feedback is in flight: the next one waits for it. */
  learning: boolean;
}

export type Proposal =
  | { kind: 'spawn'; child: string; allowance: MinorUnits; purpose: string }
  | { kind: 'fund'; child: string; amount: MinorUnits }
  | { kind: 'train'; child: string; maxCost: MinorUnits }
  | { kind: 'retire'; child: string; reason: string }
  /** The germline trains its head on the new feedback (workflows/learn.ts), paid from its own budget. */
  | { kind: 'learn'; child?: undefined; maxCost: MinorUnits; records: number };

export type GuardrailRule =
  | 'valid-proposal'
  | 'not-paused'
  | 'child-known'
  | 'max-children'
  | 'per-child-allowance-cap'
  | 'allowance-left'
  | 'available-funds'
  | 'per-reservation-cap'
  | 'daily-cap'
  | 'min-runway';

export interface Verdict {
  rule: GuardrailRule;
  ok: boolean;
  detail: string;
}

export interface Judgement {
  allowed: boolean;
  /** Allowed, but above the approval threshold: it waits for an operator. */
  needsApproval: boolean;
  verdicts: Verdict[];
}

/** Money the proposal takes from the germline's available funds (a child's training spends its allowance). */
export function germlineOutlay(proposal: Proposal): bigint {
  if (proposal.kind === 'spawn') return BigInt(proposal.allowance);
  if (proposal.kind === 'fund') return BigInt(proposal.amount);
  if (proposal.kind === 'learn') return BigInt(proposal.maxCost);
  return 0n;
}

/** Money the proposal moves in total, for the approval threshold. */
function moved(proposal: Proposal): bigint {
  if (proposal.kind === 'train') return BigInt(proposal.maxCost);
  return germlineOutlay(proposal);
}

/** Who a proposal is about, in words: a child, or the germline itself. */
export function proposalSubject(proposal: Proposal): string {
  return proposal.kind === 'learn' ? 'the germline' : proposal.child;
}

function wellFormed(proposal: Proposal, currency: string): string | undefined {
  if (proposal.kind === 'learn') {
    if (!Number.isSafeInteger(proposal.records) || proposal.records < 1)
      return `a learn proposal names how many new feedback records it learns from, got ${JSON.stringify(proposal.records)}`;
  } else if (!NAME.test(proposal.child ?? '')) {
    return `child name "${proposal.child}" must be lowercase letters, digits and dashes`;
  }
  const amount =
    proposal.kind === 'spawn'
      ? proposal.allowance
      : proposal.kind === 'fund'
        ? proposal.amount
        : proposal.kind === 'train' || proposal.kind === 'learn'
          ? proposal.maxCost
          : '1';
  const problem = minorUnitsProblem(
    amount,
    'the amount',
    `the amount must be whole minor units above zero, got ${JSON.stringify(amount)}`,
    { positive: true, currency },
  );
  if (problem) return problem;
  if (proposal.kind === 'spawn' && !proposal.purpose?.trim()) return 'a spawn needs a purpose';
  if (proposal.kind === 'retire' && !proposal.reason?.trim()) return 'a retirement needs a reason';
  return undefined;
}

/** Judges one proposal against every guardrail; all verdicts are kept, so a refusal says every reason. */
export function judge(proposal: Proposal, observation: Observation, policy: AutonomyPolicy): Judgement {
  const verdicts: Verdict[] = [];
  const add = (rule: GuardrailRule, ok: boolean, detail: string) => verdicts.push({ rule, ok, detail });
  const money = (minor: bigint | string) => formatMoney(minor, observation.budget.currency);

  const malformed = wellFormed(proposal, observation.budget.currency);
  add('valid-proposal', malformed === undefined, malformed ?? `${proposal.kind} ${proposalSubject(proposal)}`);
  if (malformed) return { allowed: false, needsApproval: false, verdicts };

  const child = observation.children.find((c) => c.name === proposal.child);
  const funded = observation.children.filter((c) => c.state === 'active' || c.state === 'paused');
  const outlay = germlineOutlay(proposal);
  const available = BigInt(observation.budget.available);

  if (proposal.kind !== 'retire') {
    add(
      'not-paused',
      !observation.budget.paused,
      observation.budget.paused
        ? 'the germline is paused: it spends nothing until an operator resumes it'
        : 'not paused',
    );
  }
  if (proposal.kind === 'learn') {
    // The germline's own run: no child to know.
  } else if (proposal.kind === 'spawn') {
    add(
      'child-known',
      child === undefined,
      child ? `a child named ${proposal.child} exists already (${child.state})` : 'a new name',
    );
    add(
      'max-children',
      funded.length < policy.maxChildren,
      `${funded.length} of at most ${policy.maxChildren} children are funded`,
    );
  } else {
    const usable =
      child !== undefined &&
      (proposal.kind === 'retire' ? child.state !== 'retired' && child.state !== 'left' : child.state === 'active');
    add('child-known', usable, child ? `${proposal.child} is ${child.state}` : `no child named ${proposal.child}`);
  }

  if (proposal.kind === 'spawn' || proposal.kind === 'fund' || proposal.kind === 'learn') {
    if (proposal.kind !== 'learn') {
      const allowanceAfter = BigInt(child?.allowance ?? '0') + outlay;
      const cap = policy.perChildAllowanceCap;
      add(
        'per-child-allowance-cap',
        cap === null || allowanceAfter <= BigInt(cap),
        cap === null ? 'no per-child cap' : `allowance would be ${money(allowanceAfter)} of at most ${money(cap)}`,
      );
    }
    add('available-funds', outlay <= available, `needs ${money(outlay)}, ${money(available)} available`);
    const perReservation = observation.budget.policy.perReservationCap;
    add(
      'per-reservation-cap',
      perReservation === null || outlay <= BigInt(perReservation),
      perReservation === null
        ? 'no per-reservation cap'
        : `${money(outlay)} of at most ${money(perReservation)} per reservation`,
    );
    const dailyCap = observation.budget.policy.dailySpendCap;
    const committed = BigInt(observation.budget.committedToday.amount);
    add(
      'daily-cap',
      dailyCap === null || committed + outlay <= BigInt(dailyCap),
      dailyCap === null ? 'no daily cap' : `${money(committed + outlay)} of at most ${money(dailyCap)} committed today`,
    );
    // Runway: what is left must cover the minimum number of days at the net burn (spend − income).
    const netBurn = BigInt(observation.burnPerDay) - BigInt(observation.revenuePerDay);
    const left = available - outlay;
    const needed = netBurn > 0n ? netBurn * BigInt(policy.minRunwayDays) : 0n;
    add(
      'min-runway',
      left >= needed,
      netBurn > 0n
        ? `${money(left)} left covers ${left > 0n ? left / netBurn : 0n} days at ${money(netBurn)}/day; at least ${policy.minRunwayDays} required`
        : 'no net burn',
    );
  }

  if (proposal.kind === 'train' && child) {
    const left = BigInt(child.allowance) - BigInt(child.spent) - BigInt(child.reserved ?? '0');
    add(
      'allowance-left',
      BigInt(proposal.maxCost) <= left,
      `needs ${money(proposal.maxCost)}, ${money(left)} of ${proposal.child}'s allowance left`,
    );
  }

  const allowed = verdicts.every((v) => v.ok);
  const threshold = policy.approvalThreshold;
  return { allowed, needsApproval: allowed && threshold !== null && moved(proposal) > BigInt(threshold), verdicts };
}

/** The refusals of a judgement, as one sentence for people and logs. */
export function refusalReasons(judgement: Judgement): string {
  return judgement.verdicts
    .filter((v) => !v.ok)
    .map((v) => `${v.rule}: ${v.detail}`)
    .join('; ');
}

/** What a checkpoint's training metrics must reach before it may become the germline's head. */
export interface EvalGate {
  metric: string;
  /** The metric must be at most this (losses, perplexity). */
  atMost?: number;
  /** The metric must be at least this (accuracy, scores). */
  atLeast?: number;
}

/** Checks a checkpoint's metrics against the gate; the detail names the gate and the score. */
export function checkEvalGate(
  metrics: Record<string, number>,
  gate: EvalGate | null | undefined,
): { ok: boolean; detail: string } {
  if (!gate) return { ok: true, detail: 'no eval gate' };
  const score = metrics[gate.metric];
  const wanted = [
    gate.atMost !== undefined ? `at most ${gate.atMost}` : '',
    gate.atLeast !== undefined ? `at least ${gate.atLeast}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  if (typeof score !== 'number')
    return {
      ok: false,
      detail: `the eval gate needs ${gate.metric} ${wanted}, and the checkpoint records no ${gate.metric}`,
    };
  const ok =
    (gate.atMost === undefined || score <= gate.atMost) && (gate.atLeast === undefined || score >= gate.atLeast);
  return { ok, detail: `${gate.metric} ${score} ${ok ? 'passes' : 'fails'} the eval gate (${gate.metric} ${wanted})` };
}
