// `computatrum chat` as a person uses it: the real CLI in a child process, talking to a real platform
// on a loopback port through its gateway (/v1), on the real engine: a worker, and echo instances
// (test/helpers/echo-instance.js, answering each chat with its last user message) launched through
// the instance workflow and the local runner. Piped input is one message; on a terminal (a
// pseudo-terminal) it is a conversation, each request carrying the exchanges before it, which the
// interactions the gateway stores show; Ctrl-C stops an answer. Who may talk to which instance, and
// what the CLI says when it may not, or when there is no such instance. Last, streams as other
// servers frame them (which the gateway passes on as they are), from a server reached with --from.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { depositUpdate } from '../../workflows/budget-api';
import { type InstanceRequest, instanceStatusQuery } from '../../workflows/instance-api';
import { germlineInstanceRequest } from '../helpers/instances';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { onTerminal, type Terminal } from '../helpers/terminal';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/computatrum.js');
const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

// The CLI compiles itself again when a source changed since the last build: the first run may take a while.
jest.setTimeout(120_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let port: number;
let germline: string;
let alice: TestAccount;
/** A public instance of `main`, one of `main` private to alice, and a public one of `slow` that streams a word each 150 ms. */
const ids = { pub: '', priv: '', slow: '' };
const terminals: Terminal[] = [];

const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);

const request = (overrides: Partial<InstanceRequest> = {}): InstanceRequest =>
  germlineInstanceRequest(germline, { id: uniqueName('chat'), ...overrides });

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-cli-chat-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  germline = started.name;
  await updateBudget(started.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  const dir = mkdtempSync(path.join(tmpdir(), 'cli-chat-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline}`));
  await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'main' });
  await publishCheckpoint(env.store, `germline/${germline}`, dir, { tag: 'slow' });

  app = await testPlatform(env, germline);
  port = Number(new URL(await app.listen({ port: 0, host: '127.0.0.1' })).port);
  alice = await signUpAccount(app, uniqueName('alice'));

  const launches = {
    pub: request({}),
    priv: request({ visibility: 'private', owner: alice.handle }),
    slow: request({
      image: { repo: `germline/${germline}`, reference: 'slow' },
      command: ['/usr/bin/env', 'ECHO_STREAM_DELAY_MS=150', ...ECHO_INSTANCE],
    }),
  };
  for (const [key, input] of Object.entries(launches)) {
    ids[key as keyof typeof ids] = input.id;
    await launchInstance(env.client, env.taskQueue, input);
  }
  // Ready for the workflow, and recorded so for the platform, which reads the rows.
  await eventually(
    async () => {
      const states = await Promise.all(
        Object.values(ids).map(async (id) => (await instanceHandle(env.client, id).query(instanceStatusQuery)).state),
      );
      if (!states.every((state) => state === 'ready')) return undefined;
      const rows = await env.db.instance.findMany({ where: { id: { in: Object.values(ids) } } });
      return rows.length === 3 && rows.every((row) => row.state === 'ready' && row.endpoint) ? true : undefined;
    },
    'the instances ready and recorded',
    60_000,
  );
});

afterEach(() => {
  for (const terminal of terminals.splice(0)) terminal.close();
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

/** The CLI's environment: this platform by its host and port (no --from), no COMPUTATRUM_TOKEN unless given. */
function cliEnv(token?: string): NodeJS.ProcessEnv {
  const vars: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'cli-chat-data-')),
    PLATFORM_HOST: '127.0.0.1',
    PLATFORM_PORT: String(port),
  };
  delete vars.COMPUTATRUM_TOKEN;
  delete vars.COMPUTATRUM_CONFIG;
  if (token) vars.COMPUTATRUM_TOKEN = token;
  return vars;
}

/** `computatrum chat <args>` with `input` piped to its stdin: its output and exit code, never throwing on a failure. */
function chat(
  args: string[],
  input: string,
  token?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'chat', ...args], { env: cliEnv(token), cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** `computatrum chat <args>` on a terminal. */
function chatOnTerminal(args: string[], token?: string): Terminal {
  const terminal = onTerminal([process.execPath, BIN, 'chat', ...args], { env: cliEnv(token), cwd: ROOT });
  terminals.push(terminal);
  return terminal;
}

/** The exchanges the gateway stored whose messages mention `marker` (with any instance), oldest first, once there are `count`. */
async function exchanges(marker: string, count: number) {
  return eventually(async () => {
    const rows = await env.db.interaction.findMany({
      where: { instanceId: { in: Object.values(ids) } },
      orderBy: { createdAt: 'asc' },
    });
    const mine = rows.filter((row) => JSON.stringify(row.request).includes(marker));
    return mine.length >= count ? mine : undefined;
  }, `${count} exchanges about ${marker}`);
}

const messagesOf = (row: { request: unknown }) => (row.request as { messages: unknown[] }).messages;

test('piped input is one message: the answer is printed, and a public instance needs no token', async () => {
  const marker = uniqueName('piped');
  const said = await chat([ids.pub], `hello ${marker}\nand a second line\n`);
  expect(said).toEqual({ code: 0, stdout: `hello ${marker}\nand a second line\n`, stderr: '' });

  const [row] = await exchanges(marker, 1);
  expect(row).toMatchObject({ instanceId: ids.pub, callerHandle: null });
  expect(messagesOf(row!)).toEqual([{ role: 'user', content: `hello ${marker}\nand a second line` }]);

  // --max-tokens reaches the instance: the echo is cut there.
  expect(await chat([ids.pub, '--max-tokens', '5'], 'hello there')).toMatchObject({ code: 0, stdout: 'hello\n' });
  // Nothing to say is a usage error.
  const nothing = await chat([ids.pub], '  \n');
  expect(nothing).toMatchObject({ code: 2, stdout: '' });
  expect(nothing.stderr).toContain('nothing to say: pipe a message in, or run chat on a terminal');
});

test('on a terminal it is a conversation: each answer streams after its prompt, and each request carries the exchanges before it', async () => {
  const marker = uniqueName('talk');
  const terminal = chatOnTerminal([ids.pub]);
  await terminal.waitFor((screen) => screen.endsWith(`talking to ${ids.pub} (Ctrl-D ends)\n> `), 'the first prompt');

  terminal.type(`hello ${marker}\r`);
  await terminal.waitFor(
    (screen) => screen.endsWith(`> hello ${marker}\nhello ${marker}\n> `),
    'the first answer and the next prompt',
  );
  terminal.type('what did I say?\r');
  await terminal.waitFor(
    (screen) => screen.endsWith('> what did I say?\nwhat did I say?\n> '),
    'the second answer and the next prompt',
  );
  terminal.type('\x04'); // Ctrl-D
  expect(await terminal.exited).toBe(0);
  // The shell's prompt will start on a line of its own.
  expect(terminal.screen().endsWith('> \n')).toBe(true);

  const [first, second] = await exchanges(marker, 2);
  expect([first!.instanceId, second!.instanceId]).toEqual([ids.pub, ids.pub]);
  expect(messagesOf(first!)).toEqual([{ role: 'user', content: `hello ${marker}` }]);
  expect(first!.completion).toBe(`hello ${marker}`);
  expect(messagesOf(second!)).toEqual([
    { role: 'user', content: `hello ${marker}` },
    { role: 'assistant', content: `hello ${marker}` },
    { role: 'user', content: 'what did I say?' },
  ]);
  expect(second!.completion).toBe('what did I say?');
});

test('Ctrl-C stops the answer that is streaming, what came of it stays in the conversation; at the prompt it ends the chat', async () => {
  const marker = uniqueName('long');
  const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
  const terminal = chatOnTerminal([ids.slow]);
  await terminal.waitFor((screen) => screen.endsWith('(Ctrl-D ends)\n> '), 'the first prompt');

  terminal.type(`${marker} ${words}\r`);
  await terminal.waitFor((screen) => screen.includes(`\n${marker} w0 w1 `), 'the answer streaming');
  terminal.type('\x03'); // Ctrl-C
  const stopped = await terminal.waitFor((screen) => screen.endsWith('\n> '), 'the prompt after the answer stopped');
  const shown = stopped.slice(stopped.lastIndexOf(`\n${marker} w0`) + 1, -'\n> '.length);
  expect(shown.length).toBeLessThan(`${marker} ${words}`.length);

  terminal.type('and then?\r');
  await terminal.waitFor((screen) => screen.endsWith('> and then?\nand then?\n> '), 'the next answer');
  terminal.type('\x03'); // Ctrl-C at the prompt
  expect(await terminal.exited).toBe(0);

  const rows = await exchanges(marker, 2);
  const next = rows.find((row) => row.completion === 'and then?')!;
  expect(next.instanceId).toBe(ids.slow);
  const history = messagesOf(next) as Array<{ role: string; content: string }>;
  expect(history).toHaveLength(3);
  expect(history[1]!.role).toBe('assistant');
  // The stopped answer, as it was shown.
  expect(history[1]!.content).toBe(shown);
});

test('a private instance: without a token a clear error and exit 1, with its owner token the answer', async () => {
  const anonymous = await chat([ids.priv], 'a secret');
  expect(anonymous.code).toBe(1);
  expect(anonymous.stdout).toBe('');
  expect(anonymous.stderr).toContain(`instance ${ids.priv} is private`);
  expect(anonymous.stderr).toContain('set COMPUTATRUM_TOKEN to an API token');

  const marker = uniqueName('secret');
  expect(await chat([ids.priv], `a ${marker}`, tokenOf(alice))).toEqual({
    code: 0,
    stdout: `a ${marker}\n`,
    stderr: '',
  });
  const [row] = await exchanges(marker, 1);
  expect(row).toMatchObject({ instanceId: ids.priv, callerHandle: alice.handle });

  // A token the platform does not know is refused, saying what to do, even for a public instance.
  const revoked = await chat([ids.pub], 'hello', 'ctr_revoked-or-never-made');
  expect(revoked.code).toBe(1);
  expect(revoked.stderr).toContain('the API token is unknown or revoked');
  expect(revoked.stderr).toContain('set COMPUTATRUM_TOKEN');
});

test('an unknown instance, an image without a running instance and an unreachable platform each say so, exit 1', async () => {
  const unknown = await chat(['no-such-instance'], 'hello');
  expect(unknown).toMatchObject({ code: 1, stdout: '' });
  expect(unknown.stderr).toContain('the model `no-such-instance` does not exist: name an instance id or an image');

  const nowhere = await chat([`germline/${germline}:nowhere`], 'hello');
  expect(nowhere).toMatchObject({ code: 1, stdout: '' });
  expect(nowhere.stderr).toContain(`no running instance of germline/${germline}:nowhere that you may use`);

  const unreachable = await chat([ids.pub, '--from', `http://127.0.0.1:${await freePort()}`], 'hello');
  expect(unreachable).toMatchObject({ code: 1, stdout: '' });
  expect(unreachable.stderr).toMatch(
    /cannot reach the platform at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\): is `computatrum up` running/,
  );
});

test('an image reference is routed to its running public instance (and, for alice, to her own)', async () => {
  const marker = uniqueName('routed');
  const url = `http://127.0.0.1:${port}`;
  expect(await chat([`germline/${germline}:main`, '--from', url], `to ${marker}`)).toEqual({
    code: 0,
    stdout: `to ${marker}\n`,
    stderr: '',
  });
  const [anonymous] = await exchanges(marker, 1);
  expect(anonymous).toMatchObject({ instanceId: ids.pub, callerHandle: null });

  const hers = uniqueName('routed');
  expect(await chat([`germline/${germline}:main`], `to ${hers}`, tokenOf(alice))).toMatchObject({
    code: 0,
    stdout: `to ${hers}\n`,
  });
  const [own] = await exchanges(hers, 1);
  expect(own).toMatchObject({ instanceId: ids.priv, callerHandle: alice.handle });
});

test('answers as instances may send them, passed on by the gateway as they are: CRLF-framed events and one JSON answer print; a stream cut before [DONE] fails', async () => {
  // A server in the instance's place, reached with --from: /<how>/v1/chat/completions answers as <how> says.
  const event = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}`;
  const odd = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const how = req.url!.split('/')[1];
      if (how === 'json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'in one piece' } }] }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (how === 'crlf') {
        // A \r\n split across writes, as a network may cut it.
        res.write(`${event('framed ')}\r`);
        res.write(`\n\r\n${event('with CRLF')}\r\n\r\n`);
        res.end('data: [DONE]\r\n\r\n');
      } else res.end(`${event('cut ')}\n\n${event('short')}\n\n`);
    });
  });
  const url = await new Promise<string>((resolve) =>
    odd.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(odd.address() as { port: number }).port}`)),
  );
  try {
    expect(await chat(['m', '--from', `${url}/crlf`], 'hi')).toEqual({
      code: 0,
      stdout: 'framed with CRLF\n',
      stderr: '',
    });
    expect(await chat(['m', '--from', `${url}/json`], 'hi')).toEqual({ code: 0, stdout: 'in one piece\n', stderr: '' });
    const cut = await chat(['m', '--from', `${url}/cut`], 'hi');
    expect(cut).toMatchObject({ code: 1, stdout: 'cut short' });
    expect(cut.stderr).toContain('the answer broke off before its end');
  } finally {
    await new Promise((resolve) => odd.close(resolve));
  }
});
