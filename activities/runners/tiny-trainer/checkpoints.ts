// The tiny trainer's files: the bundled corpus, and checkpoint folders written the way the trainer
// contract (../types.ts) asks: under a temporary name, fsynced, then renamed.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { type F32Tensor, fsyncFolderSync, readSafetensorsSync, writeSafetensorsSync } from '../../../store/safetensors';
import { CHECKPOINT_FOLDER, checkpointFolderName } from '../types';
import { type AdamState, type Architecture, type Parameters, PARAMETER_NAMES, parameterShapes } from './model';
import { projectPath } from '../../../runtime/paths';

export const CORPUS_PATH = projectPath('activities', 'runners', 'tiny-trainer', 'corpus.txt');
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const METRICS_FILE = 'metrics.json';
export const MODEL_FORMAT = 'computatrum-tiny-trainer/1';
const TEMPORARY_FOLDER = /^\.tmp-checkpoint-\d{8}-\d+$/;

/** A bad flag, environment, base or checkpoint: reported in one line, exit code 2. */
export class TrainerInputError extends Error {
  override name = 'TrainerInputError';
}

export interface Corpus {
  /** The characters, sorted; a character's index is its token id. */
  vocab: string[];
  tokens: Int32Array;
}

export function loadCorpus(file = CORPUS_PATH): Corpus {
  // Line endings normalised: a checkout with CRLF must not change the vocabulary.
  const characters = [...readFileSync(file, 'utf8').replace(/\r\n?/g, '\n')];
  const vocab = [...new Set(characters)].sort();
  const ids = new Map(vocab.map((character, id) => [character, id]));
  return { vocab, tokens: Int32Array.from(characters, (character) => ids.get(character)!) };
}

function writeFileDurably(file: string, text: string): void {
  const fd = openSync(file, 'wx');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The complete checkpoint folders in `outputDir`, oldest step first. */
export function listCheckpoints(outputDir: string): { step: number; name: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir, { withFileTypes: true })
    .flatMap((entry) => {
      const match = entry.isDirectory() ? CHECKPOINT_FOLDER.exec(entry.name) : null;
      return match ? [{ step: Number(match[1]), name: entry.name }] : [];
    })
    .sort((a, b) => a.step - b.step);
}

/** Removes the temporary folders a killed trainer left behind; returns their names. */
export function removeIncompleteCheckpoints(outputDir: string): string[] {
  const stale = readdirSync(outputDir).filter((name) => TEMPORARY_FOLDER.test(name));
  for (const name of stale) rmSync(path.join(outputDir, name), { recursive: true, force: true });
  return stale;
}

const tensor = (shape: number[], data: Float32Array): F32Tensor => ({ dtype: 'F32', shape, data });

export interface CheckpointContent {
  step: number;
  parameters: Parameters;
  optimizer: AdamState;
  /** `loss` is the corpus's; a trainer with feedback adds its own numbers (feedback_loss, rows used). */
  metrics: { step: number; loss: number; tokens: number; perplexity: number; [name: string]: number };
  metadata: Record<string, string>;
}

/** Writes `checkpoint-<step>` atomically and returns its folder name; an existing folder is kept as is. */
export function saveCheckpoint(outputDir: string, architecture: Architecture, content: CheckpointContent): string {
  const name = checkpointFolderName(content.step);
  const folder = path.join(outputDir, name);
  if (existsSync(folder)) return name;
  const temporary = path.join(outputDir, `.tmp-${name}-${process.pid}`);
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(temporary);
  try {
    const shapes = parameterShapes(architecture);
    const model = Object.fromEntries(PARAMETER_NAMES.map((p) => [p, tensor(shapes[p], content.parameters[p])]));
    writeSafetensorsSync(path.join(temporary, MODEL_FILE), model, { ...content.metadata, step: String(content.step) });
    const optimizer = Object.fromEntries(
      PARAMETER_NAMES.flatMap((p) => [`m.${p}`, `v.${p}`] as const).map((key) => [
        key,
        tensor(shapes[key.slice(2) as keyof typeof shapes], content.optimizer[key]),
      ]),
    );
    writeSafetensorsSync(path.join(temporary, OPTIMIZER_FILE), optimizer, {
      optimizer: 'adam',
      step: String(content.step),
    });
    writeFileDurably(path.join(temporary, METRICS_FILE), `${JSON.stringify(content.metrics)}\n`);
    fsyncFolderSync(temporary);
    renameSync(temporary, folder);
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    throw error;
  }
  fsyncFolderSync(outputDir);
  return name;
}

/** Reads a model.safetensors and checks that it fits this trainer's architecture and vocabulary. */
export function loadModel(
  file: string,
  architecture: Architecture,
  vocab: string[],
  what: string,
): { parameters: Parameters; metadata: Record<string, string> } {
  let loaded;
  try {
    loaded = readSafetensorsSync(file);
  } catch (error) {
    throw new TrainerInputError(`${what} cannot be read: ${(error as Error).message}`);
  }
  const { tensors, metadata } = loaded;
  if (metadata.vocab !== undefined && metadata.vocab !== JSON.stringify(vocab)) {
    throw new TrainerInputError(
      `${what} ${file} was trained on another vocabulary (${metadata.vocab}); this trainer's is ${JSON.stringify(vocab)}`,
    );
  }
  const shapes = parameterShapes(architecture);
  const problems: string[] = [];
  for (const name of PARAMETER_NAMES) {
    const found = tensors[name];
    if (!found) problems.push(`tensor ${name} is missing`);
    else if (JSON.stringify(found.shape) !== JSON.stringify(shapes[name])) {
      problems.push(
        `tensor ${name} has shape ${JSON.stringify(found.shape)}, expected ${JSON.stringify(shapes[name])}`,
      );
    }
  }
  for (const name of Object.keys(tensors)) {
    if (!(PARAMETER_NAMES as readonly string[]).includes(name)) problems.push(`unexpected tensor ${name}`);
  }
  if (problems.length > 0) {
    throw new TrainerInputError(
      `${what} ${file} does not fit this trainer (vocabulary ${architecture.vocab}, context ${architecture.context}, ` +
        `embedding ${architecture.embed}, hidden ${architecture.hidden}): ${problems.join('; ')}`,
    );
  }
  const parameters = Object.fromEntries(PARAMETER_NAMES.map((name) => [name, tensors[name]!.data])) as Parameters;
  return { parameters, metadata };
}

export function loadOptimizer(file: string, parameters: Parameters, what: string): AdamState {
  let tensors;
  try {
    tensors = readSafetensorsSync(file).tensors;
  } catch (error) {
    throw new TrainerInputError(`${what} cannot be read: ${(error as Error).message}`);
  }
  const state: Partial<AdamState> = {};
  for (const name of PARAMETER_NAMES) {
    for (const key of [`m.${name}`, `v.${name}`] as const) {
      const found = tensors[key];
      if (!found || found.data.length !== parameters[name].length) {
        throw new TrainerInputError(`${what} ${file}: optimizer tensor ${key} is missing or has the wrong size`);
      }
      state[key] = found.data;
    }
  }
  return state as AdamState;
}
