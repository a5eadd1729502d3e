// Starting and addressing instance/<id> from outside a workflow (the platform, the CLI, the germline's
// tick): one place that sets its search attributes, so every instance is found the same way in the
// Temporal UI (RunKind=instance, Payer, RunState=its state).
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { instanceWorkflow } from '../workflows/instance';
import type { InstanceRequest } from '../workflows/instance-api';
import { instanceWorkflowId } from '../workflows/names';
import { Payer, RunKind, RunState } from '../workflows/search-attributes';
import { instanceSummary } from '../workflows/summaries';

export type InstanceHandle = WorkflowHandle<typeof instanceWorkflow>;

/** Starts the instance; an id used before is refused (WorkflowExecutionAlreadyStartedError). */
export function launchInstance(client: Client, taskQueue: string, request: InstanceRequest): Promise<InstanceHandle> {
  return client.workflow.start<typeof instanceWorkflow>('instanceWorkflow', {
    workflowId: instanceWorkflowId(request.id),
    taskQueue,
    args: [request],
    staticSummary: instanceSummary(request),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: [
      { key: RunKind, value: 'instance' },
      { key: Payer, value: request.payer },
      { key: RunState, value: 'pending' },
    ],
  });
}

export function instanceHandle(client: Client, id: string): InstanceHandle {
  return client.workflow.getHandle<typeof instanceWorkflow>(instanceWorkflowId(id));
}
