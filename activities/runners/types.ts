// A training runner launches one training job somewhere (a child process on this host, a
// Kubernetes Job), watches it, reports progress, and stops it on request. The `training/<id>`
// workflow drives runners through the runTraining activity (activities/training.ts), which turns
// the runner's errors into retryable (preempted) or final (trainer failed) Temporal failures.
import type { Logger } from 'pino';

/**
 * The contract between computatrum and any trainer program (the tiny trainer shipped in
 * activities/runners/tiny-trainer, or an operator's own):
 * - environment: COMPUTATRUM_RUN_ID, COMPUTATRUM_BASE_DIR (the base checkpoint's files, read only;
 *   empty folder: start from scratch), COMPUTATRUM_OUTPUT_DIR, COMPUTATRUM_GPUS,
 *   COMPUTATRUM_MAX_SECONDS (the run is stopped after this much wall time), and, when the run learns
 *   from feedback, COMPUTATRUM_DATASET_DIRS (the datasets' folders, separated by the platform's path
 *   delimiter, `path.delimiter`: `:` on POSIX; each materialized read only and digest-verified, like
 *   the base; unset or empty: no datasets);
 * - datasets (format: store/dataset.ts, readDatasetFolder reads and checks one): each folder holds
 *   `records.json` (the feedback record ids and the row counts) and JSONL files, one row a line, any of
 *   them empty or missing, in TRL's conversational formats, every row also naming its `record`:
 *   `transcripts.jsonl` (language modeling, `{messages}`, ending with the assistant answer to learn:
 *   SFT), `preferences.jsonl` (preference, `{prompt, chosen, rejected}`: DPO, ORPO), `labelled.jsonl`
 *   (unpaired, `{prompt, completion, label}`: KTO, BCO); messages are `{role, content}`. A trainer
 *   fine-tunes on them (typically from the base; mixing in its usual data is its choice), uses the kinds
 *   it has an objective for and says in its log which and how many rows it used; a dataset it cannot
 *   read (missing folder, bad JSON, wrong shape) ends the run with an exit code (not retried) and a
 *   message naming the folder, or the file and line; computatrum records which datasets a checkpoint
 *   learned from, a trainer need not;
 * - checkpoints: each saved as a folder `checkpoint-<step, 8 digits>` in the output folder, written
 *   under a temporary name and renamed when complete, holding safetensors files and `metrics.json`;
 * - resume: on start, a trainer carries on from the newest complete checkpoint folder in its output;
 * - stdout: JSON lines `{"event":"progress","step":N,"loss":X}`, `{"event":"checkpoint","step":N,
 *   "path":"checkpoint-00000100"}`, `{"event":"resumed","step":N}`; any other line is a log line;
 * - exit 0: done, and the newest checkpoint folder is the run's output; any other exit code: a
 *   trainer bug (not retried); killed by a signal: preempted (retried from the last checkpoint).
 */
export const TRAINER_ENV = {
  runId: 'COMPUTATRUM_RUN_ID',
  baseDir: 'COMPUTATRUM_BASE_DIR',
  outputDir: 'COMPUTATRUM_OUTPUT_DIR',
  gpus: 'COMPUTATRUM_GPUS',
  maxSeconds: 'COMPUTATRUM_MAX_SECONDS',
  datasetDirs: 'COMPUTATRUM_DATASET_DIRS',
} as const;

/**
 * The contract between computatrum and any hosted instance: a process that serves one checkpoint
 * through the OpenAI-compatible API (the tiny server in activities/runners/tiny-trainer/server.ts,
 * or vLLM, llama.cpp's llama-server, Ollama, an operator's own program):
 * - environment: COMPUTATRUM_MODEL_DIR (the checkpoint's files at the folder's root, as they were
 *   published: for a trainer's output, the files of its `checkpoint-<step>` folder; read only, every
 *   file digest-verified), COMPUTATRUM_MODEL_NAME, COMPUTATRUM_INSTANCE_ID, COMPUTATRUM_GPUS, and PORT;
 * - it listens on PORT, on loopback or on all interfaces (computatrum on the same host calls
 *   127.0.0.1:PORT);
 * - `GET /v1/models`: its 200 is readiness; it lists one model, whose id is COMPUTATRUM_MODEL_NAME;
 * - `POST /v1/chat/completions`: non-streaming, answered with `usage` {prompt_tokens,
 *   completion_tokens, total_tokens}; and streaming (`stream: true`): server-sent events, one
 *   `data: <chat.completion.chunk JSON>` line each, ending with `data: [DONE]`, the last chunk before
 *   it holding `usage` (and no choices) when `stream_options.include_usage` is true;
 * - a request whose client disconnects stops generating;
 * - busy: a request beyond what the instance takes on at once is answered 429 with OpenAI's error
 *   JSON `{"error":{"message","type","code"}}`, and the caller retries later (an instance that
 *   queues requests instead also meets this);
 * - SIGTERM: it stops taking requests, lets those in flight finish for a few seconds at most, ends the
 *   rest, and exits 0, all within INSTANCE_STOP_SECONDS.
 * Off-the-shelf servers are fitted to it by their flags, e.g. `vllm serve "$COMPUTATRUM_MODEL_DIR"
 * --served-model-name "$COMPUTATRUM_MODEL_NAME" --port "$PORT"`, or `llama-server -m
 * "$COMPUTATRUM_MODEL_DIR/<file>.gguf" --alias "$COMPUTATRUM_MODEL_NAME" --port "$PORT"`.
 */
export const INSTANCE_ENV = {
  modelDir: 'COMPUTATRUM_MODEL_DIR',
  modelName: 'COMPUTATRUM_MODEL_NAME',
  instanceId: 'COMPUTATRUM_INSTANCE_ID',
  gpus: 'COMPUTATRUM_GPUS',
  port: 'PORT',
} as const;

/** The instance contract's readiness probe: 200 once the model is loaded and requests are taken. */
export const INSTANCE_READY_PATH = '/v1/models';

/** How long an instance may take to exit after SIGTERM; past it, a runner may kill it outright. */
export const INSTANCE_STOP_SECONDS = 10;

export const CHECKPOINT_FOLDER = /^checkpoint-(\d{8})$/;
export const checkpointFolderName = (step: number): string => `checkpoint-${String(step).padStart(8, '0')}`;

export type RunnerKind = 'local' | 'kubernetes';

export interface TrainingJobSpec {
  runId: string;
  /** The base checkpoint; absent: the trainer starts from scratch. */
  base?: { repo: string; reference: string; digest: string };
  /** Feedback datasets to learn from (COMPUTATRUM_DATASET_DIRS), by digest. */
  datasets?: Array<{ repo: string; digest: string }>;
  output: { repo: string; branch: string };
  /** local: the trainer's argv; kubernetes: the container's command (the image's entrypoint when absent). */
  command?: string[];
  /** kubernetes: the container image. */
  image?: string;
  gpus: number;
  gpuType?: string;
  /** The cost cap expressed in GPU-seconds: the runner stops the job when usage reaches it. */
  maxGpuSeconds: number;
  /** Wall-clock limit of the whole run, from its first start. */
  maxDurationSeconds: number;
  env?: Record<string, string>;
}

/** What a runner reports while a job runs; also the state a later attempt resumes from. */
export interface TrainingProgress {
  /** GPU-seconds used so far, across all attempts (whole seconds × GPUs, rounded up per attempt). */
  gpuSeconds: number;
  step?: number;
  /** The newest complete checkpoint folder's name. */
  lastCheckpoint?: string;
  loss?: number;
  /** The step the newest attempt's trainer resumed from (its `resumed` event). */
  resumedFromStep?: number;
  /** Attempts started so far (1 on the first). */
  attempt?: number;
  /** Runner-specific state carried between attempts (e.g. which Kubernetes Job holds the usage already counted). */
  runner?: Record<string, unknown>;
}

export type TrainingOutput =
  /** A folder on this host holding the final checkpoint (local runner). */
  | { kind: 'folder'; path: string }
  /** A manifest the job pushed to the store itself (kubernetes runner: the pod pushes `<repo>:run-<id>`). */
  | { kind: 'store'; repo: string; reference: string };

export type TrainingOutcome =
  | { state: 'succeeded'; progress: TrainingProgress; output: TrainingOutput; metrics: Record<string, number> }
  /** Stopped by the runner: the cost cap or the maximum duration was reached, or the run was cancelled. */
  | { state: 'cost-cap' | 'deadline' | 'cancelled'; progress: TrainingProgress; output?: TrainingOutput };

export interface RunnerContext {
  /** Progress to record (heartbeat + run row); call as often as progress changes, it is throttled by the caller. */
  report(progress: TrainingProgress): void;
  /** Aborted when the run is cancelled or the worker shuts down: stop the job, then resolve with state 'cancelled'. */
  signal: AbortSignal;
  log: Logger;
  /** Progress of the previous attempt (from its last heartbeat); undefined on the first attempt. */
  resumeFrom?: TrainingProgress;
}

export interface TrainingRunner {
  readonly kind: RunnerKind;
  /** Runs the job to an outcome. Throws PreemptedError (retry from the last checkpoint) or TrainerFailedError. */
  run(spec: TrainingJobSpec, context: RunnerContext): Promise<TrainingOutcome>;
}

/** The machine or the process went away: retried from the last checkpoint, up to the run's limit. */
export class PreemptedError extends Error {
  override name = 'PreemptedError';
  constructor(
    message: string,
    readonly progress: TrainingProgress,
  ) {
    super(message);
  }
}

/** The trainer itself failed (non-zero exit, bad image, failed Job): retrying would fail again. */
export class TrainerFailedError extends Error {
  override name = 'TrainerFailedError';
  constructor(
    message: string,
    readonly progress: TrainingProgress,
  ) {
    super(message);
  }
}

/** An instance exited, or never became ready, while starting (any runner); the process has been stopped. */
export class InstanceFailedError extends Error {
  override name = 'InstanceFailedError';
  constructor(
    message: string,
    readonly logTail: string,
  ) {
    super(
      logTail ? `${message}; the instance's log ends with:\n${logTail}` : `${message}; the instance's log is empty`,
    );
  }
}
