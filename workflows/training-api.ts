// The training run's messages and inputs: shared by the workflow, the worker's callers and the CLI.
import { defineQuery } from '@temporalio/workflow';
import type { MinorUnits } from './money';
import { Payer, RunKind, RunState } from './search-attributes';

/** Versioned so that runs started by an older daemon keep replaying after an upgrade. */
export interface TrainingRequestV1 {
  version: 1;
  /** The run id: lowercase letters, digits and dashes; the workflow is `training/<id>`. */
  id: string;
  /** The workflow id of the budget that pays, e.g. `germline/computatrum`. */
  payer: string;
  currency: string;
  /** The checkpoint to start from; absent: the trainer starts from scratch. */
  base?: { repo: string; reference: string };
  /** Feedback datasets to learn from (store/dataset.ts), each resolved to its digest when the run is prepared. */
  datasets?: Array<{ repo: string; reference: string }>;
  output: { repo: string; branch: string };
  runner: 'local' | 'kubernetes';
  /** The trainer's argv (local) or container command (kubernetes); the configured default when absent. */
  command?: string[];
  image?: string;
  gpus: number;
  gpuType?: string;
  maxCost: MinorUnits;
  /** Minor units per GPU-hour, fixed when the run is asked for so that a later rate change never reprices it. */
  ratePerGpuHour: MinorUnits;
  maxDurationSeconds: number;
  /** Preemptions survived before the run gives up (the job is retried from its last checkpoint). */
  maxPreemptions: number;
  /** How long the runner may go silent before its attempt counts as lost (preempted). */
  heartbeatTimeoutSeconds?: number;
}

export type TrainingRequest = TrainingRequestV1;

/** How runs are made where the asker does not say: built once from configuration (runtime/config.ts trainingDefaults). */
export interface TrainingDefaults {
  runner: 'local' | 'kubernetes';
  /** Minor units per GPU-hour. */
  ratePerGpuHour: bigint;
  maxDurationSeconds: number;
  maxPreemptions: number;
  image?: string;
  /** The trainer's argv; absent: the runner's own default (COMPUTATRUM_TRAINER_COMMAND, or the tiny trainer). */
  command?: string[];
}

/** What a caller asks for; everything else comes from the defaults. */
export interface TrainingAsk {
  id: string;
  payer: string;
  currency: string;
  base?: { repo: string; reference: string };
  datasets?: Array<{ repo: string; reference: string }>;
  output: { repo: string; branch: string };
  maxCost: bigint;
  gpus?: number;
  gpuType?: string;
  runner?: TrainingDefaults['runner'];
  image?: string;
  command?: string[];
  maxDurationSeconds?: number;
}

/** The one way a TrainingRequest is made (the CLI, the platform's credit runs, the germline's autonomy). */
export function trainingRequest(defaults: TrainingDefaults, ask: TrainingAsk): TrainingRequest {
  const image = ask.image ?? defaults.image;
  const command = ask.command?.length ? ask.command : defaults.command;
  return {
    version: 1,
    id: ask.id,
    payer: ask.payer,
    currency: ask.currency,
    ...(ask.base ? { base: ask.base } : {}),
    ...(ask.datasets?.length ? { datasets: ask.datasets } : {}),
    output: ask.output,
    runner: ask.runner ?? defaults.runner,
    ...(command ? { command } : {}),
    ...(image ? { image } : {}),
    gpus: ask.gpus ?? 1,
    ...(ask.gpuType ? { gpuType: ask.gpuType } : {}),
    maxCost: ask.maxCost.toString(),
    ratePerGpuHour: defaults.ratePerGpuHour.toString(),
    maxDurationSeconds: ask.maxDurationSeconds ?? defaults.maxDurationSeconds,
    maxPreemptions: defaults.maxPreemptions,
  };
}

/** A run's search attributes when it starts, whoever starts it: every run is found the same way in the Temporal UI. */
export function trainingSearchAttributes(request: TrainingRequest) {
  return [
    { key: RunKind, value: 'training' },
    { key: Payer, value: request.payer },
    { key: RunState, value: 'reserving' },
  ];
}

export type TrainingState =
  'reserving' | 'running' | 'publishing' | 'succeeded' | 'failed' | 'cancelled' | 'cost-cap' | 'deadline' | 'refused';

export const FINAL_TRAINING_STATES: readonly TrainingState[] = [
  'succeeded',
  'failed',
  'cancelled',
  'cost-cap',
  'deadline',
  'refused',
];

export interface TrainingStatus {
  id: string;
  state: TrainingState;
  payer: string;
  reservationId?: string;
  maxCost: MinorUnits;
  /** Minor units charged, once settled. */
  cost?: MinorUnits;
  gpuSeconds?: number;
  baseDigest?: string;
  /** The datasets it learns from, as `repo@digest`. */
  datasets?: string[];
  outputDigest?: string;
  /** Where a run that stopped early keeps its last checkpoint (`<repo>:run-<id>`). */
  partialOutput?: string;
  error?: string;
}

export interface TrainingResult extends TrainingStatus {
  state: 'succeeded' | 'cancelled' | 'cost-cap' | 'deadline';
}

export const trainingStatusQuery = defineQuery<TrainingStatus>('status');
