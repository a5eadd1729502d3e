// The training run's side effects: checking the request against the store, running the job through
// a runner with heartbeats, publishing its output with lineage, and the TrainingRun row that shows
// progress to the CLI and keeps the usage a cancelled run is settled from.
import { Context, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Prisma } from '@prisma/client';
import pino, { type Logger } from 'pino';
import type { Database } from '../db/prisma';
import { LossPointBuffer, recordLossPoints, type LossPoint } from '../db/training-loss';
import {
  PreemptedError,
  type RunnerKind,
  TrainerFailedError,
  type TrainingOutcome,
  type TrainingProgress,
  type TrainingRunner,
} from './runners/types';
import { ANNOTATION, publishCheckpoint, requireManifest, tagCheckpoint } from '../store/checkpoint';
import { DATASET_ARTIFACT } from '../store/dataset';
import { assertRepository, assertTag, isDigest } from '../store/names';
import { type CheckpointStore, type ImageManifest, StoreError } from '../store/types';
import {
  FINAL_TRAINING_STATES,
  type TrainingRequest,
  type TrainingState,
  type TrainingStatus,
} from '../workflows/training-api';
import { germlineWorkflowId, runTag, NAME, PAYER } from '../workflows/names';

/** A dataset a run learns from, resolved to the digest it was when the run was prepared. */
export interface ResolvedDataset {
  repo: string;
  digest: string;
}

export interface TrainingActivities {
  prepareTrainingRun(request: TrainingRequest): Promise<{ baseDigest?: string; datasets?: ResolvedDataset[] }>;
  runTraining(input: {
    request: TrainingRequest;
    baseDigest?: string;
    datasets?: ResolvedDataset[];
    maxGpuSeconds: number;
  }): Promise<TrainingOutcome>;
  publishTrainingOutput(input: {
    request: TrainingRequest;
    baseDigest?: string;
    datasets?: ResolvedDataset[];
    outcome: TrainingOutcome;
  }): Promise<{ digest: string; reference: string }>;
  readTrainingUsage(id: string): Promise<TrainingProgress>;
  recordTrainingState(input: {
    id: string;
    state: TrainingState;
    status: TrainingStatus;
    progress?: TrainingProgress;
  }): Promise<void>;
}

export interface TrainingDependencies {
  db: Database;
  store: CheckpointStore;
  runners: Partial<Record<RunnerKind, TrainingRunner>>;
  /** Where the trainer's own log lines go. */
  logger?: Logger;
  /** How often progress is written to the TrainingRun row at most (checkpoints are written at once). */
  progressWriteMs?: number;
}

function invalid(message: string): never {
  throw ApplicationFailure.create({ type: 'TrainingRequestInvalid', message, nonRetryable: true });
}

/** Checks what the workflow cannot: names, the runner, and that the base checkpoint exists. */
function validate(request: TrainingRequest, runners: TrainingDependencies['runners']): void {
  if (request.version !== 1) invalid(`unsupported training request version ${String(request.version)}`);
  if (!NAME.test(request.id))
    invalid(`run id "${request.id}" must be lowercase letters, digits and dashes (at most 63)`);
  if (!PAYER.test(request.payer))
    invalid(
      `payer "${request.payer}" is not a budget: use germline/<name>, child/<germline>/<child> or credit/<trainer>`,
    );
  if (!Number.isInteger(request.gpus) || request.gpus < 1 || request.gpus > 64)
    invalid(`gpus must be a whole number from 1 to 64, got ${request.gpus}`);
  if (!Number.isInteger(request.maxDurationSeconds) || request.maxDurationSeconds < 1)
    invalid(`the maximum duration must be at least 1 second, got ${request.maxDurationSeconds}`);
  if (!runners[request.runner])
    invalid(
      `the ${request.runner} runner is not configured on this worker (the kubernetes runner needs COMPUTATRUM_KUBE_NAMESPACE)`,
    );
  if (request.runner === 'kubernetes' && !request.image)
    invalid('a kubernetes run needs a container image (--image or COMPUTATRUM_TRAINING_IMAGE)');
  try {
    assertRepository(request.output.repo);
    assertTag(request.output.branch);
    if (request.base) assertRepository(request.base.repo);
    for (const dataset of request.datasets ?? []) assertRepository(dataset.repo);
  } catch (error) {
    invalid((error as Error).message);
  }
  if (/^gpc-/.test(request.output.branch))
    invalid(`the output branch ${request.output.branch} is a daily tag name: training writes a branch, choose another`);
}

/** Keeps the newest progress and writes it to the row at most every `intervalMs`, never two writes at once. */
function progressWriter(write: (progress: TrainingProgress) => Promise<void>, intervalMs: number) {
  let latest: TrainingProgress | undefined;
  let writing: Promise<void> | undefined;
  let lastWrite = 0;
  const flush = async (): Promise<void> => {
    while (writing) await writing;
    if (!latest) return;
    const next = latest;
    latest = undefined;
    lastWrite = Date.now();
    writing = write(next).finally(() => (writing = undefined));
    await writing;
  };
  return {
    offer(progress: TrainingProgress, urgent: boolean): void {
      latest = progress;
      if (urgent || Date.now() - lastWrite >= intervalMs)
        void flush().catch((error) =>
          log.warn('could not record training progress', { error: (error as Error).message }),
        );
    },
    flush,
  };
}

function progressColumns(progress: TrainingProgress) {
  return {
    gpuSeconds: progress.gpuSeconds,
    step: progress.step ?? null,
    lastCheckpoint: progress.lastCheckpoint ?? null,
    loss: progress.loss ?? null,
    attempts: progress.attempt ?? 0,
    resumedFromStep: progress.resumedFromStep ?? null,
    runnerState: (progress.runner as Prisma.InputJsonValue | undefined) ?? Prisma.DbNull,
  };
}

export function createTrainingActivities(deps: TrainingDependencies): TrainingActivities {
  const { db, store } = deps;

  async function saveProgress(id: string, progress: TrainingProgress, losses: LossPoint[] = []): Promise<void> {
    // Usage only grows: an older write arriving late never lowers what the payer will be charged.
    await db.trainingRun.updateMany({
      where: { id, gpuSeconds: { lte: progress.gpuSeconds } },
      data: progressColumns(progress),
    });
    await recordLossPoints(db, id, losses);
  }

  async function storedProgress(id: string): Promise<TrainingProgress | undefined> {
    const row = await db.trainingRun.findUnique({ where: { id } });
    if (!row) return undefined;
    return {
      gpuSeconds: row.gpuSeconds,
      ...(row.step !== null ? { step: row.step } : {}),
      ...(row.lastCheckpoint !== null ? { lastCheckpoint: row.lastCheckpoint } : {}),
      ...(row.loss !== null ? { loss: row.loss } : {}),
      ...(row.resumedFromStep !== null ? { resumedFromStep: row.resumedFromStep } : {}),
      attempt: row.attempts,
      ...(row.runnerState !== null ? { runner: row.runnerState as Record<string, unknown> } : {}),
    };
  }

  return {
    async prepareTrainingRun(request) {
      validate(request, deps.runners);
      let baseDigest: string | undefined;
      if (request.base) {
        try {
          baseDigest = (await requireManifest(store, request.base.repo, request.base.reference)).digest;
        } catch (error) {
          if (error instanceof StoreError && error.code === 'MANIFEST_UNKNOWN') invalid(error.message);
          throw error;
        }
      }
      const datasets: ResolvedDataset[] = [];
      for (const dataset of request.datasets ?? []) {
        const where = `${dataset.repo}${isDigest(dataset.reference) ? '@' : ':'}${dataset.reference}`;
        let stored;
        try {
          stored = await requireManifest(store, dataset.repo, dataset.reference);
        } catch (error) {
          if (error instanceof StoreError && error.code === 'MANIFEST_UNKNOWN') invalid(error.message);
          throw error;
        }
        const artifactType = (JSON.parse(stored.bytes.toString('utf8')) as ImageManifest).artifactType;
        if (artifactType !== DATASET_ARTIFACT)
          invalid(
            `${where} is not a feedback dataset (${artifactType ?? 'no artifact type'}): list an image's datasets with \`computatrum datasets ${dataset.repo}\``,
          );
        if (!datasets.some((d) => d.digest === stored.digest))
          datasets.push({ repo: dataset.repo, digest: stored.digest });
      }
      await db.trainingRun.upsert({
        where: { id: request.id },
        update: {},
        create: {
          id: request.id,
          payer: request.payer,
          runner: request.runner,
          baseRepository: request.base?.repo ?? null,
          baseReference: request.base?.reference ?? null,
          baseDigest: baseDigest ?? null,
          outputRepository: request.output.repo,
          outputBranch: request.output.branch,
          gpus: request.gpus,
          gpuType: request.gpuType ?? null,
          maxCost: BigInt(request.maxCost),
          ratePerGpuHour: BigInt(request.ratePerGpuHour),
          currency: request.currency,
          maxDurationSeconds: request.maxDurationSeconds,
          state: 'reserving',
          ...(datasets.length ? { datasets: datasets.map((d) => ({ repository: d.repo, digest: d.digest })) } : {}),
        },
      });
      return { ...(baseDigest ? { baseDigest } : {}), ...(datasets.length ? { datasets } : {}) };
    },

    async runTraining({ request, baseDigest, datasets, maxGpuSeconds }) {
      const context = Context.current();
      const runner = deps.runners[request.runner];
      if (!runner) invalid(`the ${request.runner} runner is not configured on this worker`);
      // The previous attempt's usage: the larger of its last heartbeat and its last row write.
      const fromHeartbeat = context.info.heartbeatDetails as TrainingProgress | undefined;
      const fromRow = await storedProgress(request.id);
      const candidates = [fromHeartbeat, fromRow].filter(
        (p): p is TrainingProgress => p !== undefined && (p.attempt ?? 0) > 0,
      );
      const resumeFrom = candidates.sort((a, b) => b.gpuSeconds - a.gpuSeconds)[0];
      await db.trainingRun.update({
        where: { id: request.id },
        data: { state: 'running', startedAt: fromRow?.attempt ? undefined : new Date() },
      });

      // Writes are throttled to the newest progress; every loss reported between two writes is kept for the curve.
      const losses = new LossPointBuffer();
      const progressWrites = progressWriter((progress) => {
        const points = losses.take();
        return saveProgress(request.id, progress, points).catch((error: unknown) => {
          losses.putBack(points);
          throw error;
        });
      }, deps.progressWriteMs ?? 1000);
      const writer = {
        offer(progress: TrainingProgress, urgent: boolean): void {
          losses.offer(progress);
          progressWrites.offer(progress, urgent);
        },
        flush: progressWrites.flush,
      };
      let lastCheckpoint = resumeFrom?.lastCheckpoint;
      const spec = {
        runId: request.id,
        ...(request.base && baseDigest ? { base: { ...request.base, digest: baseDigest } } : {}),
        ...(datasets?.length ? { datasets } : {}),
        output: request.output,
        ...(request.command ? { command: request.command } : {}),
        ...(request.image ? { image: request.image } : {}),
        gpus: request.gpus,
        ...(request.gpuType ? { gpuType: request.gpuType } : {}),
        maxGpuSeconds,
        maxDurationSeconds: request.maxDurationSeconds,
      };
      const logger = (deps.logger ?? pino({ level: 'silent' })).child({
        runId: request.id,
        attempt: context.info.attempt,
      });
      try {
        const outcome = await runner.run(spec, {
          signal: context.cancellationSignal,
          log: logger,
          ...(resumeFrom ? { resumeFrom } : {}),
          report(progress) {
            heartbeat(progress);
            writer.offer(progress, progress.lastCheckpoint !== lastCheckpoint);
            lastCheckpoint = progress.lastCheckpoint;
          },
        });
        writer.offer(outcome.progress, true);
        await writer.flush();
        // Stopped because this worker is going away, not because anyone cancelled: another attempt resumes.
        if (outcome.state === 'cancelled' && !context.cancellationDetails?.cancelRequested) {
          heartbeat(outcome.progress);
          throw ApplicationFailure.create({
            type: 'Preempted',
            message: 'the worker stopped while the trainer ran; the run resumes on the next worker',
            details: [outcome.progress],
          });
        }
        return outcome;
      } catch (error) {
        if (error instanceof PreemptedError || error instanceof TrainerFailedError) {
          heartbeat(error.progress);
          writer.offer(error.progress, true);
          await writer.flush();
          log.warn(error.message, { runId: request.id });
          throw ApplicationFailure.create({
            type: error instanceof PreemptedError ? 'Preempted' : 'TrainerFailed',
            message: error.message,
            nonRetryable: error instanceof TrainerFailedError,
            details: [error.progress],
          });
        }
        throw error;
      }
    },

    async publishTrainingOutput({ request, baseDigest, datasets, outcome }) {
      const { output } = outcome;
      if (!output) throw new Error('publishTrainingOutput needs an outcome with an output');
      // A finished run moves its branch; a run stopped early keeps its last checkpoint as run-<id> only.
      const tag = outcome.state === 'succeeded' ? request.output.branch : runTag(request.id);
      const metrics = outcome.state === 'succeeded' ? outcome.metrics : {};
      const annotations: Record<string, string> = {
        [ANNOTATION.trainingRun]: request.id,
        ...(Object.keys(metrics).length ? { [ANNOTATION.metrics]: JSON.stringify(metrics) } : {}),
        ...(datasets?.length
          ? { [ANNOTATION.datasets]: JSON.stringify(datasets.map((d) => `${d.repo}@${d.digest}`)) }
          : {}),
        'io.computatrum.training-outcome': outcome.state,
      };
      let digest: string;
      if (output.kind === 'folder') {
        digest = (
          await publishCheckpoint(store, request.output.repo, output.path, {
            tag,
            ...(baseDigest ? { parent: baseDigest } : {}),
            ...(datasets?.length ? { datasets: datasets.map((d) => `${d.repo}@${d.digest}`) } : {}),
            annotations,
          })
        ).digest;
      } else {
        // The job pushed its output itself; check its lineage before the branch moves to it.
        const pushed = await requireManifest(store, output.repo, output.reference);
        const manifest = JSON.parse(pushed.bytes.toString('utf8')) as { annotations?: Record<string, string> };
        if (baseDigest && manifest.annotations?.[ANNOTATION.parent] !== baseDigest) {
          throw ApplicationFailure.create({
            type: 'TrainingOutputInvalid',
            nonRetryable: true,
            message: `${output.repo}:${output.reference} names parent ${manifest.annotations?.[ANNOTATION.parent] ?? 'none'}, not the run's base ${baseDigest}: refusing to move ${request.output.branch}`,
          });
        }
        digest = await tagCheckpoint(store, output.repo, output.reference, tag);
      }
      await db.trainingRun.update({
        where: { id: request.id },
        data: outcome.state === 'succeeded' ? { outputDigest: digest, metrics: metrics as Prisma.InputJsonValue } : {},
      });
      return { digest, reference: `${request.output.repo}:${tag}` };
    },

    async readTrainingUsage(id) {
      return (await storedProgress(id)) ?? { gpuSeconds: 0 };
    },

    async recordTrainingState({ id, state, status, progress }) {
      const final = FINAL_TRAINING_STATES.includes(state);
      // updateMany: a request refused before its row was written has no row to update.
      await db.trainingRun.updateMany({
        where: { id },
        data: {
          state,
          reservationId: status.reservationId ?? null,
          error: status.error ?? null,
          ...(status.cost !== undefined ? { cost: BigInt(status.cost) } : {}),
          ...(final ? { finishedAt: new Date() } : {}),
        },
      });
      if (progress) await saveProgress(id, progress);
    },
  };
}

export const trainingPayer = (germline: string): string => germlineWorkflowId(germline);
