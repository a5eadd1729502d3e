// The child computatrum's messages and inputs, shared by the child workflow, the germline, the CLI.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ChildState } from './guardrails';
import type { MinorUnits } from './money';
import type { BudgetState } from './budget-api';

export type ChildLifecycle = ChildState | 'retiring' | 'leaving';

export interface ChildInput {
  version: 1;
  germline: string;
  name: string;
  purpose: string;
  currency: string;
  /** Reserved for the child in the germline's budget. */
  allowance: MinorUnits;
  /** The germline reservation that holds the allowance: settled with what the child spent when it ends. */
  reservationId: string;
  /** Carried across continue-as-new; absent on the first run. */
  state?: { budget: BudgetState; lifecycle: ChildLifecycle; branch?: string };
}

export interface ChildStatus {
  germline: string;
  name: string;
  purpose: string;
  state: ChildLifecycle;
  allowance: MinorUnits;
  spent: MinorUnits;
  reserved: MinorUnits;
  available: MinorUnits;
  /** Its branch, `children/<name>:main`, once the germline had a head to fork. */
  branch?: string;
  /** Who received the branch when the child left. */
  owner?: string;
  endReason?: string;
}

/** What the germline records of each child it spawned (carried across its continue-as-new). */
export interface ChildRecord {
  name: string;
  workflowId: string;
  purpose: string;
  allowance: MinorUnits;
  reservationId: string;
  state: 'active' | 'retired' | 'left';
  /** Allowance added after the spawn, each held by a reservation of its own (settled in order after the first). */
  fundings?: Array<{ reservationId: string; amount: MinorUnits }>;
  spent?: MinorUnits;
  owner?: string;
  reason?: string;
}

export interface SpawnRequest {
  name: string;
  allowance: MinorUnits;
  purpose: string;
}

export interface ChildEnded {
  name: string;
  how: 'retired' | 'left';
  reservationId: string;
  spent: MinorUnits;
  owner?: string;
  reason: string;
}

// On the child.
export const childStatusQuery = defineQuery<ChildStatus>('childStatus');
export const retireUpdate = defineUpdate<ChildStatus, [reason: string]>('retire');
/** The germline's own request to retire (its tick cannot wait on an update): the same as `retire`, unanswered. */
export const retireRequestedSignal = defineSignal<[reason: string]>('retireRequested');
export const leaveUpdate = defineUpdate<ChildStatus, [{ owner: string; reason: string }]>('leave');

// On the germline.
export const spawnChildUpdate = defineUpdate<ChildRecord, [SpawnRequest]>('spawnChild');
export const childEndedSignal = defineSignal<[ChildEnded]>('childEnded');
export const childrenQuery = defineQuery<ChildRecord[]>('children');
