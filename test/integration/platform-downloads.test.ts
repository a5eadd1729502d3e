// Downloads from the platform: the OCI Distribution read API under /v2/ (protocol, a real OCI
// client), friendly links, and `computatrum pull`'s resume and verification.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { publishCheckpoint, tagCheckpoint, type Published } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { pullCheckpoint } from '../../store/pull';
import { buildPlatform } from '../../platform/server';
import { testGlobals } from '../setup/globals';
import { safetensorsOf } from '../helpers/content';

const REPO = 'germline/downloads';
const TAG = 'gpc-2026-11-25';
let store: LayoutStore;
let db: Database;
let platform: FastifyInstance;
let baseUrl: string;
let source: string;
let published: Published;

beforeAll(async () => {
  store = await new LayoutStore(mkdtempSync(path.join(tmpdir(), 'platform-store-'))).init();
  source = mkdtempSync(path.join(tmpdir(), 'platform-src-'));
  writeFileSync(path.join(source, 'model.safetensors'), safetensorsOf(randomBytes(4 * 1024 * 1024)));
  writeFileSync(path.join(source, 'tokenizer.json'), JSON.stringify({ vocab: ['a', 'b'] }));
  published = await publishCheckpoint(store, REPO, source, { tag: 'main' });
  await tagCheckpoint(store, REPO, 'main', TAG);
  db = openDatabase(testGlobals().databaseUrl);
  platform = await buildPlatform({ logger: pino({ level: 'silent' }), checks: [], germline: 'downloads', store, db });
  await platform.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(platform.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await platform?.close();
  await db?.$disconnect();
});

/** Compares two files without jest's element-wise Buffer diff, which takes seconds per megabyte. */
const sameBytes = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));

const layer = (file: string) =>
  published.manifest.layers.find((l) => l.annotations?.['org.cncf.model.filepath'] === file)!;

test('/v2/ speaks the OCI Distribution read protocol', async () => {
  const root = await fetch(`${baseUrl}/v2/`);
  expect(root.status).toBe(200);
  expect(root.headers.get('docker-distribution-api-version')).toBe('registry/2.0');

  const byTag = await fetch(`${baseUrl}/v2/${REPO}/manifests/${TAG}`);
  expect(byTag.status).toBe(200);
  expect(byTag.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
  expect(byTag.headers.get('docker-content-digest')).toBe(published.digest);
  const byDigest = await fetch(`${baseUrl}/v2/${REPO}/manifests/${published.digest}`, { method: 'HEAD' });
  expect(byDigest.status).toBe(200);
  expect(byDigest.headers.get('content-length')).toBe(String((await byTag.arrayBuffer()).byteLength));

  const shard = layer('model.safetensors');
  const ranged = await fetch(`${baseUrl}/v2/${REPO}/blobs/${shard.digest}`, { headers: { range: 'bytes=100-199' } });
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get('content-range')).toBe(`bytes 100-199/${shard.size}`);
  expect(Buffer.from(await ranged.arrayBuffer())).toEqual(
    readFileSync(path.join(source, 'model.safetensors')).subarray(100, 200),
  );
  const outside = await fetch(`${baseUrl}/v2/${REPO}/blobs/${shard.digest}`, {
    headers: { range: `bytes=${shard.size}-` },
  });
  expect(outside.status).toBe(416);

  expect(await (await fetch(`${baseUrl}/v2/${REPO}/tags/list`)).json()).toEqual({ name: REPO, tags: [TAG, 'main'] });
  const unknown = await fetch(`${baseUrl}/v2/${REPO}/manifests/gpc-1999-01-01`);
  expect(unknown.status).toBe(404);
  expect(await unknown.json()).toEqual({ errors: [{ code: 'MANIFEST_UNKNOWN', message: expect.any(String) }] });
  const unknownBlob = (await (await fetch(`${baseUrl}/v2/${REPO}/blobs/sha256:${'a'.repeat(64)}`)).json()) as {
    errors: Array<{ code: string }>;
  };
  expect(unknownBlob.errors[0]!.code).toBe('BLOB_UNKNOWN');
  expect((await fetch(`${baseUrl}/v2/nobody/tags/list`)).status).toBe(404);
});

test('a client that has the bytes is answered 304: a tag is asked again every time, a digest kept for good', async () => {
  const byTag = await fetch(`${baseUrl}/v2/${REPO}/manifests/${TAG}`);
  const etag = byTag.headers.get('etag')!;
  expect(etag).toBe(`"${published.digest}"`);
  expect(byTag.headers.get('cache-control')).toBe('no-cache');
  const again = await fetch(`${baseUrl}/v2/${REPO}/manifests/${TAG}`, { headers: { 'if-none-match': etag } });
  expect(again.status).toBe(304);
  expect(await again.text()).toBe('');
  // Another tag's digest is not this one: the bytes come.
  const other = await fetch(`${baseUrl}/v2/${REPO}/manifests/${TAG}`, { headers: { 'if-none-match': '"sha256:0"' } });
  expect(other.status).toBe(200);

  const byDigest = await fetch(`${baseUrl}/v2/${REPO}/manifests/${published.digest}`);
  expect(byDigest.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
  const blob = layer('tokenizer.json');
  const cachedBlob = await fetch(`${baseUrl}/v2/${REPO}/blobs/${blob.digest}`, {
    headers: { 'if-none-match': `W/"${blob.digest}"` },
  });
  expect(cachedBlob.status).toBe(304);
  expect(cachedBlob.headers.get('etag')).toBe(`"${blob.digest}"`);
});

test("a standard OCI client (Debian's skopeo) copies the checkpoint from /v2/", async () => {
  const destination = mkdtempSync(path.join(tmpdir(), 'skopeo-'));
  const address = baseUrl.replace('http://', '');
  await promisify(execFile)('skopeo', [
    'copy',
    '--src-tls-verify=false',
    `docker://${address}/${REPO}:${TAG}`,
    `oci:${destination}:copied`,
  ]);
  const blobs = readdirSync(path.join(destination, 'blobs', 'sha256'));
  for (const l of published.manifest.layers) expect(blobs).toContain(l.digest.slice('sha256:'.length));
  expect(blobs).toContain(published.digest.slice('sha256:'.length));
});

test('friendly links serve a file of a tag', async () => {
  const response = await fetch(`${baseUrl}/hub/${REPO}/resolve/${TAG}/tokenizer.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-disposition')).toBe('attachment; filename="tokenizer.json"');
  expect(await response.text()).toBe(readFileSync(path.join(source, 'tokenizer.json'), 'utf8'));
  expect((await fetch(`${baseUrl}/hub/${REPO}/resolve/${TAG}/nope.bin`)).status).toBe(404);
});

test('a pull is byte-identical, and a second pull into the same folder downloads nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pull-'));
  const result = await pullCheckpoint({ baseUrl, repo: REPO, reference: TAG, dir });
  expect(result).toMatchObject({ digest: published.digest, files: 2, received: published.size });
  for (const file of ['model.safetensors', 'tokenizer.json'])
    expect(sameBytes(path.join(dir, file), path.join(source, file))).toBe(true);
  expect((await pullCheckpoint({ baseUrl, repo: REPO, reference: TAG, dir })).received).toBe(0);
});

/**
 * A proxy in front of the platform that can cut the connection after some bytes of a response,
 * drop the Range header of requests (a server that ignores Range), or rewrite a Content-Range.
 */
async function cuttingProxy(
  cutAfter: { bytes: number | undefined },
  tamper: { dropRange?: boolean; contentRange?: string } = {},
) {
  let served = 0;
  const server = http.createServer((request, response) => {
    const headers = { ...request.headers };
    if (tamper.dropRange) delete headers.range;
    const upstream = http.request(`${baseUrl}${request.url}`, { method: request.method, headers }, (answer) => {
      const answerHeaders = { ...answer.headers };
      if (tamper.contentRange !== undefined && answerHeaders['content-range'])
        answerHeaders['content-range'] = tamper.contentRange;
      response.writeHead(answer.statusCode!, answerHeaders);
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (cutAfter.bytes !== undefined && sent + chunk.length > cutAfter.bytes) {
          const part = chunk.subarray(0, cutAfter.bytes - sent);
          served += part.length;
          response.write(part, () => response.socket?.destroy());
          answer.destroy();
          return;
        }
        sent += chunk.length;
        served += chunk.length;
        response.write(chunk);
      });
      answer.on('end', () => response.end());
    });
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served: () => served,
    reset: () => (served = 0),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('an interrupted pull resumes: the second pull fetches only what was missing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'resume-'));
  const shard = layer('model.safetensors');
  const cut = { bytes: Math.floor(shard.size * 0.4) as number | undefined };
  const proxy = await cuttingProxy(cut);
  try {
    await expect(
      pullCheckpoint({ baseUrl: proxy.url, repo: REPO, reference: TAG, dir, concurrency: 1 }),
    ).rejects.toThrow(/download of model.safetensors was interrupted .* it resumes where it stopped/);
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
    const kept = readFileSync(path.join(dir, 'model.safetensors.partial')).length;
    expect(kept).toBeGreaterThan(0);

    cut.bytes = undefined;
    proxy.reset();
    const result = await pullCheckpoint({ baseUrl: proxy.url, repo: REPO, reference: TAG, dir, concurrency: 1 });
    const missing = published.size - kept;
    expect(result.received).toBeLessThanOrEqual(missing * 1.01);
    expect(sameBytes(path.join(dir, 'model.safetensors'), path.join(source, 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(dir, 'model.safetensors.partial'))).toBe(false);
  } finally {
    await proxy.close();
  }
});

/** Leaves `model.safetensors.partial` holding the first 40% of the shard in a new folder, as an interrupted pull does. */
async function interruptedPull(): Promise<{ dir: string; kept: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'resume-'));
  const proxy = await cuttingProxy({ bytes: Math.floor(layer('model.safetensors').size * 0.4) });
  try {
    await expect(
      pullCheckpoint({ baseUrl: proxy.url, repo: REPO, reference: TAG, dir, concurrency: 1 }),
    ).rejects.toThrow(/was interrupted/);
  } finally {
    await proxy.close();
  }
  return { dir, kept: readFileSync(path.join(dir, 'model.safetensors.partial')).length };
}

test('a resume hashes the bytes an earlier attempt kept: damage in them is caught, and the next pull starts over', async () => {
  const { dir, kept } = await interruptedPull();
  const partial = path.join(dir, 'model.safetensors.partial');
  const bytes = readFileSync(partial);
  bytes[Math.floor(kept / 2)] = bytes[Math.floor(kept / 2)]! ^ 0xff; // damaged on the disk between the two pulls
  writeFileSync(partial, bytes);
  const shard = layer('model.safetensors');
  await expect(pullCheckpoint({ baseUrl, repo: REPO, reference: TAG, dir, concurrency: 1 })).rejects.toThrow(
    `model.safetensors is corrupt: expected ${shard.digest}`,
  );
  expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
  expect(existsSync(partial)).toBe(false);

  const result = await pullCheckpoint({ baseUrl, repo: REPO, reference: TAG, dir, concurrency: 1 });
  expect(result.received).toBe(published.size); // every byte again: nothing of the damaged attempt was kept
  expect(sameBytes(path.join(dir, 'model.safetensors'), path.join(source, 'model.safetensors'))).toBe(true);
});

test('a server that answers a Range request with the whole blob (200) is downloaded again from the start', async () => {
  const { dir } = await interruptedPull();
  const proxy = await cuttingProxy({ bytes: undefined }, { dropRange: true });
  try {
    const result = await pullCheckpoint({ baseUrl: proxy.url, repo: REPO, reference: TAG, dir, concurrency: 1 });
    expect(result.received).toBe(published.size);
    expect(sameBytes(path.join(dir, 'model.safetensors'), path.join(source, 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(dir, 'model.safetensors.partial'))).toBe(false);
  } finally {
    await proxy.close();
  }
});

test('a 206 whose Content-Range is not the one asked for is refused, and the kept bytes stay', async () => {
  const { dir, kept } = await interruptedPull();
  const shard = layer('model.safetensors');
  const proxy = await cuttingProxy({ bytes: undefined }, { contentRange: `bytes 0-${shard.size - 1}/${shard.size}` });
  try {
    await expect(
      pullCheckpoint({ baseUrl: proxy.url, repo: REPO, reference: TAG, dir, concurrency: 1 }),
    ).rejects.toThrow(`answered 206 bytes 0-${shard.size - 1}/${shard.size}: cannot download model.safetensors`);
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
    expect(readFileSync(path.join(dir, 'model.safetensors.partial')).length).toBe(kept);
  } finally {
    await proxy.close();
  }
});

test('a corrupted blob is detected, named, and leaves no file under its final name', async () => {
  const corruptStore = await new LayoutStore(mkdtempSync(path.join(tmpdir(), 'corrupt-store-'))).init();
  const src = mkdtempSync(path.join(tmpdir(), 'corrupt-src-'));
  writeFileSync(path.join(src, 'weights.safetensors'), safetensorsOf(randomBytes(100_000)));
  const corrupt = await publishCheckpoint(corruptStore, 'germline/corrupt', src, { tag: 'main' });
  const blob = path.join(
    corruptStore.location,
    'blobs',
    'sha256',
    corrupt.manifest.layers[0]!.digest.slice('sha256:'.length),
  );
  const bytes = readFileSync(blob);
  bytes[5000] = bytes[5000]! ^ 0xff; // bit rot on the server's disk
  writeFileSync(blob, bytes);
  const server = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: 'corrupt',
    store: corruptStore,
    db,
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  try {
    const dir = mkdtempSync(path.join(tmpdir(), 'corrupt-pull-'));
    await expect(
      pullCheckpoint({
        baseUrl: `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`,
        repo: 'germline/corrupt',
        reference: 'main',
        dir,
      }),
    ).rejects.toThrow(`weights.safetensors is corrupt: expected ${corrupt.manifest.layers[0]!.digest}`);
    expect(readdirSync(dir)).toEqual([]);
  } finally {
    await server.close();
  }
});

test('an empty file is pulled too', async () => {
  const emptyStore = await new LayoutStore(mkdtempSync(path.join(tmpdir(), 'empty-store-'))).init();
  const src = mkdtempSync(path.join(tmpdir(), 'empty-src-'));
  const weights = safetensorsOf(randomBytes(1000));
  writeFileSync(path.join(src, 'weights.safetensors'), weights);
  writeFileSync(path.join(src, 'added_tokens.json'), '');
  await publishCheckpoint(emptyStore, 'germline/empty', src, { tag: 'main' });
  const server = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: 'empty',
    store: emptyStore,
    db,
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  try {
    const dir = mkdtempSync(path.join(tmpdir(), 'empty-pull-'));
    const url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    expect(await pullCheckpoint({ baseUrl: url, repo: 'germline/empty', reference: 'main', dir })).toMatchObject({
      files: 2,
      received: weights.length,
    });
    expect(readdirSync(dir).sort()).toEqual(['added_tokens.json', 'weights.safetensors']);
    expect(readFileSync(path.join(dir, 'added_tokens.json')).length).toBe(0);
  } finally {
    await server.close();
  }
});

test('blobs redirected to object storage are followed, without the credentials, which stay with the registry', async () => {
  const seen: Array<{ server: 'registry' | 'storage'; url: string; authorization?: string }> = [];
  const forward = (request: http.IncomingMessage, response: http.ServerResponse) => {
    const upstream = http.request(
      `${baseUrl}${request.url}`,
      { method: request.method, headers: { ...(request.headers.range ? { range: request.headers.range } : {}) } },
      (answer) => {
        response.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.end();
  };
  const storage = http.createServer((request, response) => {
    seen.push({
      server: 'storage',
      url: request.url!,
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
    });
    forward(request, response);
  });
  await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
  const storageUrl = `http://localhost:${(storage.address() as AddressInfo).port}`;
  const registry = http.createServer((request, response) => {
    seen.push({
      server: 'registry',
      url: request.url!,
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
    });
    if (request.url!.includes('/blobs/'))
      return response.writeHead(307, { location: `${storageUrl}${request.url}` }).end();
    forward(request, response);
  });
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  try {
    const dir = mkdtempSync(path.join(tmpdir(), 'pull-redirect-'));
    const registryUrl = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
    await pullCheckpoint({
      baseUrl: registryUrl,
      repo: REPO,
      reference: TAG,
      dir,
      headers: { authorization: 'Bearer ctr_registry-only' },
    });
    for (const file of ['model.safetensors', 'tokenizer.json'])
      expect(sameBytes(path.join(dir, file), path.join(source, file))).toBe(true);
    expect(
      seen
        .filter((s) => s.server === 'storage')
        .map((s) => s.url)
        .sort(),
    ).toEqual(published.manifest.layers.map((l) => `/v2/${REPO}/blobs/${l.digest}`).sort());
    expect(seen.filter((s) => s.server === 'storage' && s.authorization)).toEqual([]);
    expect(
      seen.filter((s) => s.server === 'registry').every((s) => s.authorization === 'Bearer ctr_registry-only'),
    ).toBe(true);
  } finally {
    await new Promise<void>((resolve) => registry.close(() => resolve()));
    await new Promise<void>((resolve) => storage.close(() => resolve()));
  }
});
