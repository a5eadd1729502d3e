// learn/<run id>: the germline learns from what people said about its public answers, started by
// its autonomy's `learn` act (a decision of the tick). It builds the datasets of the feedback it has
// not learned from, trains its head on them (training/<run id>, reserved and settled from its budget
// like any run) into the `learned` branch, and promotes the result to `main` when its metrics pass
// the eval gate, so the next daily gpc tag carries it. What came of it is stored as a decision of its
// own, `<decision id>/outcome`, beside the decision that started it.
import { executeChild, proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { AutonomyActivities } from '../activities/autonomy';
import type { CheckpointActivities } from '../activities/checkpoints';
import type { DatasetActivities } from '../activities/datasets';
import type { DecisionOutcome } from '../activities/policy';
import { failureMessage } from './failures';
import { checkEvalGate, type EvalGate, type Proposal } from './guardrails';
import { germlineRepository, trainingWorkflowId } from './names';
import { GermlineId } from './search-attributes';
import { trainingWorkflow } from './training';
import { type TrainingResult, trainingSearchAttributes } from './training-api';

const preparing = proxyActivities<DatasetActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});
const checkpoints = proxyActivities<CheckpointActivities>({
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: ['PaidContent'],
  },
});
// Decisions must all be stored: retried until done.
const recording = proxyActivities<AutonomyActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

export interface LearnInput {
  germline: string;
  runId: string;
  maxCost: string;
  currency: string;
  /** The gate as it was when the act was decided. */
  evalGate: EvalGate | null;
  /** The decision that started it: its outcome is recorded beside it. */
  decision: { id: string; policy: 'rules' | 'http'; observationDigest: string; proposal: Proposal };
}

export interface LearnResult {
  outcome: 'promoted' | 'not-promoted' | 'nothing-new' | 'run-ended';
  reason: string;
  datasets: string[];
  run?: TrainingResult;
}

export async function learnWorkflow(input: LearnInput): Promise<LearnResult> {
  upsertSearchAttributes([{ key: GermlineId, value: input.germline }]);
  const repo = germlineRepository(input.germline);

  const finish = async (result: LearnResult, outcome: DecisionOutcome): Promise<LearnResult> => {
    await recording.recordDecisions({
      germline: input.germline,
      policy: input.decision.policy,
      observationDigest: input.decision.observationDigest,
      decisions: [
        { id: `${input.decision.id}/outcome`, proposal: input.decision.proposal, outcome, reason: result.reason },
      ],
    });
    return result;
  };

  const prepared = await preparing.prepareLearning({
    germline: input.germline,
    runId: input.runId,
    maxCost: input.maxCost,
    currency: input.currency,
  });
  if (!prepared.request) {
    return finish(
      { outcome: 'nothing-new', reason: 'no feedback left to learn from: another run learned it first', datasets: [] },
      'failed',
    );
  }
  const { request, datasets } = { request: prepared.request, datasets: prepared.datasets };

  let run: TrainingResult;
  try {
    run = await executeChild(trainingWorkflow, {
      workflowId: trainingWorkflowId(request.id),
      args: [request],
      typedSearchAttributes: trainingSearchAttributes(request),
    });
  } catch (error) {
    return finish(
      { outcome: 'run-ended', reason: `training/${request.id} did not finish: ${failureMessage(error)}`, datasets },
      'failed',
    );
  }
  if (run.state !== 'succeeded' || !run.outputDigest) {
    return finish(
      { outcome: 'run-ended', reason: `training/${request.id} ended ${run.state}: nothing to promote`, datasets, run },
      'failed',
    );
  }

  const { digest, metrics } = await checkpoints.readCheckpointMetrics({ repo, reference: run.outputDigest });
  const gate = checkEvalGate(metrics, input.evalGate);
  if (!gate.ok) {
    return finish(
      {
        outcome: 'not-promoted',
        reason: `${repo}@${digest} learned from ${datasets.join(', ')} and stays on ${request.output.branch}: ${gate.detail}`,
        datasets,
        run,
      },
      'refused',
    );
  }
  await checkpoints.forkBranch({ from: { repo, reference: digest }, to: { repo, branch: 'main' } });
  return finish(
    {
      outcome: 'promoted',
      reason: `${repo}@${digest} learned from ${datasets.join(', ')} and is the head now (${gate.detail}); the next daily tag carries it`,
      datasets,
      run,
    },
    'executed',
  );
}
