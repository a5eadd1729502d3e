// The tiny trainer learning from feedback datasets (COMPUTATRUM_DATASET_DIRS): a base trained on the
// corpus, fine-tuned on transcripts that answer "The cat " with "sat on the mat.", then scored the way
// the tiny server samples (its prompt template, its model loader).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { chatPrompt, Sampler, type TinyLanguageModel } from '../../activities/runners/tiny-trainer/sampling';
import { loadTinyModel } from '../../activities/runners/tiny-trainer/server';
import { checkpointFolderName, TRAINER_ENV } from '../../activities/runners/types';
import {
  type ChatMessage,
  DATASET_FILES,
  DatasetFormatError,
  type LabelledRow,
  type PreferenceRow,
  readDatasetFolder,
  type TranscriptRow,
} from '../../store/dataset';
import { readSafetensorsSync } from '../../store/safetensors';

const folders: string[] = [];
const folder = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tiny-feedback-'));
  folders.push(dir);
  return dir;
};
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  events: Array<Record<string, unknown>>;
}

function runTrainer(args: string[], env: { output: string; base?: string; datasets?: string[] }): Promise<Result> {
  const [command, ...argv] = tinyTrainerCommand(args);
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('COMPUTATRUM_')),
  );
  const child = spawn(command!, argv, {
    cwd: tmpdir(),
    env: {
      ...inherited,
      [TRAINER_ENV.outputDir]: env.output,
      [TRAINER_ENV.runId]: 'feedback-test',
      ...(env.base ? { [TRAINER_ENV.baseDir]: env.base } : {}),
      ...(env.datasets ? { [TRAINER_ENV.datasetDirs]: env.datasets.join(path.delimiter) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const events = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      resolve({ code, stdout, stderr, events });
    });
  });
}

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

/** Writes a dataset folder the way computatrum materializes one; `raw` replaces a JSONL file's text. */
function writeDataset(
  rows: { transcripts?: TranscriptRow[]; preferences?: PreferenceRow[]; labelled?: LabelledRow[] },
  raw: Partial<Record<'transcripts' | 'preferences' | 'labelled', string>> = {},
): string {
  const dir = folder();
  const kinds = ['preferences', 'labelled', 'transcripts'] as const;
  for (const kind of kinds) {
    const text = raw[kind] ?? (rows[kind] ?? []).map((row) => `${JSON.stringify(row)}\n`).join('');
    writeFileSync(path.join(dir, DATASET_FILES[kind]), text);
  }
  const all: { record: string }[] = [
    ...(rows.preferences ?? []),
    ...(rows.labelled ?? []),
    ...(rows.transcripts ?? []),
  ];
  const records = [...new Set(all.map((row) => row.record))].sort();
  const counts = {
    records: records.length,
    preferences: rows.preferences?.length ?? 0,
    labelled: rows.labelled?.length ?? 0,
    transcripts: rows.transcripts?.length ?? 0,
  };
  writeFileSync(path.join(dir, DATASET_FILES.records), `${JSON.stringify({ records, counts })}\n`);
  return dir;
}

const PROMPT = 'The cat ';
const ANSWER = 'sat on the mat.';
const catTranscripts = (count: number): TranscriptRow[] =>
  Array.from({ length: count }, (_, i) => ({ record: `r${i}`, messages: [user(PROMPT), assistant(ANSWER)] }));

/** The model's prompt for a chat holding one user message, as the tiny server builds it. */
const promptIds = (model: TinyLanguageModel, text: string): number[] =>
  model.encode(chatPrompt([{ role: 'user', text }]));

/** log P(continuation | prompt) in nats, one character at a time, through the model's own forward pass. */
function logLikelihood(model: TinyLanguageModel, prompt: string, continuation: string): number {
  const ids = promptIds(model, prompt);
  let total = 0;
  for (const id of model.encode(continuation)) {
    const logits = model.nextLogits(model.contextFor(ids));
    let max = -Infinity;
    for (const value of logits) max = Math.max(max, value);
    let sum = 0;
    for (const value of logits) sum += Math.exp(value - max);
    total += logits[id]! - max - Math.log(sum);
    ids.push(id);
  }
  return total;
}

/** Probability of the next character after prompt + text. */
const nextProbability = (model: TinyLanguageModel, prompt: string, text: string, next: string): number =>
  Math.exp(logLikelihood(model, prompt, text + next) - logLikelihood(model, prompt, text));

function greedy(model: TinyLanguageModel, prompt: string, length: number): string {
  const sampler = new Sampler(model, promptIds(model, prompt), { temperature: 0, topP: 1, seed: 0 });
  return Array.from({ length }, () => sampler.next()).join('');
}

const metrics = (output: string, step: number): Record<string, number> =>
  JSON.parse(readFileSync(path.join(output, checkpointFolderName(step), 'metrics.json'), 'utf8'));
const tensorBytes = (file: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(readSafetensorsSync(file).tensors).map(([name, t]) => [
      name,
      Buffer.from(t.data.buffer).toString('base64'),
    ]),
  );

const BASE_STEPS = 300;
const TUNE_STEPS = 150;
let base: string;

beforeAll(async () => {
  const output = folder();
  const result = await runTrainer(['--steps', String(BASE_STEPS), '--save-every', String(BASE_STEPS)], { output });
  expect(result).toMatchObject({ code: 0 });
  base = path.join(output, checkpointFolderName(BASE_STEPS));
});

test('fine-tuned on transcripts, the model continues their prompt with their answer, and still knows the corpus', async () => {
  const dataset = writeDataset({ transcripts: catTranscripts(8) });
  // Learns the answer's first character, "s", after the prompt; stops it being "r" (as in "rug").
  const preferencesOnly = writeDataset({
    preferences: [{ record: 'p', prompt: [user(PROMPT)], chosen: [assistant(ANSWER)], rejected: [assistant('rug')] }],
  });
  const tuned = folder();
  const control = folder();
  const pushed = folder();
  const resumed = folder();
  const steps = ['--steps', String(TUNE_STEPS), '--save-every', String(TUNE_STEPS)];
  const [tunedRun, controlRun, pushedRun, firstHalf] = await Promise.all([
    runTrainer(steps, { output: tuned, base, datasets: [dataset] }),
    // The same run without the dataset: what more corpus training alone does.
    runTrainer(steps, { output: control, base }),
    runTrainer(steps, { output: pushed, base, datasets: [preferencesOnly] }),
    runTrainer(['--steps', String(TUNE_STEPS / 2)], { output: resumed, base, datasets: [dataset] }),
  ]);
  for (const run of [tunedRun, controlRun, pushedRun, firstHalf]) expect(run).toMatchObject({ code: 0, stderr: '' });

  // What it learned from, in the log and in the metrics.
  expect(tunedRun.stdout).toContain('feedback from 1 dataset: 8 transcript rows (136 answer characters to learn)');
  expect(metrics(tuned, TUNE_STEPS)).toMatchObject({ feedback_transcript_rows: 8, feedback_preference_rows: 0 });
  expect(controlRun.stdout).not.toMatch(/feedback from|feedback_loss/);
  const feedbackLosses = tunedRun.events.flatMap((e) => (typeof e.feedback_loss === 'number' ? [e.feedback_loss] : []));
  expect(feedbackLosses).toHaveLength(TUNE_STEPS / 10);
  expect(feedbackLosses.at(-1)!).toBeLessThan(feedbackLosses[0]! / 4);

  const before = loadTinyModel(base).model;
  const after = loadTinyModel(tuned).model;
  const corpusOnly = loadTinyModel(control).model;
  const scores = {
    base: logLikelihood(before, PROMPT, ANSWER),
    tuned: logLikelihood(after, PROMPT, ANSWER),
    control: logLikelihood(corpusOnly, PROMPT, ANSWER),
  };
  // Per character, the answer goes from unlikely to near certain; more corpus training alone does not do
  // it. (Seed 0: base -30.9 nats, tuned -0.76, corpus only -32.6.)
  expect(scores.tuned).toBeGreaterThan(scores.base + 15);
  expect(scores.tuned).toBeGreaterThan(scores.control + 15);
  expect(scores.tuned / ANSWER.length).toBeGreaterThan(-0.3);
  expect(greedy(after, PROMPT, ANSWER.length)).toBe(ANSWER);
  expect(greedy(before, PROMPT, ANSWER.length)).not.toBe(ANSWER);
  expect(greedy(corpusOnly, PROMPT, ANSWER.length)).not.toBe(ANSWER);

  // Half of every batch was still corpus: its loss moved a little, it did not blow up (1.715 → 1.812).
  const baseLoss = metrics(path.dirname(base), BASE_STEPS).loss!;
  const tunedLoss = metrics(tuned, TUNE_STEPS).loss!;
  expect(tunedLoss).toBeLessThan(baseLoss + 0.25);

  // A preference pushes down where its rejected answer leaves the chosen one.
  expect(pushedRun.stdout).toContain('0 transcript rows (0 answer characters to learn), 1 preference rows');
  const pushedDown = {
    base: nextProbability(before, PROMPT, '', 'r'),
    tuned: nextProbability(loadTinyModel(pushed).model, PROMPT, '', 'r'),
  };
  // (0.050 → 0.0005.)
  expect(pushedDown.tuned).toBeLessThan(pushedDown.base / 10);

  // Deterministic: resumed half way, the same weights as in one go.
  const secondHalf = await runTrainer(steps, { output: resumed, base, datasets: [dataset] });
  expect(secondHalf).toMatchObject({ code: 0 });
  expect(secondHalf.events[0]).toEqual({ event: 'resumed', step: TUNE_STEPS / 2 });
  const final = checkpointFolderName(TUNE_STEPS);
  expect(tensorBytes(path.join(resumed, final, 'model.safetensors'))).toEqual(
    tensorBytes(path.join(tuned, final, 'model.safetensors')),
  );
});

test('bad datasets are input errors (exit code 2) naming the folder, or the file and line', async () => {
  const good = JSON.stringify(catTranscripts(1)[0]);
  const badJson = writeDataset({ transcripts: catTranscripts(2) }, { transcripts: `${good}\n{"record": "r1",\n` });
  const badShape = writeDataset(
    { transcripts: catTranscripts(2) },
    { transcripts: `${good}\n${JSON.stringify({ record: 'r1', messages: [{ role: 'bot', content: 'hi' }] })}\n` },
  );
  const missing = path.join(folder(), 'absent');
  const nothingToLearn = writeDataset({
    labelled: [{ record: 'l', prompt: [user(PROMPT)], completion: [assistant(ANSWER)], label: true }],
  });
  const [json, shape, absent, nothing] = (await Promise.all(
    [badJson, badShape, missing, nothingToLearn].map((dir) =>
      runTrainer(['--steps', '5'], { output: folder(), base, datasets: [dir] }),
    ),
  )) as [Result, Result, Result, Result];
  const transcripts = (dir: string): string => path.join(dir, DATASET_FILES.transcripts);
  expect(json).toMatchObject({ code: 2, stdout: expect.not.stringContaining('"checkpoint"') });
  expect(json.stderr).toContain(`COMPUTATRUM_DATASET_DIRS: ${transcripts(badJson)}:2: not valid JSON`);
  expect(shape).toMatchObject({ code: 2 });
  expect(shape.stderr).toContain(
    `${transcripts(badShape)}:2: not a transcripts row: messages[0].role is "bot", expected "system", "user" or "assistant"`,
  );
  expect(absent).toMatchObject({
    code: 2,
    stderr: expect.stringContaining(`dataset folder ${missing} does not exist`),
  });
  expect(nothing).toMatchObject({ code: 2 });
  expect(nothing.stderr).toContain('the dataset holds nothing the tiny trainer can learn from');
  expect(nothing.stderr).toContain('1 labelled rows (not used)');
});

test('readDatasetFolder reads the rows and checks them against records.json', () => {
  const transcripts = catTranscripts(2);
  const dir = writeDataset({ transcripts });
  expect(readDatasetFolder(dir)).toEqual({
    dir,
    preferences: [],
    labelled: [],
    transcripts,
    records: { records: ['r0', 'r1'], counts: { records: 2, preferences: 0, labelled: 0, transcripts: 2 } },
  });
  // Missing JSONL files hold no rows; CRLF line endings and blank lines are fine.
  rmSync(path.join(dir, DATASET_FILES.labelled));
  writeFileSync(
    path.join(dir, DATASET_FILES.transcripts),
    transcripts.map((r) => `\r\n${JSON.stringify(r)}\r\n`).join(''),
  );
  expect(readDatasetFolder(dir).transcripts).toEqual(transcripts);

  const problem = (setup: (dir: string) => void): string => {
    const broken = writeDataset({ transcripts });
    setup(broken);
    try {
      readDatasetFolder(broken);
    } catch (error) {
      expect(error).toBeInstanceOf(DatasetFormatError);
      return (error as Error).message.replaceAll(broken, '<dir>');
    }
    throw new Error('readDatasetFolder accepted a broken dataset');
  };
  const write = (file: string, text: string) => (broken: string) => writeFileSync(path.join(broken, file), text);
  expect(problem((broken) => rmSync(path.join(broken, DATASET_FILES.records)))).toBe(
    'dataset folder <dir> holds no records.json: it is not a dataset',
  );
  expect(problem(write(DATASET_FILES.records, '{"records": []}'))).toMatch(/^<dir>\/records.json: expected/);
  expect(problem(write(DATASET_FILES.transcripts, `${JSON.stringify(transcripts[0])}\n[1]\n`))).toBe(
    '<dir>/transcripts.jsonl:2: [1] is not a JSON object',
  );
  expect(
    problem(write(DATASET_FILES.transcripts, `${JSON.stringify({ record: 'r0', messages: [user('hi')] })}\n`)),
  ).toBe('<dir>/transcripts.jsonl:1: not a transcripts row: messages must end with an assistant message (the answer)');
  expect(problem(write(DATASET_FILES.transcripts, `${JSON.stringify({ ...transcripts[0], record: 'r9' })}\n`))).toBe(
    '<dir>/transcripts.jsonl:1: record "r9" is not listed in records.json (<dir>/records.json)',
  );
  expect(
    problem(
      write(
        DATASET_FILES.labelled,
        `${JSON.stringify({ record: 'r0', prompt: [user('hi')], completion: [assistant('yo')], label: 'yes' })}\n`,
      ),
    ),
  ).toBe('<dir>/labelled.jsonl:1: not a labelled row: label is "yes", expected true or false');
  expect(problem(write(DATASET_FILES.transcripts, `${JSON.stringify(transcripts[0])}\n`))).toBe(
    '<dir>/records.json: counts.transcripts is 2 but transcripts.jsonl holds 1 rows',
  );
  expect(problem((broken) => rmSync(broken, { recursive: true }))).toBe('dataset folder <dir> does not exist');
});
