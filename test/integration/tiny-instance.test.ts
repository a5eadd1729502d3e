// The tiny server as a hosted instance: a real checkpoint from the tiny trainer, served as a child
// process under the instance contract (activities/runners/types.ts), talked to with OpenAI's own client.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { tinyServerCommand, tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import { loadCorpus } from '../../activities/runners/tiny-trainer/checkpoints';
import {
  CHECKPOINT_FOLDER,
  INSTANCE_ENV,
  INSTANCE_READY_PATH,
  INSTANCE_STOP_SECONDS,
  TRAINER_ENV,
} from '../../activities/runners/types';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { eventually } from '../helpers/eventually';

const MODEL = 'germline/computatrum:test';
/** More characters than any test waits for: a stream asked for this many is still generating when the test acts. */
const ENDLESS = 1_000_000;
const vocabulary = new Set(loadCorpus().vocab);
const user = (content: string) => [{ role: 'user' as const, content }];

/** The test process's own COMPUTATRUM_* variables must not leak into the children. */
const inherited = () =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('COMPUTATRUM_')));

function runProcess(command: string[], env: Record<string, string>): Promise<number | null> {
  const [program, ...args] = command;
  const child = spawn(program!, args, { cwd: tmpdir(), env: { ...inherited(), ...env }, stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
}

interface Instance {
  child: ChildProcess;
  port: number;
  client: OpenAI;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; exitedAt: number }>;
  /** Resolves with the match of the first stdout line (seen already or later) that matches. */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
}

const instances: Instance[] = [];
let work: string;
let modelDir: string;

async function startInstance(env: Record<string, string> = {}): Promise<Instance> {
  const port = await freePort();
  const [program, ...args] = tinyServerCommand();
  const child = spawn(program!, args, {
    cwd: tmpdir(),
    env: {
      ...inherited(),
      [INSTANCE_ENV.modelDir]: modelDir,
      [INSTANCE_ENV.modelName]: MODEL,
      [INSTANCE_ENV.instanceId]: 'instance-test',
      [INSTANCE_ENV.gpus]: '0',
      [INSTANCE_ENV.port]: String(port),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (match: RegExpMatchArray) => void }[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(line);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; exitedAt: number }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve({ code, signal, exitedAt: Date.now() }));
    },
  );
  const instance: Instance = {
    child,
    port,
    // No retries: a 429 must reach the test, not be retried away.
    client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'none', maxRetries: 0 }),
    exit,
    line: (pattern) => {
      for (const line of lines) {
        const match = pattern.exec(line);
        if (match) return Promise.resolve(match);
      }
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
  };
  instances.push(instance);
  await eventually(async () => {
    const exited = child.exitCode ?? child.signalCode;
    if (exited !== null) throw new Error(`the server exited (${exited}): ${stderr}`);
    const response = await fetch(`http://127.0.0.1:${port}${INSTANCE_READY_PATH}`);
    return response.status === 200 ? true : undefined;
  }, `the tiny server on port ${port} to be ready`);
  return instance;
}

/** The chunks of a stream, and the text they carry. */
async function collect(stream: AsyncIterable<ChatCompletionChunk>, chunks: ChatCompletionChunk[] = []) {
  for await (const chunk of stream) chunks.push(chunk);
  return { chunks, text: chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('') };
}

let instance: Instance;
/** COMPUTATRUM_MAX_CONCURRENCY=1: one answer at a time. */
let single: Instance;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'tiny-instance-'));
  const output = path.join(work, 'output');
  const trained = await runProcess(tinyTrainerCommand(['--steps', '100', '--save-every', '50']), {
    [TRAINER_ENV.outputDir]: output,
    [TRAINER_ENV.runId]: 'instance-test',
  });
  expect(trained).toBe(0);
  // What an instance gets: the newest checkpoint folder's files at the root of a read-only folder.
  const newest = readdirSync(output)
    .filter((name) => CHECKPOINT_FOLDER.test(name))
    .sort()
    .at(-1)!;
  modelDir = path.join(work, 'model');
  mkdirSync(modelDir);
  for (const file of readdirSync(path.join(output, newest))) {
    copyFileSync(path.join(output, newest, file), path.join(modelDir, file));
    chmodSync(path.join(modelDir, file), 0o444);
  }
  chmodSync(modelDir, 0o555);
  [instance, single] = await Promise.all([startInstance(), startInstance({ COMPUTATRUM_MAX_CONCURRENCY: '1' })]);
}, 30_000);

afterAll(async () => {
  for (const { child, exit } of instances) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
  }
  if (modelDir) chmodSync(modelDir, 0o755);
  if (work) rmSync(work, { recursive: true, force: true });
});

test('lists the one model it serves: the readiness probe', async () => {
  const models = await instance.client.models.list();
  expect(models.data.map((model) => model.id)).toEqual([MODEL]);
  expect((await instance.client.models.retrieve(MODEL)).id).toBe(MODEL);
});

test('answers with usage in characters; prompt characters outside the vocabulary are skipped', async () => {
  const content = 'The computatrum 🤖 keeps a ledger';
  const answer = await instance.client.chat.completions.create({
    model: MODEL,
    messages: user(content),
    max_tokens: 50,
    seed: 1,
  });
  const text = answer.choices[0]!.message.content!;
  // The template: each message's text and a blank line; the robot is not in the corpus' vocabulary.
  const seen = [...`${content}\n\n`].filter((character) => vocabulary.has(character));
  expect(seen.length).toBe([...content].length + 2 - 1);
  expect(answer.usage).toEqual({ prompt_tokens: seen.length, completion_tokens: 50, total_tokens: seen.length + 50 });
  expect([...text]).toHaveLength(50);
  expect([...text].every((character) => vocabulary.has(character))).toBe(true);
  expect(answer.choices[0]!.finish_reason).toBe('length');
  expect(answer.model).toBe(MODEL);
});

test('streams chunks: the role first, finish_reason last, then usage; the same text as unstreamed', async () => {
  const request = { model: MODEL, messages: user('Training is a slow conversation'), max_tokens: 80, seed: 7 };
  const stream = await instance.client.chat.completions.create({
    ...request,
    stream: true,
    stream_options: { include_usage: true },
  });
  const { chunks, text } = await collect(stream);
  expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
  expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0]!.id)).toBe(true);
  const usageChunk = chunks.at(-1)!;
  expect(usageChunk.choices).toEqual([]);
  expect(usageChunk.usage).toMatchObject({ completion_tokens: 80 });
  const finishing = chunks.at(-2)!;
  expect(finishing.choices[0]!.finish_reason).toBe('length');
  expect(chunks.slice(0, -2).every((chunk) => chunk.choices[0]!.finish_reason === null)).toBe(true);
  // A few characters per chunk, not one chunk for the whole answer.
  expect(chunks.filter((chunk) => chunk.choices[0]?.delta.content).length).toBeGreaterThan(10);

  const unstreamed = await instance.client.chat.completions.create(request);
  expect(text).toBe(unstreamed.choices[0]!.message.content);
  expect(usageChunk.usage).toEqual(unstreamed.usage);

  const withoutUsage = await collect(await instance.client.chat.completions.create({ ...request, stream: true }));
  expect(withoutUsage.chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  expect(withoutUsage.chunks.some((chunk) => chunk.usage)).toBe(false);
});

test('the same seed gives the same text, also four answers at once; temperature 0 is deterministic', async () => {
  const ask = (options: { seed?: number; temperature?: number }) =>
    instance.client.chat.completions
      .create({ model: MODEL, messages: user('It does not hurry'), max_tokens: 120, ...options })
      .then((answer) => answer.choices[0]!.message.content);
  // Four at once, the instance's limit: each answer carries its own generator and context.
  const [first, again, other, greedy] = await Promise.all([
    ask({ seed: 42 }),
    ask({ seed: 42 }),
    ask({ seed: 43 }),
    ask({ temperature: 0 }),
  ]);
  expect(again).toBe(first);
  expect(other).not.toBe(first);
  expect(await ask({ temperature: 0 })).toBe(greedy);
  expect(await ask({ temperature: 0, seed: 5 })).toBe(greedy);
});

test('stop sequences end the answer before them, streamed or not', async () => {
  const request = { model: MODEL, messages: user('When the day begins'), temperature: 0, max_tokens: 60 };
  const full = (await instance.client.chat.completions.create(request)).choices[0]!.message.content!;
  const stop = full.slice(20, 23);
  const expected = full.slice(0, full.indexOf(stop));

  const stopped = await instance.client.chat.completions.create({ ...request, stop });
  expect(stopped.choices[0]!.message.content).toBe(expected);
  expect(stopped.choices[0]!.finish_reason).toBe('stop');
  // The model wrote the stop sequence: counted, though not returned.
  expect(stopped.usage!.completion_tokens).toBe([...expected].length + [...stop].length);

  const streamed = await collect(
    await instance.client.chat.completions.create({ ...request, stop: ['never written!', stop], stream: true }),
  );
  expect(streamed.text).toBe(expected);
  expect(streamed.chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
});

test('max_tokens and max_completion_tokens bound the answer', async () => {
  for (const limit of [{ max_tokens: 7 }, { max_completion_tokens: 5 }]) {
    const answer = await instance.client.chat.completions.create({ model: MODEL, messages: user('A'), ...limit });
    const max = Object.values(limit)[0]!;
    expect(answer.usage!.completion_tokens).toBeLessThanOrEqual(max);
    expect([...answer.choices[0]!.message.content!].length).toBeLessThanOrEqual(max);
  }
});

test('another model is 404 model_not_found; a bad request is 400, in OpenAI error JSON', async () => {
  const wrong = await instance.client.chat.completions
    .create({ model: 'someone/else:main', messages: user('Hello') })
    .catch((error: unknown) => error);
  expect(wrong).toBeInstanceOf(OpenAI.NotFoundError);
  expect(wrong).toMatchObject({ status: 404, code: 'model_not_found' });

  const empty = await instance.client.chat.completions
    .create({ model: MODEL, messages: [] })
    .catch((error: unknown) => error);
  expect(empty).toBeInstanceOf(OpenAI.BadRequestError);

  const response = await fetch(`http://127.0.0.1:${instance.port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model": ',
  });
  expect(response.status).toBe(400);
  expect(await response.json()).toEqual({
    error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_json' },
  });
});

test('busy: 429 beyond the limit; a client that goes away stops its answer and frees its place', async () => {
  const stream = await single.client.chat.completions.create({
    model: MODEL,
    messages: user('A long answer'),
    max_tokens: ENDLESS,
    stream: true,
  });
  const chunks = stream[Symbol.asyncIterator]();
  expect((await chunks.next()).value.choices[0].delta.role).toBe('assistant');

  const busy = await single.client.chat.completions
    .create({ model: MODEL, messages: user('Me too'), max_tokens: 5 })
    .catch((error: unknown) => error);
  expect(busy).toBeInstanceOf(OpenAI.RateLimitError);
  expect(busy).toMatchObject({ status: 429, type: 'rate_limit_error', code: 'too_many_concurrent_requests' });

  stream.controller.abort();
  // The server logs how far the answer got when it stopped: far short of what was asked.
  const stopped = await single.line(/streamed (\d+) characters .*stopped: client disconnected/);
  expect(Number(stopped[1])).toBeLessThan(ENDLESS);
  // Its place is free at once: the next request is answered, not refused.
  const next = await single.client.chat.completions.create({ model: MODEL, messages: user('Now'), max_tokens: 5 });
  expect(next.usage!.completion_tokens).toBe(5);
});

test('SIGTERM: no new requests, the stream in flight ends cleanly, exit 0 within the contract', async () => {
  const stream = await single.client.chat.completions.create({
    model: MODEL,
    messages: user('Still answering when the signal comes'),
    max_tokens: ENDLESS,
    stream: true,
    stream_options: { include_usage: true },
  });
  const iterator = stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  const signalledAt = Date.now();
  single.child.kill('SIGTERM');

  // Refused from now on: the port is closed, or a kept-alive connection is answered 503.
  await eventually(
    () =>
      fetch(`http://127.0.0.1:${single.port}${INSTANCE_READY_PATH}`).then(
        (response) => (response.status === 503 ? true : undefined),
        () => true,
      ),
    'the instance to refuse new requests',
  );

  const chunks: ChatCompletionChunk[] = [first.value];
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(next.value);
  const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
  // Cut short by the shutdown, as if at max_tokens: a complete, well-formed stream.
  expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
  const usage = chunks.at(-1)!.usage!;
  expect(usage.completion_tokens).toBeLessThan(ENDLESS);
  expect(usage.completion_tokens).toBe([...text].length);
  await single.line(/cut short by shutdown/);

  const exit = await single.exit;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.exitedAt - signalledAt).toBeLessThan(INSTANCE_STOP_SECONDS * 1000);
});

test('SIGTERM with nothing in flight: exit 0 at once', async () => {
  const signalledAt = Date.now();
  instance.child.kill('SIGTERM');
  const exit = await instance.exit;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.exitedAt - signalledAt).toBeLessThan(3000);
});
