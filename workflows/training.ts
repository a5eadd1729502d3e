// training/<id>: one GPU training run. Reserve its cap from the payer's budget, run the job through
// a runner activity (heartbeats; a preempted attempt is retried from its last checkpoint), publish
// the output with lineage and move the branch, then settle what it really cost and release the rest.
// Cancellation stops the job and settles the time used. The payer is charged exactly once: one
// reservation (by ref) and one settlement (by reservation id), both idempotent.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { BudgetActivities } from '../activities/budget';
import type { TrainingActivities } from '../activities/training';
import type { TrainingOutcome, TrainingProgress } from '../activities/runners/types';
import { failureMessage, failureType } from './failures';
import { type MinorUnits, toMinor } from './money';
import { Payer, RunKind, RunState } from './search-attributes';
import {
  type TrainingRequest,
  type TrainingResult,
  type TrainingState,
  type TrainingStatus,
  trainingStatusQuery,
} from './training-api';
import { gpuSecondsForCost, trainingCost } from './training-cost';

/** Bookkeeping steps: quick, idempotent, retried until they succeed (money must never be left reserved). */
const bookkeeping = proxyActivities<TrainingActivities & BudgetActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** Checks that cannot succeed on a retry fail the run at once. */
const preparation = proxyActivities<TrainingActivities & BudgetActivities>({
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: ['TrainingRequestInvalid'],
  },
});

function runnerActivity(request: TrainingRequest) {
  return proxyActivities<TrainingActivities>({
    // A silent runner means the worker or its process is gone: the attempt counts as preempted.
    heartbeatTimeout: `${request.heartbeatTimeoutSeconds ?? 30} seconds`,
    // The runner enforces the run's duration itself; this is the backstop.
    scheduleToCloseTimeout: `${request.maxDurationSeconds + 15 * 60} seconds`,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '1 second',
      maximumInterval: '30 seconds',
      maximumAttempts: request.maxPreemptions + 1,
      nonRetryableErrorTypes: ['TrainerFailed', 'TrainingRequestInvalid'],
    },
  }).runTraining;
}

/** The request's money; a malformed or above-maximum amount fails the run instead of its workflow task, forever. */
function requestMoney(value: MinorUnits, field: string, currency: string): bigint {
  try {
    return toMinor(value, field, currency);
  } catch (error) {
    throw ApplicationFailure.nonRetryable((error as Error).message, 'TrainingRequestInvalid');
  }
}

export async function trainingWorkflow(request: TrainingRequest): Promise<TrainingResult> {
  const maxCost = requestMoney(request.maxCost, 'maxCost', request.currency);
  const rate = requestMoney(request.ratePerGpuHour, 'ratePerGpuHour', request.currency);
  const status: TrainingStatus = { id: request.id, state: 'reserving', payer: request.payer, maxCost: request.maxCost };
  setHandler(trainingStatusQuery, () => status);

  async function enter(
    state: TrainingState,
    patch: Partial<TrainingStatus> = {},
    progress?: TrainingProgress,
  ): Promise<void> {
    Object.assign(status, patch, { state });
    upsertSearchAttributes([{ key: RunState, value: state }]);
    await bookkeeping.recordTrainingState({ id: request.id, state, status, progress });
  }

  upsertSearchAttributes([
    { key: RunKind, value: 'training' },
    { key: Payer, value: request.payer },
    { key: RunState, value: 'reserving' },
  ]);

  // Nothing may start, and nothing may be spent, before the base is known and the cap reserved.
  let step: 'prepare' | 'reserve' = 'prepare';
  let reservationId: string;
  let prepared: Awaited<ReturnType<TrainingActivities['prepareTrainingRun']>> = {};
  try {
    prepared = await CancellationScope.nonCancellable(() => preparation.prepareTrainingRun(request));
    status.baseDigest = prepared.baseDigest;
    if (prepared.datasets?.length) status.datasets = prepared.datasets.map((d) => `${d.repo}@${d.digest}`);
    step = 'reserve';
    const reserved = await CancellationScope.nonCancellable(() =>
      preparation.reserveForTraining({
        payer: request.payer,
        ref: `training/${request.id}`,
        amount: request.maxCost,
        purpose: `training run ${request.id}`,
      }),
    );
    reservationId = reserved.reservationId;
  } catch (error) {
    // A budget that says no (not enough money, a cap, paused) refuses the run; anything else fails it.
    await CancellationScope.nonCancellable(() =>
      enter(step === 'reserve' ? 'refused' : 'failed', { error: failureMessage(error) }),
    );
    throw ApplicationFailure.nonRetryable(failureMessage(error), failureType(error) ?? 'TrainingFailed');
  }
  status.reservationId = reservationId;

  let outcome: TrainingOutcome | undefined;
  let failure: unknown;
  try {
    await enter('running');
    outcome = await runnerActivity(request)({
      request,
      baseDigest: status.baseDigest,
      ...(prepared.datasets ? { datasets: prepared.datasets } : {}),
      maxGpuSeconds: gpuSecondsForCost(maxCost, rate),
    });
  } catch (error) {
    failure = error;
  }
  // The runner may answer a cancellation with its usage (a 'cancelled' outcome) or as a cancelled activity.
  const cancelled = (failure !== undefined && isCancellation(failure)) || outcome?.state === 'cancelled';

  // Whatever happened, the money is settled and the state recorded, even when the run was cancelled.
  const result = await CancellationScope.nonCancellable(async () => {
    const usage = outcome?.progress ?? (await bookkeeping.readTrainingUsage(request.id));
    let final: TrainingState = cancelled ? 'cancelled' : failure !== undefined ? 'failed' : outcome!.state;
    if (outcome?.output) {
      try {
        if (outcome.state === 'succeeded') await enter('publishing', {}, usage);
        const published = await bookkeeping.publishTrainingOutput({
          request,
          baseDigest: status.baseDigest,
          ...(prepared.datasets ? { datasets: prepared.datasets } : {}),
          outcome,
        });
        if (outcome.state === 'succeeded') status.outputDigest = published.digest;
        else status.partialOutput = published.reference;
      } catch (error) {
        final = 'failed';
        failure = error;
      }
    }
    const cost = trainingCost(usage.gpuSeconds, rate, maxCost);
    await bookkeeping.settleForTraining({ payer: request.payer, reservationId, actual: cost.toString() });
    await enter(
      final,
      {
        cost: cost.toString(),
        gpuSeconds: usage.gpuSeconds,
        ...(failure && !cancelled ? { error: failureMessage(failure) } : {}),
      },
      usage,
    );
    return final;
  });

  if (cancelled) throw failure ?? new CancelledFailure(`training run ${request.id} was cancelled`);
  if (result === 'failed')
    throw ApplicationFailure.nonRetryable(
      status.error ?? 'the training run failed',
      failureType(failure) ?? 'TrainingFailed',
    );
  return { ...status, state: result as TrainingResult['state'] };
}
