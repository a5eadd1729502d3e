// The typed search attributes of the project, registered on the Temporal namespace at `up`
// (temporal/connection.ts) so operators can filter workflows in the Web UI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const GermlineId = defineSearchAttributeKey('GermlineId', SearchAttributeType.KEYWORD);
/** paused | funded | empty */
export const BudgetState = defineSearchAttributeKey('BudgetState', SearchAttributeType.KEYWORD);

/** gpc-YYYY-MM-DD on daily checkpoint workflows. */
export const CheckpointTag = defineSearchAttributeKey('CheckpointTag', SearchAttributeType.KEYWORD);

/** What kind of run a workflow is (training; later evaluation, distillation). */
export const RunKind = defineSearchAttributeKey('RunKind', SearchAttributeType.KEYWORD);
/** The workflow id of the budget paying for a run, e.g. germline/computatrum. */
export const Payer = defineSearchAttributeKey('Payer', SearchAttributeType.KEYWORD);
/** reserving | running | publishing | succeeded | failed | cancelled | cost-cap | deadline | refused */
export const RunState = defineSearchAttributeKey('RunState', SearchAttributeType.KEYWORD);

/** A child computatrum's name, on child/<germline>/<child>. */
export const ChildName = defineSearchAttributeKey('ChildName', SearchAttributeType.KEYWORD);
/** active | paused | retiring | leaving | retired | left */
export const ChildState = defineSearchAttributeKey('ChildState', SearchAttributeType.KEYWORD);

export const PROJECT_SEARCH_ATTRIBUTES = [
  GermlineId,
  BudgetState,
  CheckpointTag,
  RunKind,
  Payer,
  RunState,
  ChildName,
  ChildState,
];

export type SearchAttributeKey =
  (typeof PROJECT_SEARCH_ATTRIBUTES)[number] | ReturnType<typeof defineSearchAttributeKey>;
