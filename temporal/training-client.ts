// Starting training/<id> from outside a workflow (the CLI, the germline's tick): one place that
// sets the run's search attributes, so every run is found the same way in the Temporal UI.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { Payer, RunKind, RunState } from '../workflows/search-attributes';
import type { trainingWorkflow } from '../workflows/training';
import { type TrainingRequest } from '../workflows/training-api';
import { trainingWorkflowId } from '../workflows/names';

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
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: [
      { key: RunKind, value: 'training' },
      { key: Payer, value: request.payer },
      { key: RunState, value: 'reserving' },
    ],
  });
}
