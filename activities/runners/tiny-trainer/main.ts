// The tiny trainer: a character-level language model trained on the bundled corpus, on the CPU, in
// seconds. It follows the trainer contract in ../types.ts (environment, checkpoint folders, resume,
// stdout JSON lines, exit codes), so it stands in for a real trainer in the local runner and tests.
//   node --require tsx/cjs activities/runners/tiny-trainer/main.ts --steps 300 --save-every 50
import { existsSync, mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { TRAINER_ENV } from '../types';
import {
  listCheckpoints,
  loadCorpus,
  loadModel,
  loadOptimizer,
  METRICS_FILE,
  MODEL_FILE,
  MODEL_FORMAT,
  OPTIMIZER_FILE,
  removeIncompleteCheckpoints,
  saveCheckpoint,
  TrainerInputError,
} from './checkpoints';
import {
  adamUpdate,
  type Architecture,
  batchPositions,
  evaluationPositions,
  initAdamState,
  initParameters,
  Model,
} from './model';

const CONTEXT = 4;
const EMBED = 16;
const HIDDEN = 64;
const PROGRESS_EVERY = 10;
const EVALUATION_POSITIONS = 1024;
/** Share of COMPUTATRUM_MAX_SECONDS after which an extra checkpoint is saved, before the runner stops the run. */
const DEADLINE_CHECKPOINT_AT = 0.9;

export interface TrainerOptions {
  steps: number;
  saveEvery: number;
  batch: number;
  lr: number;
  seed: number;
}

export const DEFAULT_OPTIONS: TrainerOptions = { steps: 300, saveEvery: 50, batch: 32, lr: 0.01, seed: 0 };

function parseOptions(argv: string[]): TrainerOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        steps: { type: 'string' },
        'save-every': { type: 'string' },
        batch: { type: 'string' },
        lr: { type: 'string' },
        seed: { type: 'string' },
      },
    }));
  } catch (error) {
    throw new TrainerInputError(
      `${(error as Error).message}; usage: main.ts [--steps N] [--save-every N] [--batch N] [--lr X] [--seed N]`,
    );
  }
  const integer = (flag: string, text: string | undefined, fallback: number, min: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min)
      throw new TrainerInputError(`--${flag} ${text}: expected an integer >= ${min}`);
    return value;
  };
  const lr = values.lr === undefined ? DEFAULT_OPTIONS.lr : Number(values.lr);
  if (!(Number.isFinite(lr) && lr > 0)) throw new TrainerInputError(`--lr ${values.lr}: expected a positive number`);
  return {
    steps: integer('steps', values.steps, DEFAULT_OPTIONS.steps, 0),
    saveEvery: integer('save-every', values['save-every'], DEFAULT_OPTIONS.saveEvery, 1),
    batch: integer('batch', values.batch, DEFAULT_OPTIONS.batch, 1),
    lr,
    // Seeds are 32-bit: the generators work on unsigned 32-bit state.
    seed: integer('seed', values.seed, DEFAULT_OPTIONS.seed, 0) >>> 0,
  };
}

function readEnvironment(env: NodeJS.ProcessEnv): {
  outputDir: string;
  baseDir?: string;
  runId: string;
  maxSeconds?: number;
} {
  const outputDir = env[TRAINER_ENV.outputDir];
  if (!outputDir)
    throw new TrainerInputError(`${TRAINER_ENV.outputDir} is not set: the trainer needs a folder for its checkpoints`);
  const maxText = env[TRAINER_ENV.maxSeconds];
  const maxSeconds = maxText ? Number(maxText) : undefined;
  if (maxSeconds !== undefined && !(Number.isFinite(maxSeconds) && maxSeconds > 0)) {
    throw new TrainerInputError(`${TRAINER_ENV.maxSeconds}=${maxText}: expected a positive number of seconds`);
  }
  const baseDir = env[TRAINER_ENV.baseDir] || undefined;
  if (baseDir !== undefined && !existsSync(baseDir))
    throw new TrainerInputError(`${TRAINER_ENV.baseDir}=${baseDir} does not exist`);
  return { outputDir: path.resolve(outputDir), baseDir, runId: env[TRAINER_ENV.runId] ?? '', maxSeconds };
}

const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};
const log = (line: string): void => {
  process.stdout.write(`tiny-trainer: ${line}\n`);
};

/** Trains to --steps and resolves with the exit code; a stop signal ends the process by that signal. */
export async function train(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const options = parseOptions(argv);
  const { outputDir, baseDir, runId, maxSeconds } = readEnvironment(env);
  const startedAt = performance.now();
  const corpus = loadCorpus();
  const architecture: Architecture = { vocab: corpus.vocab.length, context: CONTEXT, embed: EMBED, hidden: HIDDEN };

  mkdirSync(outputDir, { recursive: true });
  const stale = removeIncompleteCheckpoints(outputDir);
  if (stale.length > 0) log(`removed incomplete checkpoint folders: ${stale.join(', ')}`);

  let step = 0;
  let parameters;
  let optimizer;
  const newest = listCheckpoints(outputDir).at(-1);
  if (newest) {
    const folder = path.join(outputDir, newest.name);
    parameters = loadModel(
      path.join(folder, MODEL_FILE),
      architecture,
      corpus.vocab,
      `checkpoint ${newest.name}`,
    ).parameters;
    optimizer = loadOptimizer(path.join(folder, OPTIMIZER_FILE), parameters, `checkpoint ${newest.name}`);
    step = newest.step;
    emit({ event: 'resumed', step });
    if (step >= options.steps) {
      log(`${newest.name} is at step ${step}, --steps is ${options.steps}: nothing to do`);
      return 0;
    }
  } else if (baseDir && existsSync(path.join(baseDir, MODEL_FILE))) {
    parameters = loadModel(path.join(baseDir, MODEL_FILE), architecture, corpus.vocab, 'base model').parameters;
    log(`starting from the base model in ${baseDir}`);
  } else {
    parameters = initParameters(architecture, options.seed);
    log(`starting from scratch (seed ${options.seed})`);
  }
  optimizer ??= initAdamState(parameters);

  const model = new Model(architecture, parameters);
  const evaluation = evaluationPositions(corpus.tokens.length, CONTEXT, EVALUATION_POSITIONS);
  const metadata = {
    format: MODEL_FORMAT,
    vocab: JSON.stringify(corpus.vocab),
    run_id: runId,
    context: String(CONTEXT),
    embed: String(EMBED),
    hidden: String(HIDDEN),
    seed: String(options.seed),
  };
  const save = (): void => {
    const loss = model.loss(corpus.tokens, evaluation, false);
    const metrics = { step, loss, tokens: step * options.batch, perplexity: Math.exp(loss) };
    const name = saveCheckpoint(outputDir, architecture, { step, parameters, optimizer, metrics, metadata });
    emit({ event: 'checkpoint', step, path: name });
  };

  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    stopSignal = signal;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  log(
    `vocabulary ${corpus.vocab.length}, ${corpus.tokens.length} characters, training steps ${step + 1}..${options.steps}, batch ${options.batch}`,
  );
  let lossSum = 0;
  let lossCount = 0;
  let lastSaved = newest?.step;
  let deadlineSaved = false;
  while (step < options.steps) {
    const positions = batchPositions(options.seed, step, options.batch, corpus.tokens.length, CONTEXT);
    lossSum += model.loss(corpus.tokens, positions, true);
    lossCount++;
    step++;
    adamUpdate(model, optimizer, step, options.lr);

    if (step % PROGRESS_EVERY === 0 || step === options.steps) {
      emit({ event: 'progress', step, loss: lossSum / lossCount });
      lossSum = 0;
      lossCount = 0;
    }
    const nearDeadline: boolean =
      maxSeconds !== undefined &&
      !deadlineSaved &&
      performance.now() - startedAt >= maxSeconds * 1000 * DEADLINE_CHECKPOINT_AT;
    if (step % options.saveEvery === 0 || step === options.steps || nearDeadline) {
      save();
      lastSaved = step;
      deadlineSaved ||= nearDeadline;
    }
    // Checkpoints are written synchronously, so a signal is only ever seen between whole steps.
    await yieldToEventLoop();
    if (stopSignal) {
      log(`${stopSignal} at step ${step}; newest checkpoint: step ${lastSaved ?? 'none'}`);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      // Die by the signal itself: the contract reads that as preempted, an exit code as a trainer bug.
      process.kill(process.pid, stopSignal);
      // Not reached once the signal lands; if it never does, still never exit 0 (that would mean done).
      await new Promise((resolve) => setTimeout(resolve, 5000));
      return 128 + constants.signals[stopSignal];
    }
  }
  if (lastSaved !== step) {
    save();
  }
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log(
    `done at step ${step} in ${((performance.now() - startedAt) / 1000).toFixed(2)} s; ${METRICS_FILE} holds the final loss`,
  );
  return 0;
}

if (require.main === module) {
  train(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof TrainerInputError) {
        process.stderr.write(`tiny-trainer: ${error.message}\n`);
        process.exitCode = 2;
      } else {
        process.stderr.write(`tiny-trainer: ${(error as Error)?.stack ?? String(error)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
