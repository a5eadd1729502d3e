// The allotment/<id> workflow's input and messages: the gateway starts one when a payer's priced
// calls need credit to meter against, and waits on `allotmentOpened` for the reservation's answer.
import { defineSignal, defineUpdate } from '@temporalio/workflow';
import type { MinorUnits } from './money';

export interface AllotmentInput {
  /** The UsageAllotment row's id (inserted by the gateway as `opening`); the workflow is allotment/<id>. */
  id: string;
  /** The budget it reserves from: `credit/<handle>`. */
  payer: string;
  currency: string;
  /** Minor units to reserve. */
  amount: MinorUnits;
  /** How long calls are metered against it before it is settled (and another opened as needed). */
  openSeconds: number;
  /** The germline that receives the platform's fee. */
  germline: string;
  /** The platform's share of every charge, a whole percentage: the rest is the trainers'. */
  feePercent: number;
}

export type AllotmentOpening = { state: 'open'; expiresAt: string } | { state: 'refused'; reason: string };

/** Waits for the reservation: open (with when it expires) or refused (the budget's words). */
export const allotmentOpenedUpdate = defineUpdate<AllotmentOpening>('allotmentOpened');
/** No more calls fit: settle it now rather than when it expires. */
export const closeAllotmentSignal = defineSignal('closeAllotment');
