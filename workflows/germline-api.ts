// The germline's own messages beyond the budget's (budget-api.ts): its input and promote.
import { defineUpdate } from '@temporalio/workflow';
import type { BudgetPolicy, BudgetState } from './budget-api';
import type { ChildRecord } from './child-api';
import type { DeciderSettings } from './autonomy-api';
import type { AutonomyState } from './autonomy';
import type { AutonomyPolicy, EvalGate } from './guardrails';

export interface GermlineInput {
  name: string;
  currency: string;
  policy?: BudgetPolicy;
  /** The operators' limits on what the germline does by itself (and on operator spawns). */
  autonomy?: AutonomyPolicy;
  /** Carried across continue-as-new; absent on the first run. */
  state?: BudgetState;
  /**
   * The children it carries across continue-as-new: the live ones, and those that ended since the
   * last run archived the ended ones in PostgreSQL (or all of them, from a run before the archive).
   */
  children?: ChildRecord[];
  /** How many ended children earlier runs archived in PostgreSQL (their names stay taken); absent: none. */
  archivedChildren?: number;
  /** The archived children's names as a Bloom filter (workflows/germline-names.ts): a spawn asks PostgreSQL only when it might hold the name. */
  archivedNames?: string;
  /** What a checkpoint's metrics must reach to be promoted to the germline's head; none: no gate. */
  evalGate?: EvalGate | null;
  /** How it decides by itself (policy, tick interval); default: the rules policy, hourly. */
  decider?: DeciderSettings;
  /** Limits, decider, gate, tick count and approvals waiting, carried across continue-as-new (they win over the fields above). */
  autonomyState?: AutonomyState;
}

export interface PromotionRequest {
  repo: string;
  /** A tag or digest in `repo`. */
  reference: string;
}

export interface PromotionResult {
  /** The manifest germline/<name>:main now points at (its lineage annotations unchanged). */
  digest: string;
  metrics: Record<string, number>;
  gate: string;
}

/** Moves the germline's head (main) to a trainer's or child's checkpoint whose metrics pass the eval gate. */
export const promoteUpdate = defineUpdate<PromotionResult, [PromotionRequest]>('promote');
