// The local instance runner with real processes: test/helpers/echo-instance.js, a tiny server
// meeting the instance contract, started, adopted by a second runner (a restarted worker), checked,
// stopped and killed from outside.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  type InstanceSpec,
  LocalInstanceRunner,
  type LocalInstanceRunnerOptions,
} from '../../activities/runners/local-instances';
import { InstanceFailedError } from '../../activities/runners/types';
import { Client, Connection } from '@temporalio/client';
import { recordLaunch } from '../../db/instances';
import { openDatabase, type Database } from '../../db/prisma';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import type { InstanceRequest, InstanceState } from '../../workflows/instance-api';
import { startInstanceSweeper, sweepInstances } from '../../worker/runners';
import { eventually } from '../helpers/eventually';
import { isAlive } from '../helpers/processes';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

const ECHO = path.join(__dirname, '..', 'helpers', 'echo-instance.js');
const MODULE = path.join(__dirname, '..', '..', 'activities', 'runners', 'local-instances.ts');
const SECRETS = { DATABASE_URL: 'postgres://secret@db/x', STRIPE_SECRET_KEY: 'sk_test_secret', COMPUTATRUM_TOKEN: 't' };

let dataDir: string;
const saved: Record<string, string | undefined> = {};
const pids = new Set<number>();

beforeAll(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'local-instances-'));
  // Secrets in the worker's environment must not reach an instance.
  for (const [name, value] of Object.entries(SECRETS)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
});

afterAll(async () => {
  const runner = runnerWith();
  for (const id of await runner.list()) await runner.stop(id, { graceMs: 0 });
  for (const pid of pids) if (isAlive(pid)) process.kill(-pid, 'SIGKILL');
  for (const [name, value] of Object.entries(saved))
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  rmSync(dataDir, { recursive: true, force: true });
});

function runnerWith(options: Partial<LocalInstanceRunnerOptions> = {}): LocalInstanceRunner {
  return new LocalInstanceRunner({
    dataDir,
    defaultCommand: [process.execPath, ECHO],
    readyTimeoutMs: 10_000,
    ...options,
  });
}

function spec(instanceId: string, env: Record<string, string> = {}): InstanceSpec {
  return { instanceId, modelDir: `/models/${instanceId}`, modelName: `germline/${instanceId}`, gpus: 2, env };
}

async function start(runner: LocalInstanceRunner, s: InstanceSpec) {
  const started = await runner.start(s);
  pids.add(started.pid);
  return started;
}

/** The pid an echo instance printed on its first line, from a log tail. */
const loggedPid = (log: string) => Number(/echo-instance pid=(\d+)/.exec(log)?.[1]);

test('start: the instance gets the contract environment, no secrets, and serves; a restarted worker adopts it', async () => {
  const runner = runnerWith();
  const started = await start(runner, spec('echo-1', { ECHO_DEBUG: '1' }));
  expect(started).toEqual({
    endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    pid: expect.any(Number),
    adopted: false,
  });
  expect(await runner.check('echo-1')).toEqual({ state: 'ready', endpoint: started.endpoint });
  expect(await runner.list()).toContain('echo-1');
  const record = JSON.parse(readFileSync(path.join(dataDir, 'echo-1', 'process.json'), 'utf8'));
  expect(record).toMatchObject({
    pid: started.pid,
    port: Number(new URL(started.endpoint).port),
    argv: [process.execPath, ECHO],
  });

  const models = await (await fetch(`${started.endpoint}/v1/models`)).json();
  expect(models).toEqual({
    object: 'list',
    data: [{ id: 'germline/echo-1', object: 'model', created: expect.any(Number), owned_by: 'computatrum' }],
  });
  const debug = (await (await fetch(`${started.endpoint}/debug/env`)).json()) as { keys: string[] };
  expect(debug).toMatchObject({
    contract: {
      COMPUTATRUM_MODEL_DIR: '/models/echo-1',
      COMPUTATRUM_MODEL_NAME: 'germline/echo-1',
      COMPUTATRUM_INSTANCE_ID: 'echo-1',
      COMPUTATRUM_GPUS: '2',
    },
    port: Number(new URL(started.endpoint).port),
    cwd: path.join(dataDir, 'echo-1'),
    pid: started.pid,
  });
  expect(debug.keys).toEqual(expect.arrayContaining(['PATH', 'PORT', 'ECHO_DEBUG']));
  for (const secret of Object.keys(SECRETS)) expect(debug.keys).not.toContain(secret);

  const chat = await fetch(`${started.endpoint}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'germline/echo-1', messages: [{ role: 'user', content: 'hello there' }] }),
  });
  expect(await chat.json()).toMatchObject({
    object: 'chat.completion',
    model: 'germline/echo-1',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hello there' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 11, completion_tokens: 11, total_tokens: 22 },
  });

  // A second runner: what a worker restarted after the first one died finds.
  const again = await runnerWith().start(spec('echo-1', { ECHO_DEBUG: '1' }));
  expect(again).toEqual({ endpoint: started.endpoint, pid: started.pid, adopted: true });
});

test('streaming chunks follow OpenAI: role first, content pieces, finish reason, usage, [DONE]', async () => {
  const { endpoint } = await start(runnerWith(), spec('echo-stream'));
  const response = await fetch(`${endpoint}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'one two three' }] },
      ],
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  expect(response.headers.get('content-type')).toBe('text/event-stream');
  const events = (await response.text()).split('\n\n').filter(Boolean);
  expect(events.at(-1)).toBe('data: [DONE]');
  const chunks = events.slice(0, -1).map((event) => JSON.parse(event.replace(/^data: /, '')));
  expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk')).toBe(true);
  expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
  expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')).toBe('one two three');
  expect(chunks.at(-2).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
  expect(chunks.at(-1)).toMatchObject({
    choices: [],
    usage: { prompt_tokens: 21, completion_tokens: 13, total_tokens: 34 },
  });
});

test('the echo instance answers errors, max_tokens and busy as OpenAI-compatible servers do', async () => {
  const { endpoint } = await start(
    runnerWith(),
    spec('echo-limits', { ECHO_MAX_IN_FLIGHT: '1', ECHO_STREAM_DELAY_MS: '50' }),
  );
  const chat = (body: object) =>
    fetch(`${endpoint}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const wrongModel = await chat({ model: 'other', messages: [{ role: 'user', content: 'x' }] });
  expect(wrongModel.status).toBe(404);
  expect(await wrongModel.json()).toEqual({
    error: { message: expect.any(String), type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
  });
  expect((await chat({ messages: [] })).status).toBe(400);
  expect(await (await chat({ messages: [{ role: 'user', content: 'abcdef' }], max_tokens: 3 })).json()).toMatchObject({
    choices: [{ message: { content: 'abc' }, finish_reason: 'length' }],
    usage: { completion_tokens: 3 },
  });

  // One request in flight (a slow stream): the next is busy, 429.
  const slow = await chat({ messages: [{ role: 'user', content: 'a b c d e f g h' }], stream: true });
  const busy = await chat({ messages: [{ role: 'user', content: 'x' }] });
  expect(busy.status).toBe(429);
  expect(busy.headers.get('retry-after')).toBe('1');
  expect(await busy.json()).toMatchObject({
    error: { type: 'rate_limit_error', code: 'too_many_concurrent_requests' },
  });
  expect(await slow.text()).toMatch(/data: \[DONE\]\n\n$/);
  expect((await chat({ messages: [{ role: 'user', content: 'x' }] })).status).toBe(200);
});

test('check says starting until the instance answers, then ready', async () => {
  const runner = runnerWith();
  const starting = start(runner, spec('echo-slow', { ECHO_READY_AFTER_MS: '1500' }));
  await eventually(async () => ((await runner.check('echo-slow')).state === 'starting' ? true : undefined), 'starting');
  const { endpoint } = await starting;
  expect(await runner.check('echo-slow')).toEqual({ state: 'ready', endpoint });
});

test('an instance that exits at once fails the start with its log; it is gone', async () => {
  const runner = runnerWith();
  const failed = await runner.start(spec('echo-fail', { ECHO_FAIL: '1' })).catch((error: unknown) => error);
  expect(failed).toBeInstanceOf(InstanceFailedError);
  expect((failed as Error).message).toMatch(/exited with code 1 before it was ready/);
  expect((failed as Error).message).toContain('failing on purpose (ECHO_FAIL=1)');
  expect(await runner.list()).not.toContain('echo-fail');
  const check = await runner.check('echo-fail');
  expect(check).toMatchObject({ state: 'gone' });
  expect(check.logTail).toContain('failing on purpose');

  const missing = await runner
    .start({ ...spec('echo-missing'), command: ['/nonexistent/server'] })
    .catch((e: unknown) => e);
  expect(missing).toBeInstanceOf(InstanceFailedError);
  expect((missing as Error).message).toMatch(/cannot start \/nonexistent\/server: .*ENOENT/);
});

test('an instance not ready in time is killed and fails the start', async () => {
  const runner = runnerWith({ readyTimeoutMs: 500 });
  const failed = await runner
    .start(spec('echo-late', { ECHO_READY_AFTER_MS: '60000' }))
    .catch((error: unknown) => error);
  expect(failed).toBeInstanceOf(InstanceFailedError);
  expect((failed as Error).message).toMatch(/did not answer GET \/v1\/models within 500 ms/);
  const pid = loggedPid((failed as InstanceFailedError).logTail);
  expect(pid).toBeGreaterThan(0);
  expect(isAlive(pid)).toBe(false);
  expect(await runner.list()).not.toContain('echo-late');
});

test('stop lets an in-flight request finish (SIGTERM), then the instance is gone; stopping again is a no-op', async () => {
  const runner = runnerWith();
  const { endpoint, pid } = await start(runner, spec('echo-stop', { ECHO_STREAM_DELAY_MS: '100' }));
  const response = await fetch(`${endpoint}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'a b c d e' }], stream: true }),
  });
  const reader = response.body!.getReader();
  await reader.read(); // the first chunk: the request is in flight
  const stopStarted = Date.now();
  const stopping = runner.stop('echo-stop', { graceMs: 8_000 });
  let rest = '';
  for (let part = await reader.read(); !part.done; part = await reader.read())
    rest += Buffer.from(part.value).toString();
  expect(rest.trimEnd().endsWith('data: [DONE]')).toBe(true);
  expect(await stopping).toEqual({ stopped: true });
  // It exited by itself on SIGTERM, well within the grace period (no SIGKILL needed).
  expect(Date.now() - stopStarted).toBeLessThan(4_000);
  expect(readFileSync(path.join(dataDir, 'echo-stop', 'instance.log'), 'utf8')).toContain('echo-instance: SIGTERM');
  expect(isAlive(pid)).toBe(false);
  expect(existsSync(path.join(dataDir, 'echo-stop', 'process.json'))).toBe(false);
  expect(await runner.check('echo-stop')).toMatchObject({ state: 'gone' });
  expect(await runner.stop('echo-stop')).toEqual({ stopped: false });
  expect(await runner.stop('never-started')).toEqual({ stopped: false });
  expect(await runner.check('never-started')).toEqual({ state: 'gone', logTail: '' });
});

test('an instance killed from outside is gone, with its log; a start afterwards starts a new one', async () => {
  const runner = runnerWith();
  const first = await start(runner, spec('echo-killed'));
  process.kill(first.pid, 'SIGKILL');
  const check = await eventually(async () => {
    const c = await runner.check('echo-killed');
    return c.state === 'gone' ? c : undefined;
  }, 'gone');
  expect(check).toMatchObject({ state: 'gone', exitCode: null });
  expect(loggedPid(check.logTail!)).toBe(first.pid);
  const second = await start(runnerWith(), spec('echo-killed'));
  expect(second).toMatchObject({ adopted: false });
  expect(second.pid).not.toBe(first.pid);
  expect(await runner.stop('echo-killed', { graceMs: 2_000 })).toEqual({ stopped: true });
});

test('a worker killed with -9 leaves its instance serving; another worker adopts it and stops it', async () => {
  // The first worker: another Node process (TypeScript through tsx) that starts the instance and is killed.
  const script = `
    const { LocalInstanceRunner } = require(${JSON.stringify(MODULE)});
    new LocalInstanceRunner({ dataDir: ${JSON.stringify(dataDir)}, defaultCommand: ${JSON.stringify([process.execPath, ECHO])} })
      .start(${JSON.stringify(spec('echo-orphan'))})
      .then((started) => { console.log(JSON.stringify(started)); setInterval(() => {}, 60_000); });`;
  const worker = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  worker.stderr.on('data', (chunk) => (stderr += chunk));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: worker.stdout }).once('line', resolve);
    worker.once('exit', (code) => reject(new Error(`the worker exited with ${code}: ${stderr}`)));
  });
  const started = JSON.parse(line) as { endpoint: string; pid: number; adopted: boolean };
  pids.add(started.pid);
  expect(started.adopted).toBe(false);
  worker.kill('SIGKILL');
  await once(worker, 'exit');

  const runner = runnerWith();
  expect(await runner.check('echo-orphan')).toEqual({ state: 'ready', endpoint: started.endpoint });
  expect(await runner.start(spec('echo-orphan'))).toEqual({ ...started, adopted: true });
  // Not a child of this process: its exit is seen by polling.
  expect(await runner.stop('echo-orphan', { graceMs: 5_000 })).toEqual({ stopped: true });
  expect(await runner.check('echo-orphan')).toMatchObject({ state: 'gone' });
  expect(readFileSync(path.join(dataDir, 'echo-orphan', 'instance.log'), 'utf8')).toContain('echo-instance: SIGTERM');
});

test('a start with another model for a running id replaces the process rather than adopting it', async () => {
  const runner = runnerWith();
  const first = await start(runner, spec('echo-swap'));
  const second = await start(runner, { ...spec('echo-swap'), modelName: 'germline/other' });
  expect(second).toMatchObject({ adopted: false });
  expect(second.pid).not.toBe(first.pid);
  expect(isAlive(first.pid)).toBe(false);
  const models = (await (await fetch(`${second.endpoint}/v1/models`)).json()) as { data: { id: string }[] };
  expect(models.data[0]!.id).toBe('germline/other');
  expect(await runner.stop('echo-swap', { graceMs: 2_000 })).toEqual({ stopped: true });
});

describe('the sweep of orphaned instance processes', () => {
  let db: Database;
  let connection: Connection;
  let client: Client;
  let sweepDir: string;

  beforeAll(async () => {
    db = openDatabase(testGlobals().databaseUrl);
    connection = await Connection.connect({ address: testGlobals().temporalAddress });
    client = new Client({ connection, namespace: 'default' });
    // A folder of its own: the sweep looks at every instance of its runner, and the other tests' have no row.
    sweepDir = path.join(dataDir, 'swept');
  });

  afterAll(async () => {
    await db?.$disconnect();
    await connection?.close();
  });

  function request(id: string): InstanceRequest {
    return {
      version: 1,
      id,
      image: { repo: 'germline/sweep', reference: 'main' },
      payer: 'germline/sweep',
      currency: 'usd',
      visibility: 'private',
      runner: 'local',
      gpus: 1,
      ratePerGpuHour: '3600',
      idleTimeoutSeconds: 0,
      maxDurationSeconds: 3600,
      maxCost: '100',
    };
  }

  /** An instance whose process runs (what a worker that died left behind), with its row in `state`. */
  async function leftRunning(prefix: string, state?: InstanceState) {
    const id = uniqueName(prefix);
    if (state) {
      await recordLaunch(db, request(id), `sha256:${'0'.repeat(64)}`);
      await db.instance.update({ where: { id }, data: { state } });
    }
    const started = await start(runnerWith({ dataDir: sweepDir }), spec(id));
    return { id, pid: started.pid, endpoint: started.endpoint };
  }

  test('by the row: final or missing is stopped, live is kept', async () => {
    const stopped = await leftRunning('sweep-stopped', 'stopped');
    const failed = await leftRunning('sweep-failed', 'failed');
    const missing = await leftRunning('sweep-missing');
    const ready = await leftRunning('sweep-ready', 'ready');
    const starting = await leftRunning('sweep-starting', 'starting');

    const swept = await sweepInstances({ local: runnerWith({ dataDir: sweepDir }) }, { db });
    expect(swept.local!.sort()).toEqual([stopped.id, failed.id, missing.id].sort());
    for (const gone of [stopped, failed, missing]) {
      expect(isAlive(gone.pid)).toBe(false);
      expect(existsSync(path.join(sweepDir, gone.id, 'process.json'))).toBe(false);
      expect(readFileSync(path.join(sweepDir, gone.id, 'instance.log'), 'utf8')).toContain('echo-instance: SIGTERM');
    }
    for (const kept of [ready, starting]) {
      expect(isAlive(kept.pid)).toBe(true);
      expect((await fetch(`${kept.endpoint}/v1/models`)).status).toBe(200);
    }
    // Nothing more to do: a second sweep stops nothing.
    expect(await sweepInstances({ local: runnerWith({ dataDir: sweepDir }) }, { db })).toEqual({ local: [] });
    for (const kept of [ready, starting]) await runnerWith({ dataDir: sweepDir }).stop(kept.id, { graceMs: 0 });
  });

  test('by the workflow: a running one keeps its process whatever the row says, a terminated one does not', async () => {
    // No worker polls this queue: the workflows stay running (or are terminated) without running a step.
    const taskQueue = uniqueName('no-worker');
    const running = await leftRunning('sweep-running', 'stopped');
    await launchInstance(client, taskQueue, request(running.id));
    const terminated = await leftRunning('sweep-terminated', 'ready');
    await launchInstance(client, taskQueue, request(terminated.id));
    await instanceHandle(client, terminated.id).terminate('from the Temporal UI');
    // Temporal has no workflow for it: the row decides, and says live.
    const unknown = await leftRunning('sweep-unknown', 'ready');

    const swept = await sweepInstances({ local: runnerWith({ dataDir: sweepDir }) }, { db, client });
    expect(swept).toEqual({ local: [terminated.id] });
    expect(isAlive(terminated.pid)).toBe(false);
    expect(isAlive(running.pid)).toBe(true);
    expect(isAlive(unknown.pid)).toBe(true);

    await instanceHandle(client, running.id).terminate('done');
    await db.instance.update({ where: { id: unknown.id }, data: { state: 'failed' } });
    expect(await sweepInstances({ local: runnerWith({ dataDir: sweepDir }) }, { db, client })).toEqual({
      local: [running.id, unknown.id].sort(),
    });
    expect(isAlive(running.pid)).toBe(false);
    expect(isAlive(unknown.pid)).toBe(false);
  });

  test("the worker's sweeper sweeps at start and then periodically, until it is stopped", async () => {
    const atStart = await leftRunning('sweep-at-start', 'stopped');
    const sweeper = startInstanceSweeper({ local: runnerWith({ dataDir: sweepDir }) }, { db, client, intervalMs: 200 });
    try {
      await eventually(async () => (isAlive(atStart.pid) ? undefined : true), 'the sweep at start');
      // Ended after the worker started (terminated from the Temporal UI, say): a later sweep stops it.
      const later = await leftRunning('sweep-later', 'ready');
      await db.instance.update({ where: { id: later.id }, data: { state: 'failed' } });
      await eventually(async () => (isAlive(later.pid) ? undefined : true), 'a periodic sweep');
    } finally {
      await sweeper.stop();
    }
  });

  test('an instance whose liveness cannot be told is kept', async () => {
    const doubtful = await leftRunning('sweep-doubtful');
    const runner = runnerWith({ dataDir: sweepDir });
    const stopped = await runner.sweep(async () => {
      throw new Error('the database is unreachable');
    });
    expect(stopped).toEqual([]);
    expect(isAlive(doubtful.pid)).toBe(true);
    expect(await runner.sweep(async () => false)).toEqual([doubtful.id]);
    expect(isAlive(doubtful.pid)).toBe(false);
  });
});
