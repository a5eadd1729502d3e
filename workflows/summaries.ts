// What the Temporal Web UI shows of each workflow in its list, in words (the static summary set
// when it starts), so an operator reads the board without opening inputs. Long-lived workflows keep
// their current details up to date themselves (setCurrentDetails: budgets, instances).
import type { AllotmentInput } from './allotment-api';
import type { InstanceRequest } from './instance-api';
import { formatMoney } from './money';
import type { ProbeRequest } from './probe-api';
import type { TrainingRequest } from './training-api';

export const germlineSummary = (name: string, currency: string): string =>
  `germline ${name}: its budget (${currency.toUpperCase()}), children, autonomy and daily checkpoints`;

export const genesisSummary = (germline: string, run: TrainingRequest): string =>
  `genesis of ${germline}: the first training run (${run.id}, at most ${formatMoney(run.maxCost, run.currency)}) and today's gpc tag`;

export const trainingSummary = (run: TrainingRequest): string =>
  `training ${run.id}: ${run.base ? `${run.base.repo}:${run.base.reference}` : 'from scratch'} → ${run.output.repo}:${run.output.branch}, ${run.gpus} GPU(s) on ${run.runner}, paid by ${run.payer}, at most ${formatMoney(run.maxCost, run.currency)}`;

export const instanceSummary = (request: InstanceRequest): string =>
  `instance ${request.id}: ${request.image.repo}:${request.image.reference}, ${request.visibility}${request.owner ? ` of ${request.owner}` : ''}, paid by ${request.payer}, at most ${formatMoney(request.maxCost, request.currency)}`;

export const creditSummary = (handle: string): string =>
  `credit of ${handle}: training runs and priced calls they pay for`;

export const sponsorSummary = (name: string): string => `sponsor ${name}: the fund of its grants of free use`;

export const allotmentSummary = (input: AllotmentInput): string =>
  `allotment ${input.id}: ${formatMoney(input.amount, input.currency)} from ${input.payer} for priced calls, open ${input.openSeconds} s`;

export const probeSummary = (request: ProbeRequest): string =>
  `probe of ${request.repo}@${request.digest.slice(0, 19)}… (${request.trigger}${request.requestedBy ? ` by ${request.requestedBy}` : ''}), paid by germline/${request.germline}`;

export const dailySummary = (germline: string, day: string): string =>
  `daily gpc tag of germline ${germline} for ${day}: gpc-${day} on its head`;

export const dailyScheduleSummary = (germline: string): string =>
  `the daily gpc schedule's run of germline ${germline}: starts the day's tag`;

export const upkeepSummary = (germline: string, what: string): string => `${what} of germline ${germline}`;

export const learnSummary = (germline: string, runId: string, maxCost: string, currency: string): string =>
  `learning of germline ${germline}: its unlearned feedback into datasets, run ${runId} (at most ${formatMoney(maxCost, currency)}) on its head, promoted past the eval gate`;

export const childSummary = (germline: string, name: string, purpose: string, allowance: string, currency: string) =>
  `child ${name} of germline ${germline}: ${purpose}, an allowance of ${formatMoney(allowance, currency)}`;
