// `computatrum pull --from <registry>` as an instance pod's init container runs it: the configured
// registry (COMPUTATRUM_STORE=registry, its login from the credentials Secret's env) gets the login;
// any other address never sees it. The registry is a real one (docker-registry) behind a proxy that
// demands Basic authentication, as a registry with htpasswd does.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { publishCheckpoint } from '../../store/checkpoint';
import { RegistryStore } from '../../store/registry';
import { safetensorsOf } from '../helpers/content';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const ROOT = path.resolve(__dirname, '../..');
const run = promisify(execFile);
const LOGIN = `Basic ${Buffer.from('puller:s3cret-pw').toString('base64')}`;

let registry: TestRegistry;
let guarded: http.Server;
let guardedUrl: string;
const seen: Array<string | undefined> = [];

beforeAll(async () => {
  registry = await startRegistry();
  guarded = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    if (req.headers.authorization !== LOGIN) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="registry"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }));
      return;
    }
    const upstream = http.request(
      `${registry.url}${req.url}`,
      { method: req.method, headers: { ...req.headers, host: new URL(registry.url).host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => guarded.listen(0, '127.0.0.1', resolve));
  guardedUrl = `http://127.0.0.1:${(guarded.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => guarded.close(resolve));
  await registry.stop();
});

async function pull(env: NodeJS.ProcessEnv, ...args: string[]) {
  const environment: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent', ...env };
  delete environment.COMPUTATRUM_TOKEN;
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'bin/computatrum.js'), 'pull', ...args], {
      env: environment,
      cwd: ROOT,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('the configured registry gets its login (the password from a mounted file too); another address never does', async () => {
  const weights = safetensorsOf(randomBytes(50_000));
  const source = mkdtempSync(path.join(tmpdir(), 'computatrum-login-src-'));
  writeFileSync(path.join(source, 'model.safetensors'), weights);
  const { digest } = await publishCheckpoint(new RegistryStore({ url: registry.url }), 'germline/login', source);
  const ref = `germline/login@${digest}`;
  const store = { COMPUTATRUM_STORE: 'registry', COMPUTATRUM_REGISTRY_URL: guardedUrl };

  const withPassword = mkdtempSync(path.join(tmpdir(), 'computatrum-login-a-'));
  const pulled = await pull(
    { ...store, COMPUTATRUM_REGISTRY_USERNAME: 'puller', COMPUTATRUM_REGISTRY_PASSWORD: 's3cret-pw' },
    ref,
    withPassword,
    '--from',
    guardedUrl,
  );
  expect(pulled).toMatchObject({ code: 0, stdout: expect.stringContaining('1 files, ') });
  expect(readFileSync(path.join(withPassword, 'model.safetensors')).equals(weights)).toBe(true);

  const passwordFile = path.join(mkdtempSync(path.join(tmpdir(), 'computatrum-login-secret-')), 'password');
  writeFileSync(passwordFile, 's3cret-pw\n');
  const fromFile = await pull(
    { ...store, COMPUTATRUM_REGISTRY_USERNAME: 'puller', COMPUTATRUM_REGISTRY_PASSWORD_FILE: passwordFile },
    ref,
    mkdtempSync(path.join(tmpdir(), 'computatrum-login-b-')),
    '--from',
    guardedUrl,
  );
  expect(fromFile.code).toBe(0);

  // The same credentials configured for another registry are not sent here: refused, and nothing leaks.
  seen.length = 0;
  const elsewhere = await pull(
    {
      COMPUTATRUM_STORE: 'registry',
      COMPUTATRUM_REGISTRY_URL: registry.url,
      COMPUTATRUM_REGISTRY_USERNAME: 'puller',
      COMPUTATRUM_REGISTRY_PASSWORD: 's3cret-pw',
    },
    ref,
    mkdtempSync(path.join(tmpdir(), 'computatrum-login-c-')),
    '--from',
    guardedUrl,
  );
  expect(elsewhere.code).not.toBe(0);
  expect(seen.length).toBeGreaterThan(0);
  expect(seen.every((header) => header === undefined)).toBe(true);
  expect(elsewhere.stderr).not.toContain('s3cret-pw');
});
