// The tiny trainer: a character-level language model trained on the bundled corpus, on the CPU, in
// seconds. It follows the trainer contract in ../types.ts (environment, checkpoint folders, resume,
// stdout JSON lines, exit codes), so it stands in for a real trainer in the local runner and tests.
//   node --require tsx/cjs activities/runners/tiny-trainer/main.ts --steps 300 --save-every 50
// With feedback datasets (COMPUTATRUM_DATASET_DIRS), it fine-tunes its start (usually the base model)
// on the answers they hold (feedback.ts says what it takes from each kind of row): --feedback-share of
// every batch (half by default) is drawn from the feedback, the rest from the corpus, so the model
// learns the answers without forgetting the rest. Datasets holding nothing it can learn from are an
// input error (exit 2): a run asked to learn from feedback that would learn nothing from it is a mistake
// to report, not a checkpoint to publish.
import { existsSync, mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DatasetFormatError, type DatasetFolder, readDatasetFolder } from '../../../store/dataset';
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
import { buildFeedback, describeDropped, type FeedbackSet } from './feedback';
import {
  adamUpdate,
  type Architecture,
  batchPositions,
  evaluationPositions,
  initAdamState,
  initParameters,
  mixSeed,
  Model,
} from './model';

const CONTEXT = 4;
const EMBED = 16;
const HIDDEN = 64;
const PROGRESS_EVERY = 10;
const EVALUATION_POSITIONS = 1024;
/** Share of COMPUTATRUM_MAX_SECONDS after which an extra checkpoint is saved, before the runner stops the run. */
const DEADLINE_CHECKPOINT_AT = 0.9;
/** Mixed into the seed for the generator that draws a batch's feedback positions (apart from the corpus's). */
const FEEDBACK_STREAM = 0xfeedba;

export interface TrainerOptions {
  steps: number;
  saveEvery: number;
  batch: number;
  lr: number;
  seed: number;
  /** With datasets: the share of each batch drawn from the feedback (at least one position), the rest from the corpus. */
  feedbackShare: number;
}

export const DEFAULT_OPTIONS: TrainerOptions = {
  steps: 300,
  saveEvery: 50,
  batch: 32,
  lr: 0.01,
  seed: 0,
  feedbackShare: 0.5,
};

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
        'feedback-share': { type: 'string' },
      },
    }));
  } catch (error) {
    throw new TrainerInputError(
      `${(error as Error).message}; usage: main.ts [--steps N] [--save-every N] [--batch N] [--lr X] [--seed N] [--feedback-share X]`,
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
  const share = values['feedback-share'];
  const feedbackShare = share === undefined ? DEFAULT_OPTIONS.feedbackShare : Number(share);
  if (!(share === undefined || (share.trim() !== '' && feedbackShare > 0 && feedbackShare <= 1))) {
    throw new TrainerInputError(`--feedback-share ${share}: expected a number above 0, at most 1`);
  }
  return {
    steps: integer('steps', values.steps, DEFAULT_OPTIONS.steps, 0),
    saveEvery: integer('save-every', values['save-every'], DEFAULT_OPTIONS.saveEvery, 1),
    batch: integer('batch', values.batch, DEFAULT_OPTIONS.batch, 1),
    lr,
    // Seeds are 32-bit: the generators work on unsigned 32-bit state.
    seed: integer('seed', values.seed, DEFAULT_OPTIONS.seed, 0) >>> 0,
    feedbackShare,
  };
}

function readEnvironment(env: NodeJS.ProcessEnv): {
  outputDir: string;
  baseDir?: string;
  runId: string;
  maxSeconds?: number;
  datasetDirs: string[];
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
  // Empty entries (a trailing delimiter, an empty variable) name no dataset.
  const datasetDirs = (env[TRAINER_ENV.datasetDirs] ?? '').split(path.delimiter).filter((dir) => dir !== '');
  return {
    outputDir: path.resolve(outputDir),
    baseDir,
    runId: env[TRAINER_ENV.runId] ?? '',
    maxSeconds,
    datasetDirs,
  };
}

/** Reads and checks every dataset; a bad one is an input error naming its folder, or its file and line. */
function readDatasets(dirs: string[]): DatasetFolder[] {
  return dirs.map((dir) => {
    try {
      return readDatasetFolder(dir);
    } catch (error) {
      if (error instanceof DatasetFormatError) {
        throw new TrainerInputError(`${TRAINER_ENV.datasetDirs}: ${error.message}`);
      }
      throw error;
    }
  });
}

/** Says what the feedback holds and what is learned from it; throws when there is nothing to learn. */
function describeFeedback(feedback: FeedbackSet, datasets: number, feedbackCount: number, batch: number): void {
  const rows =
    `${feedback.transcriptRows} transcript rows (${feedback.learn.length} answer characters to learn), ` +
    `${feedback.preferenceRows} preference rows (each pushes down the first character where the rejected answer leaves the chosen one)`;
  if (feedback.learn.length === 0 && feedback.unlearn.length === 0) {
    throw new TrainerInputError(
      `${TRAINER_ENV.datasetDirs}: ${datasets === 1 ? 'the dataset holds' : `the ${datasets} datasets hold`} nothing the tiny trainer can learn from: ` +
        `${rows}, ${feedback.emptyTranscriptRows + feedback.samePreferenceRows} rows without characters in its vocabulary ` +
        `or without a difference, ${feedback.labelledRows} labelled rows (not used); to train on the corpus alone, leave ${TRAINER_ENV.datasetDirs} unset`,
    );
  }
  log(
    `feedback from ${datasets} dataset${datasets === 1 ? '' : 's'}: ${rows}; ` +
      `${feedback.labelledRows} labelled rows not used (the tiny trainer learns from transcripts and preferences); ` +
      `${feedbackCount} of each batch's ${batch} positions are feedback, the rest corpus`,
  );
  if (feedback.emptyTranscriptRows > 0 || feedback.samePreferenceRows > 0) {
    log(
      `feedback rows skipped: ${feedback.emptyTranscriptRows} transcript rows whose answer has no character in the vocabulary, ` +
        `${feedback.samePreferenceRows} preference rows whose rejected answer does not differ from the chosen one in the vocabulary`,
    );
  }
  if (feedback.dropped.size > 0) log(`feedback: dropped ${describeDropped(feedback.dropped)}`);
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
  const { outputDir, baseDir, runId, maxSeconds, datasetDirs } = readEnvironment(env);
  const startedAt = performance.now();
  const corpus = loadCorpus();
  const architecture: Architecture = { vocab: corpus.vocab.length, context: CONTEXT, embed: EMBED, hidden: HIDDEN };
  const datasets = readDatasets(datasetDirs);
  const feedback = datasets.length > 0 ? buildFeedback(datasets, corpus.vocab, CONTEXT) : undefined;
  const feedbackCount = feedback
    ? Math.min(options.batch, Math.max(1, Math.round(options.batch * options.feedbackShare)))
    : 0;
  if (feedback) describeFeedback(feedback, datasets.length, feedbackCount, options.batch);

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
  // The feedback sequences follow the corpus in one token array: a batch's positions index into both.
  let tokens = corpus.tokens;
  if (feedback) {
    tokens = new Int32Array(corpus.tokens.length + feedback.tokens.length);
    tokens.set(corpus.tokens);
    tokens.set(feedback.tokens, corpus.tokens.length);
  }
  const feedbackEvaluation = feedback
    ? evaluationPositions(feedback.learn.length, 0, EVALUATION_POSITIONS).map(
        (index) => corpus.tokens.length + feedback.learn[index]!,
      )
    : undefined;
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
    const metrics = {
      step,
      loss,
      tokens: step * options.batch,
      perplexity: Math.exp(loss),
      ...(feedback && feedbackEvaluation
        ? {
            // Mean cross-entropy of the answers to learn (up to EVALUATION_POSITIONS of their characters).
            ...(feedbackEvaluation.length > 0 ? { feedback_loss: model.loss(tokens, feedbackEvaluation, false) } : {}),
            feedback_transcript_rows: feedback.transcriptRows,
            feedback_preference_rows: feedback.preferenceRows,
          }
        : {}),
    };
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
  let feedbackLossSum = 0;
  let feedbackLossCount = 0;
  const corpusCount = options.batch - feedbackCount;
  const feedbackTargets = feedback ? feedback.learn.length + feedback.unlearn.length : 0;
  const positions = new Int32Array(options.batch);
  const unlikely = new Uint8Array(options.batch);
  const losses = new Float64Array(options.batch);
  let lastSaved = newest?.step;
  let deadlineSaved = false;
  while (step < options.steps) {
    if (!feedback) {
      lossSum += model.loss(
        corpus.tokens,
        batchPositions(options.seed, step, options.batch, corpus.tokens.length, CONTEXT),
        true,
      );
    } else {
      // The corpus's share as without feedback (the same generator), then the feedback's from its own generator.
      positions.set(batchPositions(options.seed, step, corpusCount, corpus.tokens.length, CONTEXT));
      const picks = batchPositions(mixSeed(options.seed, FEEDBACK_STREAM), step, feedbackCount, feedbackTargets, 0);
      for (let i = 0; i < feedbackCount; i++) {
        const pick = picks[i]!;
        const learned = pick < feedback.learn.length;
        positions[corpusCount + i] =
          corpus.tokens.length + (learned ? feedback.learn[pick]! : feedback.unlearn[pick - feedback.learn.length]!);
        unlikely[corpusCount + i] = learned ? 0 : 1;
      }
      lossSum += model.loss(tokens, positions, true, { unlikely, losses });
      for (let b = corpusCount; b < options.batch; b++) {
        if (unlikely[b]) continue;
        feedbackLossSum += losses[b]!;
        feedbackLossCount++;
      }
    }
    lossCount++;
    step++;
    adamUpdate(model, optimizer, step, options.lr);

    if (step % PROGRESS_EVERY === 0 || step === options.steps) {
      emit({
        event: 'progress',
        step,
        loss: lossSum / lossCount,
        // loss: the batches' mean training loss (with feedback: corpus, answers and pushed-down characters);
        // feedback_loss: the answers' part alone, going down as they are learned.
        ...(feedbackLossCount > 0 ? { feedback_loss: feedbackLossSum / feedbackLossCount } : {}),
      });
      lossSum = 0;
      lossCount = 0;
      feedbackLossSum = 0;
      feedbackLossCount = 0;
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
