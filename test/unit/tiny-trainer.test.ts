// The tiny trainer as a runner sees it: a child process that follows the trainer contract
// (checkpoint folders, JSON-lines events, resume, exit codes) and really learns.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { CHECKPOINT_FOLDER, checkpointFolderName, TRAINER_ENV } from '../../activities/runners/types';
import { readSafetensorsSync, writeSafetensorsSync } from '../../store/safetensors';

type TrainerEvent =
  | { event: 'progress'; step: number; loss: number }
  | { event: 'checkpoint'; step: number; path: string }
  | { event: 'resumed'; step: number };

interface Trainer {
  child: ChildProcess;
  events: TrainerEvent[];
  /** Resolves with the first event matching `predicate` (seen already or later). */
  waitFor(predicate: (event: TrainerEvent) => boolean): Promise<TrainerEvent>;
  exit: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    events: TrainerEvent[];
  }>;
}

const folders: string[] = [];
const folder = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tiny-trainer-'));
  folders.push(dir);
  return dir;
};
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function startTrainer(
  args: string[],
  env: { output?: string; base?: string; runId?: string; maxSeconds?: number },
): Trainer {
  const [command, ...argv] = tinyTrainerCommand(args);
  // The test process's own COMPUTATRUM_* variables must not leak into the trainer.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('COMPUTATRUM_')),
  );
  const child = spawn(command!, argv, {
    cwd: tmpdir(),
    env: {
      ...inherited,
      ...(env.output ? { [TRAINER_ENV.outputDir]: env.output } : {}),
      ...(env.base ? { [TRAINER_ENV.baseDir]: env.base } : {}),
      ...(env.maxSeconds ? { [TRAINER_ENV.maxSeconds]: String(env.maxSeconds) } : {}),
      [TRAINER_ENV.runId]: env.runId ?? 'test-run',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: TrainerEvent[] = [];
  const waiters: { predicate: (event: TrainerEvent) => boolean; resolve: (event: TrainerEvent) => void }[] = [];
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    stdout += `${line}\n`;
    if (!line.startsWith('{')) return;
    const event = JSON.parse(line) as TrainerEvent;
    events.push(event);
    for (const waiter of waiters.filter((w) => w.predicate(event))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  });
  const closed = new Promise<void>((resolve) => lines.on('close', resolve));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  }).then(async (status) => {
    await closed;
    return { ...status, stdout, stderr, events };
  });
  return {
    child,
    events,
    exit,
    waitFor: (predicate) => {
      const seen = events.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ predicate, resolve });
        exit.then(
          (result) =>
            reject(
              new Error(
                `trainer exited (${result.code ?? result.signal}) before the awaited event; stderr: ${result.stderr}`,
              ),
            ),
          reject,
        );
      });
    },
  };
}

const runTrainer = (args: string[], env: Parameters<typeof startTrainer>[1]) => startTrainer(args, env).exit;

const checkpoints = (output: string): string[] => readdirSync(output).filter((name) => CHECKPOINT_FOLDER.test(name));
const metrics = (output: string, step: number) =>
  JSON.parse(readFileSync(path.join(output, checkpointFolderName(step), 'metrics.json'), 'utf8'));
const progressLosses = (events: TrainerEvent[]): number[] =>
  events.flatMap((e) => (e.event === 'progress' ? [e.loss] : []));

/** Every tensor's raw bytes, to compare two checkpoints bit for bit (metadata may differ: run ids). */
function tensorBytes(file: string): Record<string, string> {
  const { tensors } = readSafetensorsSync(file);
  return Object.fromEntries(
    Object.entries(tensors).map(([name, t]) => [
      name,
      `${JSON.stringify(t.shape)}:${Buffer.from(t.data.buffer).toString('base64')}`,
    ]),
  );
}

let scratchOutput: string;
let scratchFirstLoss: number;

test('trains from scratch: checkpoint folders with weights, optimizer state and metrics; the loss goes down', async () => {
  scratchOutput = path.join(folder(), 'output-not-yet-created');
  const result = await runTrainer(['--steps', '120', '--save-every', '40'], {
    output: scratchOutput,
    runId: 'run-scratch',
  });
  expect(result).toMatchObject({ code: 0, signal: null });

  expect(readdirSync(scratchOutput).sort()).toEqual([
    'checkpoint-00000040',
    'checkpoint-00000080',
    'checkpoint-00000120',
  ]);
  for (const name of checkpoints(scratchOutput)) {
    expect(readdirSync(path.join(scratchOutput, name)).sort()).toEqual([
      'metrics.json',
      'model.safetensors',
      'optimizer.safetensors',
    ]);
  }
  expect(result.events.filter((e) => e.event === 'checkpoint')).toEqual(
    [40, 80, 120].map((step) => ({ event: 'checkpoint', step, path: checkpointFolderName(step) })),
  );
  expect(result.events.filter((e) => e.event === 'progress').map((e) => e.step)).toEqual([
    10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120,
  ]);

  const first = metrics(scratchOutput, 40);
  const last = metrics(scratchOutput, 120);
  expect(last).toEqual({ step: 120, loss: expect.any(Number), tokens: 120 * 32, perplexity: expect.any(Number) });
  expect(last.perplexity).toBeCloseTo(Math.exp(last.loss), 10);
  expect(last.loss).toBeLessThan(first.loss - 0.2);
  const losses = progressLosses(result.events);
  scratchFirstLoss = losses[0]!;
  expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.8);

  const { tensors, metadata } = readSafetensorsSync(
    path.join(scratchOutput, 'checkpoint-00000120', 'model.safetensors'),
  );
  expect(metadata).toMatchObject({ step: '120', run_id: 'run-scratch', format: 'computatrum-tiny-trainer/1' });
  const vocab = JSON.parse(metadata.vocab!) as string[];
  expect(vocab).toEqual(expect.arrayContaining(['a', ' ', '\n', '.']));
  expect(tensors.embedding!.shape).toEqual([vocab.length, 16]);
  expect(tensors['output.weight']!.shape).toEqual([64, vocab.length]);
});

test('a base model in COMPUTATRUM_BASE_DIR is where training starts', async () => {
  const base = folder();
  copyFileSync(
    path.join(scratchOutput, 'checkpoint-00000120', 'model.safetensors'),
    path.join(base, 'model.safetensors'),
  );
  writeFileSync(path.join(base, 'metrics.json'), '{}');
  const output = folder();
  const result = await runTrainer(['--steps', '10', '--save-every', '50'], { output, base });
  expect(result).toMatchObject({ code: 0, signal: null });
  expect(result.stdout).toContain(`starting from the base model in ${base}`);
  // Steps count from zero for this run; the first ten steps already start from a trained model.
  expect(checkpoints(output)).toEqual(['checkpoint-00000010']);
  expect(progressLosses(result.events)[0]!).toBeLessThan(scratchFirstLoss - 0.8);
  expect(metrics(output, 10).loss).toBeLessThan(metrics(scratchOutput, 40).loss);
});

test('a run stopped by SIGTERM resumes from its newest checkpoint to bitwise the same weights as an uninterrupted run', async () => {
  const output = folder();
  const interrupted = startTrainer(['--steps', '20000', '--save-every', '25'], { output });
  await interrupted.waitFor((e) => e.event === 'checkpoint');
  interrupted.child.kill('SIGTERM');
  const stopped = await interrupted.exit;
  // Killed by the signal, not an exit code: the contract reads that as preempted.
  expect(stopped).toMatchObject({ code: null, signal: 'SIGTERM' });
  expect(readdirSync(output).every((name) => CHECKPOINT_FOLDER.test(name))).toBe(true);
  const stoppedAt = Math.max(...checkpoints(output).map((name) => Number(CHECKPOINT_FOLDER.exec(name)![1])));
  expect(stoppedAt).toBeLessThan(20000);

  // A folder a killed trainer was still writing: ignored and removed.
  const incomplete = path.join(output, `.tmp-${checkpointFolderName(stoppedAt + 25)}-12345`);
  mkdirSync(incomplete);
  writeFileSync(path.join(incomplete, 'model.safetensors'), 'half written');

  const finalStep = stoppedAt + 30;
  const reference = folder();
  const [resumed, uninterrupted] = await Promise.all([
    runTrainer(['--steps', String(finalStep), '--save-every', '25'], { output }),
    runTrainer(['--steps', String(finalStep), '--save-every', '1000'], { output: reference, runId: 'reference-run' }),
  ]);
  expect(resumed).toMatchObject({ code: 0, signal: null });
  expect(uninterrupted).toMatchObject({ code: 0, signal: null });
  expect(resumed.events[0]).toEqual({ event: 'resumed', step: stoppedAt });
  expect(resumed.events.filter((e) => e.event === 'progress')[0]!.step).toBeGreaterThan(stoppedAt);
  expect(existsSync(incomplete)).toBe(false);

  const final = checkpointFolderName(finalStep);
  expect(checkpoints(reference)).toEqual([final]);
  for (const file of ['model.safetensors', 'optimizer.safetensors']) {
    expect(tensorBytes(path.join(output, final, file))).toEqual(tensorBytes(path.join(reference, final, file)));
  }
  expect(metrics(output, finalStep)).toEqual(metrics(reference, finalStep));

  // Already at --steps: nothing to do, nothing written.
  const again = await runTrainer(['--steps', String(finalStep)], { output });
  expect(again).toMatchObject({ code: 0, signal: null, events: [{ event: 'resumed', step: finalStep }] });
  expect(checkpoints(output).at(-1)).toBe(final);
});

test('near the end of COMPUTATRUM_MAX_SECONDS the trainer saves a checkpoint of its own, and keeps training', async () => {
  const output = folder();
  const trainer = startTrainer(['--steps', '20000', '--save-every', '100000'], { output, maxSeconds: 0.3 });
  const saved = await trainer.waitFor((e) => e.event === 'checkpoint');
  await trainer.waitFor((e) => e.event === 'progress' && e.step > saved.step);
  trainer.child.kill('SIGTERM');
  expect(await trainer.exit).toMatchObject({ signal: 'SIGTERM' });
  expect(checkpoints(output)).toEqual([checkpointFolderName(saved.step)]);
});

test('bad inputs are clear errors with exit code 2', async () => {
  const wrongShape = folder();
  writeSafetensorsSync(
    path.join(wrongShape, 'model.safetensors'),
    { embedding: { dtype: 'F32', shape: [3, 3], data: new Float32Array(9) } },
    { step: '1' },
  );
  const notTensors = folder();
  writeFileSync(path.join(notTensors, 'model.safetensors'), 'this is not a safetensors file');
  const otherVocab = folder();
  copyFileSync(path.join(scratchOutput, 'checkpoint-00000040', 'model.safetensors'), path.join(otherVocab, 'x'));
  const { tensors } = readSafetensorsSync(path.join(otherVocab, 'x'));
  writeSafetensorsSync(path.join(otherVocab, 'model.safetensors'), tensors, { vocab: '["x","y"]' });

  const [shape, corrupt, vocab, noOutput, badFlag, missingBase] = await Promise.all([
    runTrainer(['--steps', '5'], { output: folder(), base: wrongShape }),
    runTrainer(['--steps', '5'], { output: folder(), base: notTensors }),
    runTrainer(['--steps', '5'], { output: folder(), base: otherVocab }),
    runTrainer(['--steps', '5'], {}),
    runTrainer(['--steps', 'many'], { output: folder() }),
    runTrainer(['--steps', '5'], { output: folder(), base: path.join(folder(), 'absent') }),
  ]);
  expect(shape).toMatchObject({ code: 2, stdout: expect.not.stringContaining('"checkpoint"') });
  expect(shape.stderr).toContain(`base model ${path.join(wrongShape, 'model.safetensors')} does not fit this trainer`);
  expect(shape.stderr).toMatch(
    /tensor embedding has shape \[3,3\], expected \[\d+,16\]; tensor hidden.weight is missing/,
  );
  expect(corrupt).toMatchObject({
    code: 2,
    stderr: expect.stringContaining(
      `base model cannot be read: invalid safetensors ${path.join(notTensors, 'model.safetensors')}: header length`,
    ),
  });
  expect(vocab).toMatchObject({
    code: 2,
    stderr: expect.stringContaining('was trained on another vocabulary (["x","y"])'),
  });
  expect(noOutput).toMatchObject({ code: 2, stderr: expect.stringContaining('COMPUTATRUM_OUTPUT_DIR is not set') });
  expect(badFlag).toMatchObject({ code: 2, stderr: expect.stringContaining('--steps many: expected an integer >= 0') });
  expect(missingBase).toMatchObject({
    code: 2,
    stderr: expect.stringMatching(/COMPUTATRUM_BASE_DIR=.*absent does not exist/),
  });
});
