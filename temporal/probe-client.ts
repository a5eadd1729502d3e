// Starting probe/<repo>@<digest> from outside a workflow (the worker's daily hook, the platform's
// publish hook, an operator by hand): one place that names it and sets its search attributes. The id
// is the image, so an automatic trigger probes each digest once; an operator may probe it again once
// the earlier probe has ended.
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { probeWorkflow } from '../workflows/probe';
import type { ProbeRequest } from '../workflows/probe-api';
import { germlineWorkflowId, probeWorkflowId } from '../workflows/names';
import { Payer, RunKind, RunState } from '../workflows/search-attributes';
import { probeSummary } from '../workflows/summaries';

export async function startProbe(
  client: Client,
  taskQueue: string,
  request: ProbeRequest,
  options: { again?: boolean } = {},
): Promise<{ workflowId: string; started: boolean }> {
  const workflowId = probeWorkflowId(request.repo, request.digest);
  try {
    await client.workflow.start<typeof probeWorkflow>('probeWorkflow', {
      workflowId,
      taskQueue,
      args: [request],
      staticSummary: probeSummary(request),
      workflowIdReusePolicy: options.again
        ? WorkflowIdReusePolicy.ALLOW_DUPLICATE
        : WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: RunKind, value: 'probe' },
        { key: Payer, value: germlineWorkflowId(request.germline) },
        { key: RunState, value: 'running' },
      ],
    });
    return { workflowId, started: true };
  } catch (error) {
    // Running now (or, for an automatic trigger, run before): that probe is the answer.
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, started: false };
    throw error;
  }
}

export function probeHandle(client: Client, repo: string, digest: string) {
  return client.workflow.getHandle<typeof probeWorkflow>(probeWorkflowId(repo, digest));
}
