// `computatrum-train`: the entrypoint of the reference trainer image, run by the training Job
// (deploy/training-job.yaml). It does in the pod what the local runner does around a trainer on its
// host: pulls the run's base (COMPUTATRUM_BASE_REF) and feedback datasets (COMPUTATRUM_DATASET_REFS)
// from the registry, digest-verified, runs the trainer (the tiny trainer, or the argv after `--`) under
// the trainer contract (../types.ts), and, when it exits 0, pushes its newest checkpoint folder to
// COMPUTATRUM_OUTPUT_REF naming the base as its parent: the worker moves the run's branch only then.
//   computatrum-train [-- <trainer argv>]
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../runtime/config';
import { ANNOTATION, publishCheckpoint } from '../../../store/checkpoint';
import { openStore } from '../../../store';
import { materializeCheckpoint } from '../../../store/materialize';
import { parseReference } from '../../../store/names';
import type { CheckpointStore } from '../../../store/types';
import { newestCheckpoint } from '../local';
import { tinyTrainerCommand } from '../tiny-trainer';
import { TRAINER_ENV } from '../types';
import { KUBERNETES_TRAINER_ENV } from './job';

/** Where the datasets are pulled to when COMPUTATRUM_DATASETS_DIR does not say. */
const DATASETS_DIR_ENV = 'COMPUTATRUM_DATASETS_DIR';

/** A pod whose settings cannot work: exit 2, which the Job's FailJob rule does not retry. */
export class TrainerPodError extends Error {
  override name = 'TrainerPodError';
}

const log = (line: string): void => void process.stderr.write(`computatrum-train: ${line}\n`);

/** Runs the pod's whole job; resolves to its exit code. */
export async function runTrainerPod(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const separator = argv.indexOf('--');
  if (argv.length > 0 && separator !== 0) {
    throw new TrainerPodError(`unexpected arguments ${argv.join(' ')}: usage: computatrum-train [-- <trainer argv>]`);
  }
  const trainer = separator === 0 && argv.length > 1 ? argv.slice(1) : tinyTrainerCommand();
  const outputDir = required(env, TRAINER_ENV.outputDir);
  const baseDir = required(env, TRAINER_ENV.baseDir);
  const output = parseReference(required(env, KUBERNETES_TRAINER_ENV.outputRef));
  const base = env[KUBERNETES_TRAINER_ENV.baseRef] ? parseReference(env[KUBERNETES_TRAINER_ENV.baseRef]!) : undefined;
  const datasets = (env[KUBERNETES_TRAINER_ENV.datasetRefs] ?? '').split(/\s+/).filter(Boolean).map(parseReference);
  const store = await openStore(storeSettings(env));

  // An empty base folder is the contract's "from scratch"; the Job mounts both, a plain process may not have them.
  await mkdir(outputDir, { recursive: true });
  await mkdir(baseDir, { recursive: true });
  if (base) await pull(store, base, baseDir);
  const datasetsRoot = env[DATASETS_DIR_ENV] ?? path.join(tmpdir(), 'computatrum-datasets');
  const datasetDirs: string[] = [];
  for (const [index, dataset] of datasets.entries()) {
    const dir = path.join(datasetsRoot, String(index));
    await pull(store, dataset, dir);
    datasetDirs.push(dir);
  }

  const code = await runTrainer(trainer, {
    ...env,
    ...(datasetDirs.length ? { [TRAINER_ENV.datasetDirs]: datasetDirs.join(path.delimiter) } : {}),
  });
  if (code !== 0) return code;

  const newest = await newestCheckpoint(outputDir);
  if (!newest) {
    log(`the trainer exited 0 without saving a checkpoint folder (checkpoint-<step>) in ${outputDir}`);
    return 1;
  }
  const published = await publishCheckpoint(store, output.repo, path.join(outputDir, newest), {
    tag: output.reference,
    ...(base ? { parent: base.reference } : {}),
    ...(datasets.length ? { datasets: datasets.map((d) => `${d.repo}@${d.reference}`) } : {}),
    ...(env[TRAINER_ENV.runId] ? { annotations: { [ANNOTATION.trainingRun]: env[TRAINER_ENV.runId]! } } : {}),
  });
  log(
    `pushed ${newest} to ${output.repo}:${output.reference} (${published.digest}, ${published.written} bytes written)`,
  );
  return 0;
}

/** The daemon's store settings; a pod given only COMPUTATRUM_REGISTRY_URL (the runner's way) uses that registry. */
function storeSettings(env: NodeJS.ProcessEnv) {
  const registry = env[KUBERNETES_TRAINER_ENV.registryUrl];
  return loadConfig({ ...env, ...(registry && !env.COMPUTATRUM_STORE ? { COMPUTATRUM_STORE: 'registry' } : {}) }).store;
}

async function pull(store: CheckpointStore, ref: { repo: string; reference: string }, dir: string): Promise<void> {
  const { digest, files } = await materializeCheckpoint(store, ref.repo, ref.reference, dir);
  log(`pulled ${ref.repo}@${digest} (${files} files) into ${dir}`);
}

/** The trainer as a child with this process's output; a SIGTERM (preemption) is passed on to it. */
function runTrainer(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [program, ...args] = argv;
  const child = spawn(program!, args, { env, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  return new Promise((resolve, reject) => {
    child.once('error', (error) =>
      reject(new TrainerPodError(`cannot start the trainer ${program}: ${error.message}`)),
    );
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward);
      process.off('SIGINT', forward);
      // Killed by a signal: the shell's 128+n, so the pod reads as stopped rather than as a trainer bug.
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new TrainerPodError(`${name} is not set: the training Job template and the runner set it`);
  return value;
}
