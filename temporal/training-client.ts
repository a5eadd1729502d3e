// Starting training/<id> from outside a workflow (the CLI, the platform, the germline's tick), with
// the search attributes every run starts with (trainingSearchAttributes).
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { trainingWorkflow } from '../workflows/training';
import { type TrainingRequest, trainingSearchAttributes } from '../workflows/training-api';
import { trainingWorkflowId } from '../workflows/names';
import { trainingSummary } from '../workflows/summaries';

/** Starts the run; a run id used before is refused (WorkflowExecutionAlreadyStartedError). */
export function startTrainingRun(
  client: Client,
  taskQueue: string,
  request: TrainingRequest,
): Promise<WorkflowHandle<typeof trainingWorkflow>> {
  return client.workflow.start<typeof trainingWorkflow>('trainingWorkflow', {
    workflowId: trainingWorkflowId(request.id),
    taskQueue,
    args: [request],
    staticSummary: trainingSummary(request),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: trainingSearchAttributes(request),
  });
}
