// The daily gpc checkpoint. The Schedule daily-gpc/<germline> starts dailyGpcScheduleWorkflow at
// 00:00 UTC; it starts daily-gpc/<germline>/<YYYY-MM-DD> as a child whose id is the day, so a day
// that runs twice (catch-up, backfill, a manual trigger) is tagged once.
import {
  ApplicationFailure,
  executeChild,
  patched,
  ParentClosePolicy,
  proxyActivities,
  upsertSearchAttributes,
  workflowInfo,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  WorkflowExecutionAlreadyStartedError,
} from '@temporalio/common';
import type { CheckpointActivities, DailyTagResult } from '../activities/checkpoints';
import type { InstanceActivities } from '../activities/instances';
import type { ProbeActivities } from '../activities/probes';
import { CheckpointTag, GermlineId } from './search-attributes';
import { dailyGpcWorkflowId } from './names';
import { dailySummary } from './summaries';

const { tagDailyCheckpoint } = proxyActivities<CheckpointActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 20 },
});

const { moveGermlineInstance } = proxyActivities<InstanceActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});

const { startDailyProbes } = proxyActivities<ProbeActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

/** Days tagged before probes existed replay as they ran. */
const PROBE_DAILY_TAG = 'probe-daily-tag';

/** Days tagged before the germline kept a public instance replay as they ran. */
const MOVE_PUBLIC_INSTANCE = 'germline-public-instance';

/** Set by the server on every workflow a Schedule starts: the time it was due. */
const TemporalScheduledStartTime = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

export async function dailyGpcWorkflow(input: { germline: string; day: string }): Promise<DailyTagResult> {
  upsertSearchAttributes([
    { key: GermlineId, value: input.germline },
    { key: CheckpointTag, value: `gpc-${input.day}` },
  ]);
  const result = await tagDailyCheckpoint(input);
  // The zookeeper's computatrum moves to the new day (when the worker keeps one).
  if (result.status === 'published' && patched(MOVE_PUBLIC_INSTANCE)) {
    await moveGermlineInstance({ germline: input.germline, tag: result.tag });
  }
  // The new tag is probed by its own workflow (probe/<repo>@<digest>, once per digest); the day is
  // tagged whether or not the probe could be started.
  if (result.status === 'published' && patched(PROBE_DAILY_TAG)) {
    try {
      await startDailyProbes({ germline: input.germline, tag: result.tag });
    } catch {
      // Probes are never a reason for the day to fail; one missed now is caught by the next probe sweep.
    }
  }
  return result;
}

export async function dailyGpcScheduleWorkflow(input: {
  germline: string;
}): Promise<DailyTagResult | { status: 'already-done'; day: string }> {
  const due = workflowInfo().typedSearchAttributes.get(TemporalScheduledStartTime);
  if (!due)
    throw ApplicationFailure.nonRetryable(
      'dailyGpcScheduleWorkflow runs from the daily-gpc Schedule, which sets its due time',
    );
  const day = due.toISOString().slice(0, 10);
  try {
    return await executeChild(dailyGpcWorkflow, {
      workflowId: dailyGpcWorkflowId(input.germline, day),
      args: [{ germline: input.germline, day }],
      staticSummary: dailySummary(input.germline, day),
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { status: 'already-done', day };
    throw error;
  }
}
