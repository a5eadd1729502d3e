// Checkpoints through the registry backend, against a real OCI registry (Debian's docker-registry,
// CNCF Distribution 2.8) on loopback: push, pull back byte-identical, fork by cross-repo mount.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { forkCheckpoint, publishCheckpoint, tagCheckpoint } from '../../store/checkpoint';
import { pullCheckpoint } from '../../store/pull';
import { RegistryStore } from '../../store/registry';
import { startRegistry } from '../helpers/registry';
import { safetensorsOf } from '../helpers/content';

let registry: Awaited<ReturnType<typeof startRegistry>>;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
});

test('push to a real registry, pull back byte-identical; a daily tag never moves; a fork mounts', async () => {
  const store = new RegistryStore({ url: registry.url, chunkSize: 1024 * 1024 });
  const source = mkdtempSync(path.join(tmpdir(), 'reg-src-'));
  writeFileSync(path.join(source, 'model.safetensors'), safetensorsOf(randomBytes(3 * 1024 * 1024 + 17)));
  writeFileSync(path.join(source, 'config.json'), '{"layers": 2}');

  const published = await publishCheckpoint(store, 'germline/registry', source, { tag: 'main' });
  expect(published.written).toBe(published.size + published.manifest.config.size);
  expect(
    (
      await publishCheckpoint(store, 'germline/registry', source, {
        tag: 'main',
        created: published.manifest.annotations!['org.opencontainers.image.created'],
      })
    ).written,
  ).toBe(0);
  await tagCheckpoint(store, 'germline/registry', 'main', 'gpc-2026-11-25');

  const dir = mkdtempSync(path.join(tmpdir(), 'reg-pull-'));
  const pulled = await pullCheckpoint({
    baseUrl: registry.url,
    repo: 'germline/registry',
    reference: 'gpc-2026-11-25',
    dir,
  });
  expect(pulled.digest).toBe(published.digest);
  for (const file of ['model.safetensors', 'config.json'])
    expect(readFileSync(path.join(dir, file))).toEqual(readFileSync(path.join(source, file)));

  writeFileSync(path.join(source, 'config.json'), '{"layers": 3}');
  await publishCheckpoint(store, 'germline/registry', source, { tag: 'main' });
  await expect(tagCheckpoint(store, 'germline/registry', 'main', 'gpc-2026-11-25')).rejects.toThrow(
    /daily gpc tags never move/,
  );

  const forked = await forkCheckpoint(
    store,
    { repo: 'germline/registry', reference: 'gpc-2026-11-25' },
    { repo: 'trainers/alice/breed', branch: 'main' },
  );
  expect(forked).toBe(published.digest);
  expect(await store.listTags('trainers/alice/breed')).toEqual(['main']);
});
