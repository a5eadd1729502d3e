// The registry backend of the checkpoint store against a real OCI Distribution registry
// (Debian's docker-registry, CNCF Distribution v2) on loopback.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { RegistryStore } from '../../store/registry';
import {
  MODEL_ARTIFACT,
  MODEL_CONFIG,
  MODEL_WEIGHT_LAYER,
  OCI_MANIFEST,
  StoreError,
  type ImageManifest,
} from '../../store/types';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry';

const MB = 1024 * 1024;

let registry: TestRegistry;
let store: RegistryStore;
let workDir: string;

beforeAll(async () => {
  registry = await startRegistry();
  store = new RegistryStore({ url: registry.url, chunkSize: MB });
  workDir = await mkdtemp(path.join(tmpdir(), 'registry-store-test-'));
});

afterAll(async () => {
  await registry?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

afterEach(() => {
  jest.restoreAllMocks();
});

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

let fileCount = 0;
async function someFile(size: number): Promise<{ file: string; bytes: Buffer; digest: string; size: number }> {
  const bytes = randomBytes(size);
  const file = path.join(workDir, `blob-${fileCount++}.bin`);
  await writeFile(file, bytes);
  return { file, bytes, digest: sha256(bytes), size };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Total bytes of all files under `dir`. */
async function treeSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/**
 * Upload sessions of `repo` the registry still holds: distribution keeps a folder per session; a
 * cancelled one loses its data and startedat files (2.8.2 leaves a stray hashstate file behind).
 */
async function liveUploads(repo: string): Promise<string[]> {
  const dir = path.join(registry.storageDir, 'docker/registry/v2/repositories', repo, '_uploads');
  const sessions = await readdir(dir).catch(() => []);
  const live = await Promise.all(
    sessions.map(async (id) => ((await readdir(path.join(dir, id))).includes('startedat') ? id : undefined)),
  );
  return live.filter((id) => id !== undefined);
}

/** Counts the requests `store` makes, by method, while still making them for real. */
function countRequests(): Record<string, number> {
  const counts: Record<string, number> = {};
  const realFetch = globalThis.fetch;
  jest.spyOn(globalThis, 'fetch').mockImplementation((input, init) => {
    const method = init?.method ?? 'GET';
    counts[method] = (counts[method] ?? 0) + 1;
    return realFetch(input, init);
  });
  return counts;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * A pass-through proxy to the test registry that turns cross-repository mounts down the way a
 * registry does when it cannot mount: it opens a plain upload session instead (202).
 */
async function mountRefusingProxy(
  target: string,
): Promise<{ url: string; mountRequests: () => number; close(): Promise<void> }> {
  const upstream = new URL(target);
  let mountRequests = 0;
  const server = http.createServer((req, res) => {
    let requestPath = req.url ?? '/';
    if (req.method === 'POST' && requestPath.includes('mount=')) {
      mountRequests++;
      requestPath = requestPath.replace(/\?.*$/, '');
    }
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: requestPath,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', (error) => res.destroy(error));
    req.pipe(forward);
  });
  const url = await listen(server);
  return { url, mountRequests: () => mountRequests, close: () => close(server) };
}

describe('blobs', () => {
  test('a 5 MB file goes up in 1 MB chunks, a small one in one piece, and both read back whole and by range', async () => {
    const big = await someFile(5 * MB + 123);
    const small = await someFile(1000);
    const requests = countRequests();

    expect(await store.putBlobFile('trainers/alice/breed', big.file, big.digest, big.size)).toEqual({
      written: big.size,
    });
    expect(requests.PATCH).toBe(6);
    expect(await store.putBlobFile('germline/computatrum', small.file, small.digest, small.size)).toEqual({
      written: small.size,
    });
    expect(requests.PATCH).toBe(6); // the small one went up with its final PUT

    expect(await store.hasBlob('trainers/alice/breed', big.digest)).toBe(true);
    expect(await store.hasBlob('germline/computatrum', small.digest)).toBe(true);
    expect(await store.blobSize('trainers/alice/breed', big.digest)).toBe(big.size);

    const whole = await store.openBlob('trainers/alice/breed', big.digest);
    expect(whole.size).toBe(big.size);
    expect((await readAll(whole.stream)).equals(big.bytes)).toBe(true);
    const smallWhole = await store.openBlob('germline/computatrum', small.digest);
    expect((await readAll(smallWhole.stream)).equals(small.bytes)).toBe(true);

    const middle = await store.openBlob('trainers/alice/breed', big.digest, { start: MB - 7, end: 3 * MB + 11 });
    expect(middle.size).toBe(big.size);
    expect((await readAll(middle.stream)).equals(big.bytes.subarray(MB - 7, 3 * MB + 12))).toBe(true);
    const tail = await store.openBlob('trainers/alice/breed', big.digest, { start: big.size - 10 });
    expect((await readAll(tail.stream)).equals(big.bytes.subarray(big.size - 10))).toBe(true);
    const pastTheEnd = await store.openBlob('trainers/alice/breed', big.digest, {
      start: big.size - 3,
      end: big.size + 100,
    });
    expect((await readAll(pastTheEnd.stream)).equals(big.bytes.subarray(big.size - 3))).toBe(true);
    await expect(store.openBlob('trainers/alice/breed', big.digest, { start: big.size + 1 })).rejects.toThrow(
      /answered 416/,
    );
  });

  test('pushing a blob the repository holds already writes nothing', async () => {
    const blob = await someFile(2 * MB);
    expect(await store.putBlobFile('germline/computatrum', blob.file, blob.digest, blob.size)).toEqual({
      written: blob.size,
    });
    expect(await store.putBlobFile('germline/computatrum', blob.file, blob.digest, blob.size)).toEqual({ written: 0 });
    expect(await store.putBlobBytes('germline/computatrum', blob.bytes, blob.digest)).toEqual({ written: 0 });

    const card = Buffer.from('# a model card\n');
    expect(await store.putBlobBytes('germline/computatrum', card, sha256(card))).toEqual({ written: card.length });
    expect(await store.putBlobBytes('germline/computatrum', card, sha256(card))).toEqual({ written: 0 });
  });

  test.each([
    // docker-registry 2.8 keeps a failed one-piece upload's bytes where its session state no longer
    // matches them, so the session cannot be cancelled and waits for the registry's upload purging.
    ['in one piece', 1000, false],
    ['in chunks', 3 * MB, true],
  ])(
    'a file whose content does not match its digest is refused (%s) and nothing is stored',
    async (_how, size, sessionCancelled) => {
      const blob = await someFile(size);
      const claimed = sha256(randomBytes(16));
      const repo = `germline/mismatch-${size}`;

      const push = store.putBlobFile(repo, blob.file, claimed, blob.size);
      await expect(push).rejects.toBeInstanceOf(StoreError);
      await expect(push).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
      await expect(push).rejects.toThrow(blob.file);
      await expect(push).rejects.toThrow(claimed);

      expect(await store.hasBlob(repo, claimed)).toBe(false);
      expect(await store.hasBlob(repo, blob.digest)).toBe(false);
      if (sessionCancelled) expect(await liveUploads(repo)).toEqual([]);
    },
  );

  test('bytes that do not match their digest are refused', async () => {
    const bytes = Buffer.from('{"not":"what was hashed"}');
    const claimed = sha256(Buffer.from('something else'));
    const push = store.putBlobBytes('germline/computatrum', bytes, claimed);
    await expect(push).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    await expect(push).rejects.toThrow(claimed);
    expect(await store.hasBlob('germline/computatrum', claimed)).toBe(false);
  });

  test('a blob of the wrong size is refused before anything is sent', async () => {
    const blob = await someFile(100);
    await expect(store.putBlobFile('germline/computatrum', blob.file, blob.digest, 101)).rejects.toMatchObject({
      code: 'DIGEST_INVALID',
    });
    expect(await store.hasBlob('germline/computatrum', blob.digest)).toBe(false);
  });

  test('mounting makes a blob of one repository available in another without copying its bytes', async () => {
    const blob = await someFile(2 * MB);
    await store.putBlobFile('trainers/alice/breed', blob.file, blob.digest, blob.size);
    expect(await store.hasBlob('trainers/bob/breed', blob.digest)).toBe(false);
    const before = await treeSize(registry.storageDir);
    const requests = countRequests();

    await store.mountBlob('trainers/bob/breed', 'trainers/alice/breed', blob.digest);
    expect(requests).toEqual({ POST: 1 }); // mounted at once, nothing copied

    expect(await store.hasBlob('trainers/bob/breed', blob.digest)).toBe(true);
    const mounted = await store.openBlob('trainers/bob/breed', blob.digest);
    expect((await readAll(mounted.stream)).equals(blob.bytes)).toBe(true);
    const growth = (await treeSize(registry.storageDir)) - before;
    // distribution stores blob bytes once per registry, so only the new repository's link file appears.
    expect(growth).toBeLessThan(1024);
  });

  test('where the registry cannot mount, the bytes are copied and its upload session cancelled', async () => {
    const proxy = await mountRefusingProxy(registry.url);
    try {
      const viaProxy = new RegistryStore({ url: proxy.url, chunkSize: MB });
      const blob = await someFile(2 * MB + 5);
      await viaProxy.putBlobFile('trainers/carol/breed', blob.file, blob.digest, blob.size);

      await viaProxy.mountBlob('trainers/dave/breed', 'trainers/carol/breed', blob.digest);

      expect(proxy.mountRequests()).toBe(1);
      expect(await viaProxy.hasBlob('trainers/dave/breed', blob.digest)).toBe(true);
      const copied = await viaProxy.openBlob('trainers/dave/breed', blob.digest);
      expect((await readAll(copied.stream)).equals(blob.bytes)).toBe(true);
      expect(await liveUploads('trainers/dave/breed')).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  test('mounting a blob the source repository lacks fails with BLOB_UNKNOWN', async () => {
    const missing = sha256(randomBytes(16));
    await expect(store.mountBlob('trainers/erin/breed', 'trainers/alice/breed', missing)).rejects.toMatchObject({
      code: 'BLOB_UNKNOWN',
    });
    expect(await liveUploads('trainers/erin/breed')).toEqual([]);
  });

  test('an unknown blob is BLOB_UNKNOWN to read and absent to hasBlob and blobSize', async () => {
    const unknown = sha256(randomBytes(16));
    expect(await store.hasBlob('germline/computatrum', unknown)).toBe(false);
    expect(await store.blobSize('germline/computatrum', unknown)).toBeUndefined();
    await expect(store.openBlob('germline/computatrum', unknown)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    await expect(store.openBlob('germline/computatrum', unknown, { start: 0, end: 9 })).rejects.toMatchObject({
      code: 'BLOB_UNKNOWN',
    });
  });
});

describe('manifests and tags', () => {
  async function pushModel(repo: string): Promise<Buffer> {
    const config = Buffer.from(
      JSON.stringify({ descriptor: { name: 'computatrum' }, config: {}, modelfs: { type: 'layers', diffIds: [] } }),
    );
    const weights = await someFile(4096);
    await store.putBlobBytes(repo, config, sha256(config));
    await store.putBlobFile(repo, weights.file, weights.digest, weights.size);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: MODEL_ARTIFACT,
      config: { mediaType: MODEL_CONFIG, digest: sha256(config), size: config.length },
      layers: [
        {
          mediaType: MODEL_WEIGHT_LAYER,
          digest: weights.digest,
          size: weights.size,
          annotations: { 'org.cncf.model.filepath': 'model.safetensors' },
        },
      ],
    };
    return Buffer.from(JSON.stringify(manifest));
  }

  test('a tagged ModelPack manifest reads back the same by tag and by digest, and its tag is listed', async () => {
    const repo = 'germline/computatrum';
    const bytes = await pushModel(repo);

    const digest = await store.putManifest(repo, bytes, OCI_MANIFEST, 'gpc-2026-11-25');
    expect(digest).toBe(sha256(bytes));

    const byTag = await store.getManifest(repo, 'gpc-2026-11-25');
    const byDigest = await store.getManifest(repo, digest);
    expect(byTag).toEqual({ bytes, digest, mediaType: OCI_MANIFEST });
    expect(byDigest).toEqual({ bytes, digest, mediaType: OCI_MANIFEST });
    expect(await store.listTags(repo)).toContain('gpc-2026-11-25');
  });

  test('a manifest without a tag is stored by digest only', async () => {
    const repo = 'trainers/frank/breed';
    const bytes = await pushModel(repo);
    const digest = await store.putManifest(repo, bytes, OCI_MANIFEST);
    expect((await store.getManifest(repo, digest))?.bytes.equals(bytes)).toBe(true);
    expect(await store.listTags(repo)).toEqual([]);
  });

  test("the registry's catalog lists every repository pushed to it", async () => {
    const repos = ['trainers/ivy/one', 'trainers/ivy/two'];
    for (const repo of repos) await store.putManifest(repo, await pushModel(repo), OCI_MANIFEST, 'main');
    expect(await store.listRepositories()).toEqual(expect.arrayContaining(repos));
  });

  test('tags come back sorted', async () => {
    const repo = 'trainers/grace/breed';
    const bytes = await pushModel(repo);
    for (const tag of ['v3', 'v1', 'v5', 'v2', 'v4']) await store.putManifest(repo, bytes, OCI_MANIFEST, tag);
    expect(await store.listTags(repo)).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
  });

  test('tags are gathered across the pages of a registry that paginates', async () => {
    // docker-registry 2.8 ignores ?n= on tags/list, so a small server pages the way the spec has it.
    const pages: Record<string, { tags: string[]; next?: string }> = {
      '/v2/germline/computatrum/tags/list': { tags: ['c', 'a'], next: '/v2/germline/computatrum/tags/list?last=c&n=2' },
      '/v2/germline/computatrum/tags/list?last=c&n=2': {
        tags: ['d', 'b'],
        next: '/v2/germline/computatrum/tags/list?last=d&n=2',
      },
      '/v2/germline/computatrum/tags/list?last=d&n=2': { tags: ['e'] },
    };
    const server = http.createServer((req, res) => {
      const page = pages[req.url ?? ''];
      if (!page) return res.writeHead(404).end();
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(page.next ? { link: `<${page.next}>; rel="next"` } : {}),
      });
      res.end(JSON.stringify({ name: 'germline/computatrum', tags: page.tags }));
    });
    const url = await listen(server);
    try {
      expect(await new RegistryStore({ url }).listTags('germline/computatrum')).toEqual(['a', 'b', 'c', 'd', 'e']);
    } finally {
      await close(server);
    }
  });

  test('unknown repositories have no tags and unknown manifests are undefined', async () => {
    expect(await store.listTags('nobody/here')).toEqual([]);
    expect(await store.getManifest('nobody/here', 'latest')).toBeUndefined();
    expect(await store.getManifest('germline/computatrum', 'no-such-tag')).toBeUndefined();
    expect(await store.getManifest('germline/computatrum', sha256(randomBytes(16)))).toBeUndefined();
  });

  test('a manifest whose blobs are missing is refused with the registry error', async () => {
    const config = Buffer.from('{}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: MODEL_ARTIFACT,
        config: { mediaType: MODEL_CONFIG, digest: sha256(config), size: config.length },
        layers: [],
      }),
    );
    await expect(store.putManifest('trainers/heidi/breed', manifest, OCI_MANIFEST, 'v1')).rejects.toThrow(
      /MANIFEST_BLOB_UNKNOWN/,
    );
  });
});

describe('names and failures', () => {
  test('invalid repository names, digests and tags are refused before anything is sent', async () => {
    const nowhere = new RegistryStore({ url: `http://127.0.0.1:${await freePort()}` });
    const digest = sha256(Buffer.from('x'));
    await expect(nowhere.hasBlob('Germline/Computatrum', digest)).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await expect(nowhere.hasBlob('germline//computatrum', digest)).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await expect(nowhere.hasBlob('germline/computatrum', 'sha256:abc')).rejects.toMatchObject({
      code: 'DIGEST_INVALID',
    });
    await expect(nowhere.mountBlob('germline/computatrum', '../etc', digest)).rejects.toMatchObject({
      code: 'NAME_INVALID',
    });
    await expect(nowhere.getManifest('germline/computatrum', 'bad tag')).rejects.toMatchObject({
      code: 'NAME_INVALID',
    });
    await expect(
      nowhere.putManifest('germline/computatrum', Buffer.from('{}'), OCI_MANIFEST, '-x'),
    ).rejects.toMatchObject({ code: 'NAME_INVALID' });
    await expect(nowhere.openBlob('germline/computatrum', digest, { start: 5, end: 2 })).rejects.toThrow(RangeError);
  });

  test('a registry that is not running is UNREACHABLE, naming its address', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const nowhere = new RegistryStore({ url });
    const attempt = nowhere.listTags('germline/computatrum');
    await expect(attempt).rejects.toMatchObject({ code: 'UNREACHABLE' });
    await expect(attempt).rejects.toThrow(`cannot reach the registry at ${url}: `);
    await expect(attempt).rejects.toThrow(/ECONNREFUSED/);
  });

  test('a registry that turns the credentials down is DENIED, naming the env vars and not the password', async () => {
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="registry"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }));
    });
    const url = await listen(server);
    try {
      const denied = new RegistryStore({ url, username: 'alice', password: 'hunter2' });
      const attempt = denied.hasBlob('germline/computatrum', sha256(Buffer.from('x')));
      await expect(attempt).rejects.toMatchObject({ code: 'DENIED' });
      await expect(attempt).rejects.toThrow(/COMPUTATRUM_REGISTRY_USERNAME.*COMPUTATRUM_REGISTRY_PASSWORD/);
      const message = await attempt.catch((error: Error) => error.message);
      expect(message).not.toContain('hunter2');
      expect(seen[0]).toBe(`Basic ${Buffer.from('alice:hunter2').toString('base64')}`);

      const bearer = new RegistryStore({ url, token: 's3cret-token' });
      const refused = await bearer.listTags('germline/computatrum').catch((error: StoreError) => error);
      expect(refused).toMatchObject({ code: 'DENIED' });
      expect((refused as Error).message).not.toContain('s3cret-token');
      expect(seen.at(-1)).toBe('Bearer s3cret-token');
    } finally {
      await close(server);
    }
  });
});
