// A hosted instance's messages and inputs: shared by the `instance/<id>` workflow, its activities,
// the platform (gateway, GraphQL, pages) and the CLI.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { MinorUnits } from './money';

/**
 * pending: checked and waiting for its first lease; starting: the process is coming up (free);
 * ready: serving (billed); sleeping: scaled to zero after its idle timeout (nothing reserved);
 * draining: finishing in-flight requests before it stops (billed); stopped, failed: ended.
 */
export type InstanceState = 'pending' | 'starting' | 'ready' | 'sleeping' | 'draining' | 'stopped' | 'failed';
export const FINAL_INSTANCE_STATES: readonly InstanceState[] = ['stopped', 'failed'];

/** private: its owner and their tokens; public: anyone, no sign-in, and its payer pays. */
export type InstanceVisibility = 'private' | 'public';

/** Versioned so that instances started by an older daemon keep replaying after an upgrade. */
export interface InstanceRequestV1 {
  version: 1;
  /** The instance id: lowercase letters, digits and dashes; the workflow is `instance/<id>`. */
  id: string;
  /** The image: a tag or digest in a repository of the store, resolved to a digest at launch. */
  image: { repo: string; reference: string };
  /** The workflow id of the budget that pays, e.g. `credit/alice` or `germline/computatrum`. */
  payer: string;
  currency: string;
  /** The account that launched it; absent for the germline's own instances. */
  owner?: string;
  visibility: InstanceVisibility;
  runner: 'local' | 'kubernetes';
  /** The server's argv (local) or container command (kubernetes); the configured default when absent. */
  command?: string[];
  gpus: number;
  /** Minor units per GPU-hour, fixed at launch so that a later rate change never reprices it. */
  ratePerGpuHour: MinorUnits;
  /** Ready this long without a request, it sleeps (scaled to zero, reserving nothing); 0: never. */
  idleTimeoutSeconds: number;
  /** Billed (ready and draining) seconds after which it stops. */
  maxDurationSeconds: number;
  /** The most it may cost over its life: no lease is reserved past it. */
  maxCost: MinorUnits;
  /** Each lease is reserved from the payer before it begins; default 300. */
  leaseSeconds?: number;
  /** How often the process and its idleness are checked while it runs; default 15. */
  checkSeconds?: number;
}

export type InstanceRequest = InstanceRequestV1;

export interface InstanceStatus {
  id: string;
  state: InstanceState;
  image: string;
  digest?: string;
  payer: string;
  visibility: InstanceVisibility;
  owner?: string;
  /** Where the gateway forwards requests while ready. */
  endpoint?: string;
  /** Minor units settled so far, and the billed seconds they paid for. */
  cost: MinorUnits;
  billedSeconds: number;
  /** The lease reserved now (minor units), while ready or starting. */
  reserved: MinorUnits;
  /** Why it stopped, failed or is draining. */
  reason?: string;
}

/** The state carried across continue-as-new: what was settled, and the process that may be adopted. */
export interface InstanceCarried {
  digest: string;
  cost: MinorUnits;
  billedSeconds: number;
  leases: number;
  sleeping: boolean;
}

export const instanceStatusQuery = defineQuery<InstanceStatus>('status');
/** Stops the instance (its owner or an operator): it drains, its last lease is settled, it ends. */
export const stopInstanceUpdate = defineUpdate<InstanceStatus, [{ by: string; reason?: string }]>('stop');
/** Wakes a sleeping instance and answers once it is ready (or refuses, saying why it cannot be). */
export const wakeInstanceUpdate = defineUpdate<InstanceStatus, []>('wake');
