import type { BudgetState } from './budget-api';
// A trainer's credit: money a trainer paid in (Stripe Checkout) to run training on the platform's
// GPUs. It is a budget like the germline's (the same updates and status query), so a training run
// reserves from it and settles against it exactly as runs paid by the germline do.

export interface CreditInput {
  /** The trainer's handle: the workflow is `credit/<handle>`, its journal book `trainers/<handle>`. */
  handle: string;
  currency: string;
  /** Carried across continue-as-new; absent on the first run. */
  state?: BudgetState;
}
