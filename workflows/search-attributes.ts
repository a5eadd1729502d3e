// The typed search attributes of the project, registered on the Temporal namespace at `up`
// (worker/temporal.ts) so operators can filter workflows in the Web UI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const GermlineId = defineSearchAttributeKey('GermlineId', SearchAttributeType.KEYWORD);
/** paused | funded | empty */
export const BudgetState = defineSearchAttributeKey('BudgetState', SearchAttributeType.KEYWORD);

/** gpc-YYYY-MM-DD on daily checkpoint workflows. */
export const CheckpointTag = defineSearchAttributeKey('CheckpointTag', SearchAttributeType.KEYWORD);

export const PROJECT_SEARCH_ATTRIBUTES = [GermlineId, BudgetState, CheckpointTag];

export type SearchAttributeKey = (typeof PROJECT_SEARCH_ATTRIBUTES)[number] | ReturnType<typeof defineSearchAttributeKey>;
