// The local runner on its own, with real child processes: the tiny trainer and small shell trainers.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { LocalProcessRunner } from '../../activities/runners/local';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import {
  PreemptedError,
  TrainerFailedError,
  type RunnerContext,
  type TrainingJobSpec,
  type TrainingProgress,
} from '../../activities/runners/types';
import { eventually } from '../helpers/eventually';
import { isAlive } from '../helpers/processes';

let runsDir: string;
let fetched: string[];

beforeEach(() => {
  runsDir = mkdtempSync(path.join(tmpdir(), 'local-runner-'));
  fetched = [];
});

function runner(): LocalProcessRunner {
  return new LocalProcessRunner({
    runsDir,
    defaultCommand: tinyTrainerCommand(['--steps', '100', '--save-every', '50']),
    fetch: async (artifact, dir) => {
      fetched.push(artifact.digest);
      mkdirSync(dir, { recursive: true });
    },
    tickMs: 100,
    stopGraceMs: 2000,
  });
}

function spec(overrides: Partial<TrainingJobSpec> = {}): TrainingJobSpec {
  return {
    runId: 'run-1',
    output: { repo: 'germline/x', branch: 'main' },
    gpus: 1,
    maxGpuSeconds: 10_000,
    maxDurationSeconds: 600,
    ...overrides,
  };
}

function context(
  resumeFrom?: TrainingProgress,
  signal = new AbortController().signal,
): RunnerContext & { reports: TrainingProgress[] } {
  const reports: TrainingProgress[] = [];
  return {
    reports,
    report: (p) => reports.push(p),
    signal,
    log: pino({ level: 'silent' }),
    ...(resumeFrom ? { resumeFrom } : {}),
  };
}

/** A trainer as a shell script, to script exactly what a trainer does. */
function shell(script: string): string[] {
  return ['sh', '-c', script];
}

test('the default trainer runs to success: progress, checkpoints and metrics are reported, the base is fetched once', async () => {
  const ctx = context();
  const outcome = await runner().run(
    spec({ base: { repo: 'germline/x', reference: 'main', digest: 'sha256:abc' } }),
    ctx,
  );
  expect(outcome).toMatchObject({
    state: 'succeeded',
    metrics: { step: 100, loss: expect.any(Number) },
    progress: { step: 100, lastCheckpoint: 'checkpoint-00000100', attempt: 1 },
  });
  expect(outcome.state === 'succeeded' && outcome.output).toEqual({
    kind: 'folder',
    path: path.join(runsDir, 'run-1', 'output', 'checkpoint-00000100'),
  });
  expect(ctx.reports.map((r) => r.lastCheckpoint)).toContain('checkpoint-00000050');
  expect(outcome.progress.gpuSeconds).toBeGreaterThanOrEqual(1);
  expect(fetched).toEqual(['sha256:abc']);
  // A later attempt finds the base in place and resumes past the end at once.
  const again = await runner().run(
    spec({ base: { repo: 'germline/x', reference: 'main', digest: 'sha256:abc' } }),
    context(outcome.progress),
  );
  expect(again.state).toBe('succeeded');
  expect(again.progress).toMatchObject({ attempt: 2, resumedFromStep: 100 });
  expect(again.progress.gpuSeconds).toBeGreaterThan(outcome.progress.gpuSeconds);
  expect(fetched).toHaveLength(1);
});

test('a trainer left running by a dead worker is stopped before the run resumes from its checkpoint', async () => {
  const runDir = path.join(runsDir, 'run-1');
  const output = path.join(runDir, 'output');
  mkdirSync(path.join(runDir, 'base'), { recursive: true });
  mkdirSync(output);
  // The orphan: a trainer started by a worker that was killed, still writing into the run's output.
  const command = tinyTrainerCommand(['--steps', '1000000', '--save-every', '100']);
  const orphan = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, COMPUTATRUM_OUTPUT_DIR: output, COMPUTATRUM_BASE_DIR: path.join(runDir, 'base') },
    stdio: 'ignore',
    detached: true,
  });
  writeFileSync(path.join(runDir, 'trainer.pid'), JSON.stringify({ pid: orphan.pid, commandLine: command.join(' ') }));
  await eventually(
    async () => (existsSync(path.join(output, 'checkpoint-00000100')) ? true : undefined),
    'the orphan to save a checkpoint',
  );

  const outcome = await runner().run(
    spec({ command: tinyTrainerCommand(['--steps', '300', '--save-every', '100']) }),
    context({ gpuSeconds: 7, attempt: 1 }),
  );
  expect(isAlive(orphan.pid!)).toBe(false);
  expect(outcome).toMatchObject({ state: 'succeeded', progress: { attempt: 2 } });
  expect(outcome.progress.resumedFromStep).toBeGreaterThanOrEqual(100);
  expect(outcome.progress.step).toBeGreaterThanOrEqual(300);
  expect(outcome.progress.gpuSeconds).toBeGreaterThan(7);
});

test('a trainer killed by a signal is a preemption, with the progress to resume from', async () => {
  const error = await runner()
    .run(
      spec({
        command: shell(
          'mkdir -p "$COMPUTATRUM_OUTPUT_DIR/checkpoint-00000007"; echo \'{"event":"checkpoint","step":7,"path":"checkpoint-00000007"}\'; kill -9 $$',
        ),
      }),
      context(),
    )
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(PreemptedError);
  expect((error as PreemptedError).message).toContain('killed by SIGKILL; the run resumes from checkpoint-00000007');
  expect((error as PreemptedError).progress).toMatchObject({ step: 7, lastCheckpoint: 'checkpoint-00000007' });
});

test.each([
  [
    shell('echo "loading weights"; echo "CUDA error: out of memory" >&2; exit 1'),
    'the trainer exited with code 1: loading weights | CUDA error: out of memory',
  ],
  [shell('exit 0'), 'the trainer exited 0 without saving a checkpoint folder'],
  [['/nonexistent/trainer'], 'cannot start the trainer /nonexistent/trainer'],
])('a trainer bug fails the run with what the trainer said: %j', async (command, message) => {
  const error = await runner()
    .run(spec({ command }), context())
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TrainerFailedError);
  expect((error as Error).message).toContain(message);
});

test('the cost cap stops the trainer and keeps its last checkpoint as the partial output', async () => {
  const outcome = await runner().run(
    spec({ command: tinyTrainerCommand(['--steps', '1000000', '--save-every', '100']), maxGpuSeconds: 2 }),
    context(),
  );
  expect(outcome.state).toBe('cost-cap');
  expect(outcome.progress.gpuSeconds).toBeGreaterThanOrEqual(2);
  expect(outcome.output).toEqual(
    outcome.progress.lastCheckpoint
      ? { kind: 'folder', path: path.join(runsDir, 'run-1', 'output', outcome.progress.lastCheckpoint) }
      : undefined,
  );
});

test('the maximum duration stops the trainer, counting the wall time of earlier attempts', async () => {
  const outcome = await runner().run(
    spec({ command: shell('sleep 30'), maxDurationSeconds: 3 }),
    context({ gpuSeconds: 2, attempt: 1, runner: { elapsedSeconds: 2 } }),
  );
  expect(outcome.state).toBe('deadline');
  expect(outcome.progress.runner?.elapsedSeconds).toBeGreaterThanOrEqual(3);
});

test('an abort (cancel) stops the whole process group at once', async () => {
  const controller = new AbortController();
  const ctx = context(undefined, controller.signal);
  const running = runner().run(spec({ command: shell('sleep 60 & sleep 60; wait') }), ctx);
  const pidFile = path.join(runsDir, 'run-1', 'trainer.pid');
  await eventually(async () => (existsSync(pidFile) ? true : undefined), 'the trainer to start');
  controller.abort();
  const outcome = await running;
  expect(outcome.state).toBe('cancelled');
  expect(existsSync(pidFile)).toBe(false);
});
