// genesis/<germline>: the germline's first day on a fresh install, so that a new computatrum has a
// model to talk to at once rather than after its first midnight. Its first checkpoint is trained from
// scratch by the configured trainer (a training run like any other, reserved and settled from the
// germline's budget, visible in the Web UI), becomes the head (`main`), and is tagged as today's gpc
// checkpoint right away; the daily workflow that tags it also moves the germline's public instance
// to it, so the zookeeper serves it. Started by `up` when the germline has no head; a failed genesis
// is started again by the next `up`.
import {
  ApplicationFailure,
  executeChild,
  ParentClosePolicy,
  upsertSearchAttributes,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DailyTagResult } from '../activities/checkpoints';
import { now } from './clock';
import { dailyGpcWorkflow } from './daily-gpc';
import { dailyGpcWorkflowId, trainingWorkflowId } from './names';
import { GermlineId } from './search-attributes';
import { dailySummary, trainingSummary } from './summaries';
import { trainingWorkflow } from './training';
import { type TrainingRequest, type TrainingResult, trainingSearchAttributes } from './training-api';

export interface GenesisInput {
  germline: string;
  /** The first run: no base, output `<germline repository>:main`, paid by the germline. */
  training: TrainingRequest;
}

export interface GenesisResult {
  run: TrainingResult;
  /** Today's tag; `already-done` when today's daily workflow had run before (it tagged what was the head then). */
  daily: DailyTagResult | { status: 'already-done'; day: string };
}

export async function genesisWorkflow(input: GenesisInput): Promise<GenesisResult> {
  upsertSearchAttributes([{ key: GermlineId, value: input.germline }]);
  const run = await executeChild(trainingWorkflow, {
    workflowId: trainingWorkflowId(input.training.id),
    args: [input.training],
    staticSummary: trainingSummary(input.training),
    typedSearchAttributes: trainingSearchAttributes(input.training),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
  });
  if (run.state !== 'succeeded') {
    throw ApplicationFailure.nonRetryable(
      `the first training run ${input.training.id} ended ${run.state}${run.error ? ` (${run.error})` : ''}: the germline has no head to tag`,
      'GenesisFailed',
    );
  }
  const day = now().toISOString().slice(0, 10);
  try {
    const daily = await executeChild(dailyGpcWorkflow, {
      workflowId: dailyGpcWorkflowId(input.germline, day),
      args: [{ germline: input.germline, day }],
      staticSummary: dailySummary(input.germline, day),
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    return { run, daily };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { run, daily: { status: 'already-done', day } };
    throw error;
  }
}
