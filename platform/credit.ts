// A trainer's credit and the training runs it pays: the workflow credit/<handle> is started the
// first time a trainer needs it, and a run asked for through the API trains on the platform's own
// trainer (never a command or image the trainer names: it runs on the operators' machines), from a
// checkpoint the trainer may read, into a branch under trainers/<handle>/.
import { randomBytes } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import type { Database } from '../db/prisma';
import { requireManifest } from '../store/checkpoint';
import { assertRepository, assertTag, parseReference } from '../store/names';
import type { CheckpointStore } from '../store/types';
import { startTrainingRun } from '../temporal/training-client';
import type { creditWorkflow } from '../workflows/credit';
import { assertAtMostMaximum, formatMoney } from '../workflows/money';
import { type TrainingDefaults, type TrainingRequest, trainingRequest } from '../workflows/training-api';
import { type AccountView, assertOwnRepository } from './accounts';
import { assertMayRead, inheritTerms } from './read-access';
import { PlatformError } from './errors';
import type { BudgetStatus } from '../workflows/budget-api';
import { statusQuery } from '../workflows/budget-api';
import { creditWorkflowId } from '../workflows/names';
import { creditSummary } from '../workflows/summaries';

/** How runs asked for through the platform are made: the worker's queue and the operators' settings. */
export interface TrainingSettings extends TrainingDefaults {
  taskQueue: string;
  /** The most GPUs one trainer's run may ask for. */
  maxGpus: number;
}

/** The trainer's credit workflow, started now if it never was (a second start joins the running one). */
export async function creditHandle(
  client: Client,
  taskQueue: string,
  handle: string,
  currency: string,
): Promise<WorkflowHandle<typeof creditWorkflow>> {
  return client.workflow.start<typeof creditWorkflow>('creditWorkflow', {
    workflowId: creditWorkflowId(handle),
    taskQueue,
    args: [{ handle, currency }],
    staticSummary: creditSummary(handle),
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}

export async function creditStatus(
  client: Client,
  taskQueue: string,
  handle: string,
  currency: string,
): Promise<BudgetStatus> {
  return (await creditHandle(client, taskQueue, handle, currency)).query(statusQuery);
}

/** More datasets in one run is a mistake, not a plan. */
export const MAX_RUN_DATASETS = 16;

/**
 * Starts a training run paid from `trainer`'s credit. The credit workflow reserves `maxCost` before
 * anything runs (refusing a run the credit cannot pay); checked here first so the answer says so.
 */
export async function startTrainerRun(
  deps: { client: Client; db: Database; store: CheckpointStore; currency: string; settings: TrainingSettings },
  trainer: AccountView,
  input: {
    base?: string | null;
    /** Feedback datasets to learn from, `repo@digest` or `repo:tag`: the trainer must be able to read them. */
    datasets?: readonly string[] | null;
    repository: string;
    branch: string;
    maxCost: bigint;
    gpus: number;
  },
): Promise<{ id: string; workflowId: string; request: TrainingRequest }> {
  // Names and checkpoints that are wrong throw the store's own errors, which the API answers as BAD_USER_INPUT or NOT_FOUND.
  assertRepository(input.repository);
  assertTag(input.branch);
  assertOwnRepository(trainer, input.repository, 'your runs publish');
  if (!Number.isInteger(input.gpus) || input.gpus < 1 || input.gpus > deps.settings.maxGpus)
    throw new PlatformError('BAD_USER_INPUT', `gpus is 1 to ${deps.settings.maxGpus}`);
  if (input.maxCost <= 0n)
    throw new PlatformError('BAD_USER_INPUT', 'maxCost is above zero: the most the run may cost');
  assertAtMostMaximum(input.maxCost, `maxCost ${input.maxCost}`, deps.currency, { inMinorUnits: true });

  let base: { repo: string; reference: string } | undefined;
  if (input.base) {
    base = parseReference(input.base);
    await requireManifest(deps.store, base.repo, base.reference);
    // A paid breed trains only for those who may download it, and what the run makes keeps its terms.
    await assertMayRead(deps.db, { role: trainer.role, account: trainer }, base.repo, 'train from');
  }

  const datasets = (input.datasets ?? []).map((text) => parseReference(text));
  if (datasets.length > MAX_RUN_DATASETS)
    throw new PlatformError('BAD_USER_INPUT', `a run learns from at most ${MAX_RUN_DATASETS} datasets`);
  for (const dataset of datasets) {
    await requireManifest(deps.store, dataset.repo, dataset.reference);
    await assertMayRead(deps.db, { role: trainer.role, account: trainer }, dataset.repo, 'train on the datasets of');
  }

  const credit = await creditStatus(deps.client, deps.settings.taskQueue, trainer.handle, deps.currency);
  if (BigInt(credit.available) < input.maxCost) {
    throw new PlatformError(
      'BAD_USER_INPUT',
      `your credit has ${formatMoney(credit.available, deps.currency)} available and the run may cost up to ${formatMoney(input.maxCost, deps.currency)}: add credit (fundCredit) or lower maxCost`,
    );
  }
  const id = `${trainer.handle}-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`;
  const request = trainingRequest(deps.settings, {
    id,
    payer: creditWorkflowId(trainer.handle),
    currency: deps.currency,
    ...(base ? { base } : {}),
    ...(datasets.length ? { datasets } : {}),
    output: { repo: input.repository, branch: input.branch },
    gpus: input.gpus,
    maxCost: input.maxCost,
  });
  if (base) await inheritTerms(deps.db, base.repo, input.repository);
  const handle = await startTrainingRun(deps.client, deps.settings.taskQueue, request);
  return { id, workflowId: handle.workflowId, request };
}
