// The germline's autonomy as operators drive it: how it decides (policy, tick interval), the limits
// it decides within (guardrails), what a tick reports, and the proposals waiting for an operator.
// Shared by the germline workflow, the CLI and (later) the platform.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { DecisionOutcome, RulesPolicyParams } from '../activities/policy';
import type { AutonomyPolicy, EvalGate, Judgement, Proposal } from './guardrails';

export interface DeciderSettings {
  /** `rules` (deterministic, documented thresholds) or `http` (an agent answers). */
  policy: 'rules' | 'http';
  /** Overrides of the rules policy's thresholds (activities/policy.ts DEFAULT_RULES). */
  rules?: Partial<RulesPolicyParams>;
  /** The agent's URL, for the http policy. Its bearer token is the worker's COMPUTATRUM_AGENT_TOKEN. */
  endpoint?: string;
  /** How long the agent may take; a slower answer proposes nothing and is recorded. */
  timeoutMs?: number;
  /** Seconds between the germline's own ticks; null: it decides only when a tick is triggered. */
  tickIntervalSeconds: number | null;
}

export const DEFAULT_DECIDER: DeciderSettings = { policy: 'rules', tickIntervalSeconds: 3600 };

/** Everything an operator can change about the autonomy, in one update; absent fields stay. */
export interface AutonomyChange extends Partial<AutonomyPolicy>, Partial<DeciderSettings> {
  evalGate?: EvalGate | null;
}

/** A proposal above the approval threshold, waiting for `approve` or `reject`. */
export interface PendingDecision {
  id: string;
  proposal: Proposal;
  why: string;
  policy: 'rules' | 'http';
  observationDigest: string;
  /** Workflow time it was proposed, ISO. */
  at: string;
}

export interface AutonomyStatus {
  limits: AutonomyPolicy;
  decider: DeciderSettings;
  evalGate: EvalGate | null;
  ticks: number;
  lastTickAt: string | null;
  nextTickAt: string | null;
  pending: PendingDecision[];
}

/** What became of one proposal (also stored as a Decision row). */
export interface DecisionSummary {
  id: string;
  proposal?: Proposal;
  why?: string;
  judgement?: Judgement;
  outcome: DecisionOutcome;
  reason: string;
}

export interface TickReport {
  tick: number;
  trigger: 'timer' | 'operator';
  policy: 'rules' | 'http';
  observationDigest: string;
  decisions: DecisionSummary[];
}

export interface ApprovalRequest {
  decisionId: string;
  /** Who approves or rejects, for the record. */
  by: string;
  reason?: string;
}

/** Observes, decides and acts now (serialized with the timer's ticks), and reports what it did. */
export const tickUpdate = defineUpdate<TickReport, []>('tick');
export const setAutonomyUpdate = defineUpdate<AutonomyStatus, [AutonomyChange]>('setAutonomy');
export const approveUpdate = defineUpdate<DecisionSummary, [ApprovalRequest]>('approve');
export const rejectUpdate = defineUpdate<DecisionSummary, [ApprovalRequest]>('reject');
export const autonomyQuery = defineQuery<AutonomyStatus>('autonomy');
