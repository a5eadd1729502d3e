// The `computatrum` CLI as a trainer uses it from their own machine: the real command in a child
// process, talking to a real platform on loopback (PostgreSQL, an OCI layout store) through the
// GraphQL API and the recordings upload, as the account of COMPUTATRUM_TOKEN.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { publishCheckpoint } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { buildPlatform } from '../../platform/server';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { signUpAccount } from '../helpers/accounts';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';
import { safetensorsOf } from '../helpers/content';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/computatrum.js');
const execute = promisify(execFile);

let app: FastifyInstance;
let db: Database;
let store: LayoutStore;
let url: string;
const germline = uniqueName('cligerm');
const image = `germline/${germline}`;
const handle = uniqueName('tia');
let token: string;

jest.setTimeout(120_000);

beforeAll(async () => {
  db = openDatabase(testGlobals().databaseUrl);
  store = await new LayoutStore(path.join(mkdtempSync(path.join(tmpdir(), 'cli-platform-')), 'store')).init();
  const dir = mkdtempSync(path.join(tmpdir(), 'cli-model-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('the germline today'));
  await publishCheckpoint(store, image, dir, { tag: 'gpc-2026-11-30' });
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    store,
    db,
    rateLimitPerMinute: 10_000,
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  token = (await signUpAccount(app, handle)).token.authorization!.slice('Bearer '.length);
});

afterAll(async () => {
  await app?.close();
  await db?.$disconnect();
});

/** Runs the CLI; resolves with its output and exit code, never throws on a non-zero exit. */
async function cli(
  args: string[],
  tokenValue: string | null = token,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'cli-data-')),
  };
  delete env.COMPUTATRUM_TOKEN;
  if (tokenValue) env.COMPUTATRUM_TOKEN = tokenValue;
  try {
    const { stdout, stderr } = await execute(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('a trainer forks on the platform, discusses, records, reports and lists a breed, all through the API', async () => {
  expect((await cli(['whoami', '--from', url])).stdout.trim()).toBe(`${handle} (trainer)`);

  const fork = await cli(['fork', `${image}:gpc-2026-11-30`, `trainers/${handle}/coder:main`, '--from', url]);
  expect(fork).toMatchObject({ code: 0, stdout: expect.stringContaining('no bytes copied') });
  expect(await store.listTags(`trainers/${handle}/coder`)).toEqual(['main']);
  // The platform decides where a trainer may write, not the CLI.
  const elsewhere = await cli(['fork', `${image}:gpc-2026-11-30`, 'trainers/someone-else/coder:main', '--from', url]);
  expect(elsewhere.code).toBe(1);
  expect(elsewhere.stderr).toContain(
    `refused by the platform (FORBIDDEN): you can fork only under trainers/${handle}/, not trainers/someone-else/coder`,
  );

  const discussed = await cli([
    'discuss',
    `${image}:gpc-2026-11-30`,
    '--title',
    'Good at regex',
    '--body',
    'It wrote a lexer.',
    '--from',
    url,
  ]);
  const threadId = /thread (\S+) started/.exec(discussed.stdout)![1]!;
  expect((await cli(['comment', threadId, 'Mine too.', '--from', url])).code).toBe(0);
  const threads = await cli(['threads', image, '--from', url], null);
  expect(threads.stdout).toContain('# Good at regex (about gpc-2026-11-30)');
  expect(threads.stdout).toMatch(new RegExp(`${handle}, .+: It wrote a lexer\\.\\n\\s+${handle}, .+: Mine too\\.`));

  const transcript = path.join(mkdtempSync(path.join(tmpdir(), 'cli-rec-')), 'session.txt');
  writeFileSync(transcript, '> write a lexer\nsure: ...');
  const recorded = await cli([
    'record',
    `${image}:gpc-2026-11-30`,
    transcript,
    '--title',
    'Lexer session',
    '--type',
    'text/plain',
    '--from',
    url,
  ]);
  expect(recorded).toMatchObject({ code: 0, stdout: expect.stringContaining('attached to') });
  const downloadUrl = /download: (\S+)/.exec(recorded.stdout)![1]!;
  expect(await (await fetch(`${url}${downloadUrl}`)).text()).toBe('> write a lexer\nsure: ...');

  expect((await cli(['report', `${image}:gpc-2026-11-30`, '--reason', 'it praised itself', '--from', url])).code).toBe(
    0,
  );
  const published = await cli([
    'publish',
    `trainers/${handle}/coder`,
    '--title',
    'Coder',
    '--price',
    '4.50',
    '--from',
    url,
  ]);
  expect(published.stdout.trim()).toBe(`trainers/${handle}/coder is listed, for 4.50 USD`);
  const breeds = await cli(['breeds', '--from', url], null);
  expect(breeds.stdout).toMatch(new RegExp(`trainers/${handle}/coder\\s+Coder\\s+${handle}\\s+4\\.50 USD`));
  const images = await cli(['images', '--search', handle, '--from', url], null);
  expect(images.stdout).toMatch(new RegExp(`trainers/${handle}/coder\\s+trainer\\s+1\\s+main`));
});

test('no token, a revoked token and an unreachable platform each say what to do', async () => {
  const noToken = await cli(['discuss', image, '--title', 't', '--body', 'b', '--from', url], null);
  expect(noToken.code).toBe(1);
  expect(noToken.stderr).toContain('this needs your account: create an API token');
  const revoked = await cli(['whoami', '--from', url], 'ctr_revoked-or-never-made');
  expect(revoked.stderr).toContain('does not know this API token (COMPUTATRUM_TOKEN)');
  const nowhere = await cli(['breeds', '--from', `http://127.0.0.1:${await freePort()}`]);
  expect(nowhere.code).toBe(1);
  expect(nowhere.stderr).toMatch(
    /cannot reach the platform at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\): is `computatrum up` running/,
  );
});

test("training on credit goes through the platform, which refuses what it does not offer; the platform's own trainer is not negotiable", async () => {
  const options = await cli([
    'train',
    '--on-credit',
    '--repo',
    `trainers/${handle}/x`,
    '--branch',
    'main',
    '--max-cost',
    '1.00',
    '--runner',
    'kubernetes',
    '--from',
    url,
  ]);
  expect(options).toMatchObject({
    code: 2,
    stderr: expect.stringContaining("--on-credit runs the platform's own trainer: leave out --runner"),
  });
  // This platform runs without Temporal: the API says training is not offered here.
  const credit = await cli(['credit', '--from', url]);
  expect(credit.stderr).toContain(
    'refused by the platform (UNAVAILABLE): training through the platform is not configured',
  );
});
