// The local runner: the trainer as a child process on this host (the embedded default). Each run
// has a folder `<runs>/<id>/` with `base/` (the base checkpoint's files), `datasets/<n>/` (the
// feedback datasets', COMPUTATRUM_DATASET_DIRS), `output/` (the trainer's
// checkpoints, kept across attempts so a retry resumes) and `trainer.pid`. A trainer that outlived
// the worker which started it (the worker was killed) is stopped by the next attempt, which resumes.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  CHECKPOINT_FOLDER,
  PreemptedError,
  type RunnerContext,
  TRAINER_ENV,
  TrainerFailedError,
  type TrainingJobSpec,
  type TrainingOutcome,
  type TrainingProgress,
  type TrainingRunner,
} from './types';

export interface LocalRunnerOptions {
  /** Where run folders live (`<data>/runs`). */
  runsDir: string;
  /** The trainer's argv when a run names none (the tiny trainer in the embedded setup). */
  defaultCommand: string[];
  /** Writes the files of a stored artifact (the base checkpoint, a dataset) into a folder, each verified. */
  fetch(artifact: { repo: string; digest: string }, dir: string): Promise<void>;
  /** How often usage is measured and reported while the trainer runs. */
  tickMs?: number;
  /** How long a stopped trainer gets between SIGTERM and SIGKILL. */
  stopGraceMs?: number;
}

type StopReason = 'cost-cap' | 'deadline' | 'cancelled';

const LOG_TAIL = 20;

/** True when the process with `pid` runs the command line recorded for it (pids get reused). */
async function stillRunning(pid: number, commandLine: string): Promise<boolean> {
  try {
    const current = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
    return current === commandLine;
  } catch {
    return false;
  }
}

/** The newest complete checkpoint folder in `output`, if any. */
export async function newestCheckpoint(output: string): Promise<string | undefined> {
  const names = await readdir(output).catch(() => [] as string[]);
  return names
    .filter((name) => CHECKPOINT_FOLDER.test(name))
    .sort()
    .at(-1);
}

export class LocalProcessRunner implements TrainingRunner {
  readonly kind = 'local' as const;

  constructor(private readonly options: LocalRunnerOptions) {}

  runDir(runId: string): string {
    return path.join(this.options.runsDir, runId);
  }

  /** Fetches an artifact into `dir` unless an earlier attempt did: whole or not at all (renamed into place). */
  private async fetchOnce(artifact: { repo: string; digest: string }, dir: string): Promise<void> {
    if (await readdir(dir).catch(() => undefined)) return;
    const partial = `${dir}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(path.dirname(dir), { recursive: true });
    await this.options.fetch(artifact, partial);
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  }

  async run(spec: TrainingJobSpec, context: RunnerContext): Promise<TrainingOutcome> {
    const dir = this.runDir(spec.runId);
    const baseDir = path.join(dir, 'base');
    const outputDir = path.join(dir, 'output');
    await mkdir(outputDir, { recursive: true });
    await this.stopOrphan(dir, context);

    const carried: TrainingProgress = context.resumeFrom ?? { gpuSeconds: 0 };
    const progress: TrainingProgress = {
      ...carried,
      attempt: (carried.attempt ?? 0) + 1,
      lastCheckpoint: (await newestCheckpoint(outputDir)) ?? carried.lastCheckpoint,
    };
    delete progress.resumedFromStep;
    // Wall time of earlier attempts counts against the run's maximum duration.
    const previousElapsed = (carried.runner?.elapsedSeconds as number | undefined) ?? 0;
    const remainingSeconds = spec.maxDurationSeconds - previousElapsed;
    if (progress.gpuSeconds >= spec.maxGpuSeconds) return this.stopped('cost-cap', progress, outputDir);
    if (remainingSeconds <= 0) return this.stopped('deadline', progress, outputDir);

    if (spec.base) await this.fetchOnce(spec.base, baseDir);
    await mkdir(baseDir, { recursive: true });
    const datasetDirs: string[] = [];
    for (const [n, dataset] of (spec.datasets ?? []).entries()) {
      const datasetDir = path.join(dir, 'datasets', String(n));
      await this.fetchOnce(dataset, datasetDir);
      datasetDirs.push(datasetDir);
    }

    const command = spec.command?.length ? spec.command : this.options.defaultCommand;
    const started = Date.now();
    const measure = (): void => {
      const seconds = Math.ceil((Date.now() - started) / 1000);
      progress.gpuSeconds = carried.gpuSeconds + seconds * spec.gpus;
      progress.runner = { elapsedSeconds: previousElapsed + seconds };
    };
    const tail: string[] = [];
    const child = spawn(command[0]!, command.slice(1), {
      cwd: dir,
      // Its own process group, so stopping it reaches whatever it started.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...spec.env,
        [TRAINER_ENV.runId]: spec.runId,
        [TRAINER_ENV.baseDir]: baseDir,
        [TRAINER_ENV.outputDir]: outputDir,
        [TRAINER_ENV.gpus]: String(spec.gpus),
        [TRAINER_ENV.maxSeconds]: String(remainingSeconds),
        ...(datasetDirs.length ? { [TRAINER_ENV.datasetDirs]: datasetDirs.join(path.delimiter) } : {}),
      },
    });
    // Listened to at once: a trainer that fails fast can be gone before the next await returns.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    const outputRead = this.follow(child, progress, tail, context, measure);
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    if (spawned) throw new TrainerFailedError(`cannot start the trainer ${command[0]}: ${spawned.message}`, progress);
    await writeFile(path.join(dir, 'trainer.pid'), JSON.stringify({ pid: child.pid, commandLine: command.join(' ') }));
    context.log.info({ runId: spec.runId, pid: child.pid, attempt: progress.attempt, command }, 'trainer started');

    let stopReason: StopReason | undefined;
    const stop = (reason: StopReason): void => {
      if (stopReason) return;
      stopReason = reason;
      context.log.info({ runId: spec.runId, reason }, 'stopping the trainer');
      this.terminate(child);
    };
    const tick = setInterval(() => {
      measure();
      context.report({ ...progress });
      if (progress.gpuSeconds >= spec.maxGpuSeconds) stop('cost-cap');
    }, this.options.tickMs ?? 1000);
    const deadline = setTimeout(() => stop('deadline'), remainingSeconds * 1000);
    const onAbort = (): void => stop('cancelled');
    context.signal.addEventListener('abort', onAbort);
    if (context.signal.aborted) onAbort();

    const exit = await exited;
    await outputRead; // every line it wrote, before its exit is judged
    clearInterval(tick);
    clearTimeout(deadline);
    context.signal.removeEventListener('abort', onAbort);
    await rm(path.join(dir, 'trainer.pid'), { force: true });
    measure();
    progress.lastCheckpoint = (await newestCheckpoint(outputDir)) ?? progress.lastCheckpoint;
    context.report({ ...progress });
    context.log.info({ runId: spec.runId, ...exit, gpuSeconds: progress.gpuSeconds, stopReason }, 'trainer exited');

    if (stopReason) return this.stopped(stopReason, progress, outputDir);
    if (exit.code === 0) {
      if (!progress.lastCheckpoint)
        throw new TrainerFailedError(
          'the trainer exited 0 without saving a checkpoint folder (checkpoint-<step>) in its output',
          progress,
        );
      const final = path.join(outputDir, progress.lastCheckpoint);
      return {
        state: 'succeeded',
        progress,
        output: { kind: 'folder', path: final },
        metrics: await readMetrics(final),
      };
    }
    if (exit.signal)
      throw new PreemptedError(
        `the trainer was killed by ${exit.signal}; the run resumes from ${progress.lastCheckpoint ?? 'the start'}`,
        progress,
      );
    throw new TrainerFailedError(
      `the trainer exited with code ${exit.code}: ${tail.join(' | ') || 'no output'}`,
      progress,
    );
  }

  private stopped(state: StopReason, progress: TrainingProgress, outputDir: string): TrainingOutcome {
    const output = progress.lastCheckpoint
      ? { kind: 'folder' as const, path: path.join(outputDir, progress.lastCheckpoint) }
      : undefined;
    return { state, progress, ...(output ? { output } : {}) };
  }

  /** Parses the trainer's JSON-line events; every other line goes to the log. Resolves when both streams end. */
  private follow(
    child: ChildProcess,
    progress: TrainingProgress,
    tail: string[],
    context: RunnerContext,
    measure: () => void,
  ): Promise<unknown> {
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > LOG_TAIL) tail.shift();
    };
    const stdout = createInterface({ input: child.stdout! });
    const stderr = createInterface({ input: child.stderr! });
    stdout.on('line', (line) => {
      const event = parseEvent(line);
      if (!event) {
        keep(line);
        context.log.info({ trainer: child.pid }, line);
        return;
      }
      if (typeof event.step === 'number') progress.step = event.step;
      if (typeof event.loss === 'number') progress.loss = event.loss;
      if (event.event === 'resumed' && typeof event.step === 'number') progress.resumedFromStep = event.step;
      // Each progress line is a point of the run's loss curve: reported at once (the caller throttles its writes).
      if (event.event === 'progress' && typeof event.loss === 'number') context.report({ ...progress });
      if (event.event === 'checkpoint' && typeof event.path === 'string' && CHECKPOINT_FOLDER.test(event.path)) {
        progress.lastCheckpoint = event.path;
        measure();
        context.report({ ...progress });
      }
    });
    stderr.on('line', (line) => {
      keep(line);
      context.log.warn({ trainer: child.pid }, line);
    });
    return Promise.all([once(stdout, 'close'), once(stderr, 'close')]);
  }

  private terminate(child: ChildProcess): void {
    const group = -child.pid!;
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(group, name);
      } catch {
        // already gone
      }
    };
    signal('SIGTERM');
    setTimeout(() => signal('SIGKILL'), this.options.stopGraceMs ?? 10_000).unref();
  }

  /** A trainer left running by a worker that died would write into the same output: stop it first. */
  private async stopOrphan(dir: string, context: RunnerContext): Promise<void> {
    const record = await readFile(path.join(dir, 'trainer.pid'), 'utf8').catch(() => undefined);
    if (!record) return;
    const { pid, commandLine } = JSON.parse(record) as { pid: number; commandLine: string };
    if (await stillRunning(pid, commandLine)) {
      context.log.warn({ pid }, 'a trainer from an earlier attempt is still running: stopping it before resuming');
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // the group or the process is gone already
        }
      }
      for (let i = 0; i < 100 && (await stillRunning(pid, commandLine)); i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await rm(path.join(dir, 'trainer.pid'), { force: true });
  }
}

function parseEvent(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === 'object' && value !== null && typeof (value as { event?: unknown }).event === 'string'
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function readMetrics(folder: string): Promise<Record<string, number>> {
  const text = await readFile(path.join(folder, 'metrics.json'), 'utf8').catch(() => undefined);
  if (!text) return {};
  const parsed = JSON.parse(text) as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(parsed).filter(
      (entry): entry is [string, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]),
    ),
  );
}
