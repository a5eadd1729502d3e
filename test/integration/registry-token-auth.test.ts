// A registry that hands out tokens, as GHCR, Docker Hub, Quay and Harbor do: Debian's docker-registry
// (CNCF Distribution 2.8) with `auth: token`, trusting the JWTs of a token server written for the
// test (real protocol: Basic credentials or none, `scope` per repository, RS256 with an x5c chain).
// Who may do what: anyone pulls germline/*; `ops` pushes there; each trainer pushes and pulls
// trainers/<self>/* only.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createLogger } from '../../runtime/logging';
import { forkCheckpoint, publishCheckpoint } from '../../store/checkpoint';
import { pullCheckpoint } from '../../store/pull';
import { RegistryStore } from '../../store/registry';
import { RegistryAuth, pushScope } from '../../store/registry-auth';
import { OCI_MANIFEST } from '../../store/types';
import { safetensorsOf } from '../helpers/content';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startTokenServer, type TokenServer } from '../helpers/token-server';

const ROOT = path.resolve(__dirname, '../..');
const run = promisify(execFile);
const PASSWORDS = { ops: 'ops-s3cret-pw', alice: 'alice-s3cret-pw', bob: 'bob-s3cret-pw' };
/** Tokens live this long; the client stops using one 10 s before. */
const EXPIRES_IN_S = 120;

let tokens: TokenServer;
let publicDigest: string;
let publicSource: string;
let bobSource: string;
let registry: TestRegistry;
/** Every log line the stores wrote, at trace level, through the daemon's own logger (with its redaction). */
const logLines: string[] = [];
const logger = createLogger({ level: 'trace', pretty: false }, { write: (line: string) => logLines.push(line) });

beforeAll(async () => {
  tokens = await startTokenServer({
    users: PASSWORDS,
    expiresIn: EXPIRES_IN_S,
    grant: (account, type, name) => {
      if (type !== 'repository') return [];
      if (name.startsWith('germline/')) return account === 'ops' ? ['pull', 'push'] : ['pull'];
      return account !== undefined && name.startsWith(`trainers/${account}/`) ? ['pull', 'push'] : [];
    },
  });
  registry = await startRegistry({ auth: tokens.registryAuth() });
  // A public checkpoint the operator published, and a private one of bob's.
  publicSource = checkpointDir();
  publicDigest = (await publishCheckpoint(storeAs('ops'), 'germline/computatrum', publicSource, { tag: 'main' }))
    .digest;
  bobSource = checkpointDir();
  await publishCheckpoint(storeAs('bob'), 'trainers/bob/private', bobSource, { tag: 'main' });
});

afterAll(async () => {
  await registry?.stop();
  await tokens?.stop();
});

const storeAs = (user?: keyof typeof PASSWORDS, password?: string, now?: () => number) =>
  new RegistryStore({
    url: registry.url,
    chunkSize: 256 * 1024,
    logger,
    ...(user ? { username: user, password: password ?? PASSWORDS[user] } : {}),
    ...(now ? { now } : {}),
  });

function checkpointDir(bytes = 600 * 1024): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-src-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(randomBytes(bytes)));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ layers: 2, seed: randomBytes(4).toString('hex') }));
  return dir;
}

function expectSameFiles(source: string, pulled: string): void {
  for (const file of ['model.safetensors', 'config.json'])
    expect(readFileSync(path.join(pulled, file)).equals(readFileSync(path.join(source, file)))).toBe(true);
}

const newRequests = (since: number) => tokens.requests.slice(since);

test('with credentials a trainer pushes and pulls a checkpoint through token auth, her password checked by the token service', async () => {
  const since = tokens.requests.length;
  const source = checkpointDir(1024 * 1024); // over the chunk size: POST, PATCHes, PUT, all under one token
  const alice = storeAs('alice');
  const published = await publishCheckpoint(alice, 'trainers/alice/coder', source, { tag: 'main' });
  expect(await alice.listTags('trainers/alice/coder')).toEqual(['main']);

  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-pull-'));
  const auth = new RegistryAuth({ url: registry.url, username: 'alice', password: PASSWORDS.alice });
  const pulled = await pullCheckpoint({
    baseUrl: registry.url,
    repo: 'trainers/alice/coder',
    reference: 'main',
    dir,
    auth,
  });
  expect(pulled.digest).toBe(published.digest);
  expectSameFiles(source, dir);

  // The token server checked alice's password and granted what she asked for, on her repository only.
  expect(newRequests(since).length).toBeGreaterThan(0);
  for (const request of newRequests(since)) {
    expect(request).toMatchObject({ account: 'alice', service: tokens.service, status: 200 });
    expect(request.granted).toEqual(request.scopes);
    for (const scope of request.scopes) expect(scope).toMatch(/^repository:trainers\/alice\/coder:pull(,push)?$/);
  }
});

test('anyone pulls a public repository anonymously, and is refused a write there and a private read, saying what to set', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-anon-'));
  const since = tokens.requests.length;
  const pulled = await pullCheckpoint({ baseUrl: registry.url, repo: 'germline/computatrum', reference: 'main', dir });
  expect(pulled.digest).toBe(publicDigest);
  expectSameFiles(publicSource, dir);
  expect(newRequests(since)).toEqual([
    expect.objectContaining({ account: undefined, scopes: ['repository:germline/computatrum:pull'], status: 200 }),
  ]);

  const anonymous = storeAs();
  const write = publishCheckpoint(anonymous, 'germline/computatrum', checkpointDir(), { tag: 'main' });
  await expect(write).rejects.toMatchObject({ code: 'DENIED' });
  await expect(write).rejects.toThrow(/grants anonymous callers no access to that.*COMPUTATRUM_REGISTRY_USERNAME/);

  const privateRead = pullCheckpoint({
    baseUrl: registry.url,
    repo: 'trainers/alice/coder',
    reference: 'main',
    dir: mkdtempSync(path.join(tmpdir(), 'token-auth-anon-private-')),
  });
  await expect(privateRead).rejects.toMatchObject({ code: 'DENIED' });
  await expect(privateRead).rejects.toThrow(/refused access to trainers\/alice\/coder.*anonymous/);
  expect((await storeAs('ops').getManifest('germline/computatrum', 'main'))?.digest).toBe(publicDigest);
});

test('a wrong password is refused by the token service, and the error says which registry, which realm, and what to set', async () => {
  const wrong = storeAs('alice', 'not-her-password');
  const attempt = wrong.getManifest('trainers/alice/coder', 'main');
  await expect(attempt).rejects.toMatchObject({ code: 'DENIED' });
  const message = await attempt.catch((error: Error) => error.message);
  expect(message).toContain(
    `the token service ${tokens.realm} of registry ${registry.url} refused the credentials of user "alice"`,
  );
  expect(message).toMatch(/COMPUTATRUM_REGISTRY_USERNAME and COMPUTATRUM_REGISTRY_PASSWORD/);
  expect(message).not.toContain('not-her-password');
  expect(tokens.requests.at(-1)).toMatchObject({ account: 'alice', status: 401 });
});

test("a scope the token service does not grant is refused clearly: alice cannot push to bob's repository, nor fork from it", async () => {
  const alice = storeAs('alice');

  const push = publishCheckpoint(alice, 'trainers/bob/private', checkpointDir(), { tag: 'main' });
  await expect(push).rejects.toMatchObject({ code: 'DENIED' });
  await expect(push).rejects.toThrow(
    /the token that .* issued to user "alice" does not grant that \(repository:trainers\/bob\/private:pull/,
  );

  const fork = forkCheckpoint(
    alice,
    { repo: 'trainers/bob/private', reference: 'main' },
    { repo: 'trainers/alice/stolen', branch: 'main' },
  );
  await expect(fork).rejects.toMatchObject({ code: 'DENIED' });
  await expect(fork).rejects.toThrow(/issued to user "alice" does not grant that/);
  // bob's branch still points at his own checkpoint
  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-bob-'));
  const bob = new RegistryAuth({ url: registry.url, username: 'bob', password: PASSWORDS.bob });
  await pullCheckpoint({ baseUrl: registry.url, repo: 'trainers/bob/private', reference: 'main', dir, auth: bob });
  expectSameFiles(bobSource, dir);
});

test('a token is reused until it expires (less a margin), then exchanged again', async () => {
  let now = Date.now();
  const alice = storeAs('alice', undefined, () => now);
  const count = (since: number) => newRequests(since).filter((r) => r.account === 'alice').length;
  const since = tokens.requests.length;

  const pushed = await publishCheckpoint(alice, 'trainers/alice/clock', checkpointDir(), { tag: 'main' });
  expect(count(since)).toBe(1); // one pull,push token for every HEAD, upload and manifest of the push
  for (let i = 0; i < 3; i++) {
    expect((await alice.getManifest('trainers/alice/clock', 'main'))?.digest).toBe(pushed.digest);
    expect(await alice.listTags('trainers/alice/clock')).toEqual(['main']);
  }
  expect(count(since)).toBe(1); // the push token covers reading

  now += (EXPIRES_IN_S - 11) * 1000;
  expect(await alice.hasBlob('trainers/alice/clock', pushed.manifest.config.digest)).toBe(true);
  expect(count(since)).toBe(1);

  now += 2_000; // within 10 s of its expiry: not sent any more
  expect(await alice.hasBlob('trainers/alice/clock', pushed.manifest.config.digest)).toBe(true);
  expect(count(since)).toBe(2);
  expect(tokens.requests.at(-1)).toMatchObject({ scopes: ['repository:trainers/alice/clock:pull'], status: 200 });
  await alice.getManifest('trainers/alice/clock', 'main');
  expect(count(since)).toBe(2);
});

test('a token service answering only `access_token` and no `expires_in` works, its tokens kept the spec’s 60 s', async () => {
  Object.assign(tokens.answer, { fields: ['access_token'], expiresIn: false });
  try {
    let now = Date.now();
    const bob = storeAs('bob', undefined, () => now);
    const count = (since: number) => newRequests(since).filter((r) => r.account === 'bob').length;
    const since = tokens.requests.length;
    expect(await bob.listTags('trainers/bob/private')).toEqual(['main']);
    now += 49_000;
    expect(await bob.listTags('trainers/bob/private')).toEqual(['main']);
    expect(count(since)).toBe(1);
    now += 2_000; // 60 s less the margin
    expect(await bob.listTags('trainers/bob/private')).toEqual(['main']);
    expect(count(since)).toBe(2);
  } finally {
    Object.assign(tokens.answer, { fields: ['token', 'access_token'], expiresIn: true });
  }
});

test('a cached token the registry refuses (revoked, expired early) is exchanged again and the request retried once', async () => {
  let now = Date.now();
  const bob = storeAs('bob', undefined, () => now);
  expect(await bob.listTags('trainers/bob/private')).toEqual(['main']);
  const since = tokens.requests.length;
  now += EXPIRES_IN_S * 1000;
  tokens.answer.alreadyExpired = 1;
  expect(await bob.listTags('trainers/bob/private')).toEqual(['main']);
  expect(newRequests(since).map((r) => r.status)).toEqual([200, 200]);

  // The same half way through a pull: the files' downloads are refused, get a new token, and finish.
  const auth = new RegistryAuth({ url: registry.url, username: 'bob', password: PASSWORDS.bob, now: () => now });
  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-renew-'));
  const before = tokens.requests.length;
  await pullCheckpoint({
    baseUrl: registry.url,
    repo: 'trainers/bob/private',
    reference: 'main',
    dir,
    auth,
    onManifest: () => {
      now += EXPIRES_IN_S * 1000;
      tokens.answer.alreadyExpired = 1;
    },
  });
  expectSameFiles(bobSource, dir);
  expect(newRequests(before).map((r) => r.status)).toEqual([200, 200, 200]);
});

test('a fork mounts the blobs across repositories under token auth, with one token for both repositories', async () => {
  const alice = storeAs('alice');
  const since = tokens.requests.length;
  const forked = await forkCheckpoint(
    alice,
    { repo: 'germline/computatrum', reference: 'main' },
    { repo: 'trainers/alice/fork', branch: 'main' },
  );
  expect(forked).toBe(publicDigest);
  expect(newRequests(since)).toContainEqual(
    expect.objectContaining({
      account: 'alice',
      scopes: ['repository:germline/computatrum:pull', 'repository:trainers/alice/fork:pull,push'],
      granted: ['repository:germline/computatrum:pull', 'repository:trainers/alice/fork:pull,push'],
    }),
  );
  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-fork-'));
  const auth = new RegistryAuth({ url: registry.url, username: 'alice', password: PASSWORDS.alice });
  await pullCheckpoint({ baseUrl: registry.url, repo: 'trainers/alice/fork', reference: 'main', dir, auth });
  expectSameFiles(publicSource, dir);
});

test('a body that can be sent only once (a stream) goes out with a token on the first try, not into a 401', async () => {
  const config = Buffer.from('{}');
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  await storeAs('alice').putBlobBytes('trainers/alice/stream', config, digest);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length },
      layers: [],
    }),
  );
  // A client that has not met this registry yet: its first request is the streamed one.
  const auth = new RegistryAuth({ url: registry.url, username: 'alice', password: PASSWORDS.alice });
  const res = await auth.fetch(
    `${registry.url}/v2/trainers/alice/stream/manifests/streamed`,
    { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: Readable.from([manifest]), duplex: 'half' },
    [pushScope('trainers/alice/stream')],
  );
  await res.body?.cancel();
  expect(res.status).toBe(201);
  expect(await storeAs('alice').listTags('trainers/alice/stream')).toEqual(['streamed']);
});

test('a pod pulls with `computatrum pull --from <registry>` and the login from its env; a wrong one says what to fix', async () => {
  const env = (password: string): NodeJS.ProcessEnv => {
    const environment: NodeJS.ProcessEnv = {
      ...process.env,
      LOG_LEVEL: 'trace',
      LOG_PRETTY: 'false',
      COMPUTATRUM_STORE: 'registry',
      COMPUTATRUM_REGISTRY_URL: registry.url,
      COMPUTATRUM_REGISTRY_USERNAME: 'alice',
      COMPUTATRUM_REGISTRY_PASSWORD: password,
    };
    delete environment.COMPUTATRUM_TOKEN;
    return environment;
  };
  const pull = async (password: string, dir: string) => {
    const args = [
      path.join(ROOT, 'bin/computatrum.js'),
      'pull',
      'trainers/alice/fork:main',
      dir,
      '--from',
      registry.url,
    ];
    try {
      const { stdout, stderr } = await run(process.execPath, args, { env: env(password), cwd: ROOT });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  const dir = mkdtempSync(path.join(tmpdir(), 'token-auth-cli-'));
  const since = tokens.requests.length;
  const pulled = await pull(PASSWORDS.alice, dir);
  expect(pulled).toMatchObject({ code: 0, stdout: expect.stringContaining('2 files, ') });
  expectSameFiles(publicSource, dir);
  expect(newRequests(since)).toEqual([
    expect.objectContaining({ account: 'alice', scopes: ['repository:trainers/alice/fork:pull'], status: 200 }),
  ]);

  const refused = await pull('a-wrong-pw', mkdtempSync(path.join(tmpdir(), 'token-auth-cli-wrong-')));
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/refused the credentials of user "alice".*COMPUTATRUM_REGISTRY_PASSWORD/);
  for (const output of [pulled.stdout, pulled.stderr, refused.stdout, refused.stderr]) {
    expect(output).not.toContain(PASSWORDS.alice);
    expect(output).not.toContain('a-wrong-pw');
    for (const token of tokens.issued) expect(output).not.toContain(token);
  }
});

test('no password, Basic login or token ever reaches the logs, which do record each exchange', () => {
  const logs = logLines.join('');
  expect(logs).toContain('registry token issued');
  expect(logs).toContain(tokens.realm);
  const secrets = [
    ...Object.values(PASSWORDS),
    'not-her-password',
    ...Object.entries(PASSWORDS).map(([user, password]) => Buffer.from(`${user}:${password}`).toString('base64')),
    ...tokens.issued,
  ];
  expect(tokens.issued.length).toBeGreaterThan(3);
  for (const secret of secrets) expect(logs).not.toContain(secret);
});
