// Checkpoints in the embedded OCI Image Layout store: publish, dedup, tags, forks, and refusals.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CheckpointError,
  checkpointFiles,
  forkCheckpoint,
  publishCheckpoint,
  safeTargetPath,
  tagCheckpoint,
} from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { FILEPATH_ANNOTATION, MODEL_ARTIFACT, MODEL_WEIGHT_LAYER, type ImageManifest } from '../../store/types';
import { PROTOCOL_0_PICKLE, safetensorsOf, zip } from '../helpers/content';

function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** A small checkpoint folder: two shards (one repeated), a tokenizer and a card. */
function checkpointFolder(seed = 'a'): string {
  const dir = tempDir('ckpt-');
  const bytes = randomBytes(300_000);
  const shard = safetensorsOf(bytes);
  writeFileSync(path.join(dir, 'model-00001-of-00002.safetensors'), shard);
  writeFileSync(
    path.join(dir, 'model-00002-of-00002.safetensors'),
    safetensorsOf(Buffer.concat([bytes, Buffer.from(seed)])),
  );
  mkdirSync(path.join(dir, 'tokenizer'));
  writeFileSync(path.join(dir, 'tokenizer', 'tokenizer.json'), JSON.stringify({ seed }));
  writeFileSync(path.join(dir, 'copy-of-first.safetensors'), shard); // identical file: stored once
  return dir;
}

function blobBytesOnDisk(store: string): number {
  return readdirSync(path.join(store, 'blobs', 'sha256')).reduce(
    (sum, name) => sum + statSync(path.join(store, 'blobs', 'sha256', name)).size,
    0,
  );
}

async function newStore(): Promise<LayoutStore> {
  return new LayoutStore(tempDir('store-')).init();
}

test('a folder becomes one ModelPack manifest with one raw layer per file, identical files stored once', async () => {
  const store = await newStore();
  const dir = checkpointFolder();
  const published = await publishCheckpoint(store, 'germline/computatrum', dir, {
    tag: 'main',
    parent: `sha256:${'0'.repeat(64)}`,
  });

  expect(published.manifest.artifactType).toBe(MODEL_ARTIFACT);
  expect(published.manifest.layers.map((l) => l.annotations?.[FILEPATH_ANNOTATION])).toEqual([
    'copy-of-first.safetensors',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'tokenizer/tokenizer.json',
  ]);
  expect(published.manifest.layers[0]!.mediaType).toBe(MODEL_WEIGHT_LAYER);
  for (const layer of published.manifest.layers) {
    const file = readFileSync(path.join(dir, layer.annotations![FILEPATH_ANNOTATION]!));
    expect(layer.digest).toBe(`sha256:${createHash('sha256').update(file).digest('hex')}`);
  }
  expect(published.manifest.annotations?.['io.computatrum.parent']).toBe(`sha256:${'0'.repeat(64)}`);
  // 4 files, 3 distinct contents.
  expect(published.written).toBeLessThan(published.size);
  expect(new Set(published.manifest.layers.map((l) => l.digest)).size).toBe(3);

  const again = await publishCheckpoint(store, 'germline/computatrum', dir, {
    tag: 'main',
    parent: `sha256:${'0'.repeat(64)}`,
    created: published.manifest.annotations!['org.opencontainers.image.created'],
  });
  expect(again.digest).toBe(published.digest);
  expect(again.written).toBe(0);
  expect(await store.listTags('germline/computatrum')).toEqual(['main']);
  const stored = await store.getManifest('germline/computatrum', 'main');
  expect(JSON.parse(stored!.bytes.toString()) as ImageManifest).toEqual(published.manifest);
  expect(await store.getManifest('germline/computatrum', published.digest)).toMatchObject({ digest: published.digest });
});

test('a gpc-* tag never moves; the same digest again is fine; branches move', async () => {
  const store = await newStore();
  const first = await publishCheckpoint(store, 'germline/g', checkpointFolder('one'), { tag: 'main' });
  await tagCheckpoint(store, 'germline/g', 'main', 'gpc-2026-11-25');
  await tagCheckpoint(store, 'germline/g', first.digest, 'gpc-2026-11-25');
  const second = await publishCheckpoint(store, 'germline/g', checkpointFolder('two'), { tag: 'main' });
  expect(second.digest).not.toBe(first.digest);
  await expect(tagCheckpoint(store, 'germline/g', 'main', 'gpc-2026-11-25')).rejects.toThrow(
    `germline/g:gpc-2026-11-25 already points at ${first.digest}; daily gpc tags never move`,
  );
  await expect(
    publishCheckpoint(store, 'germline/g', checkpointFolder('three'), { tag: 'gpc-2026-11-25' }),
  ).rejects.toThrow(/never move/);
  expect((await store.getManifest('germline/g', 'gpc-2026-11-25'))!.digest).toBe(first.digest);
  expect((await store.getManifest('germline/g', 'main'))!.digest).toBe(second.digest);
});

test('a fork is a branch on the same manifest and writes no blob bytes', async () => {
  const store = await newStore();
  const published = await publishCheckpoint(store, 'germline/g', checkpointFolder(), { tag: 'main' });
  await tagCheckpoint(store, 'germline/g', 'main', 'gpc-2026-11-25');
  const before = blobBytesOnDisk(store.location);
  const forked = await forkCheckpoint(
    store,
    { repo: 'germline/g', reference: 'gpc-2026-11-25' },
    { repo: 'trainers/alice/coder', branch: 'main' },
  );
  expect(forked).toBe(published.digest);
  expect(blobBytesOnDisk(store.location)).toBe(before);
  expect(await store.listTags('trainers/alice/coder')).toEqual(['main']);
  await expect(
    forkCheckpoint(
      store,
      { repo: 'germline/g', reference: 'gpc-2026-01-01' },
      { repo: 'trainers/bob/x', branch: 'main' },
    ),
  ).rejects.toThrow('germline/g has no gpc-2026-01-01; its tags are: gpc-2026-11-25, main');
});

test('pickle files are refused by content, whatever their name, with advice to convert to safetensors', async () => {
  const store = await newStore();
  const torchZip = zip([
    { name: 'archive/data.pkl', data: Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]) }, // protocol 2: {}
    { name: 'archive/data/0', data: randomBytes(64) },
  ]);
  for (const [name, bytes, refusal] of [
    ['weights.pkl', Buffer.from('anything'), 'weights.pkl is a file named as a pickle'],
    ['pytorch_model.bin', Buffer.from([0x80, 0x04, 0x95, 0x00]), 'pytorch_model.bin is a pickle (protocol 4)'],
    ['model.bin', PROTOCOL_0_PICKLE, 'model.bin is a pickle (protocol 0)'],
    ['model.pt', torchZip, 'model.pt holds a pickle (protocol 2) in archive/data.pkl'],
  ] as const) {
    const dir = tempDir('pickle-');
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('fine'));
    writeFileSync(path.join(dir, name), bytes);
    const published = publishCheckpoint(store, 'germline/g', dir, { tag: 'main' });
    await expect(published).rejects.toThrow(CheckpointError);
    await expect(published).rejects.toThrow(
      `${refusal}: pickle files can run code when loaded; convert it to safetensors (safetensors.torch.save_file) and publish again`,
    );
  }
  expect(await store.listTags('germline/g')).toEqual([]);
  const raw = tempDir('raw-');
  writeFileSync(path.join(raw, 'embeddings.bin'), Buffer.from([1, 2, 3, 4])); // a raw .bin is not a pickle
  await expect(publishCheckpoint(store, 'germline/g', raw, { tag: 'main' })).resolves.toMatchObject({ size: 4 });
  const allowed = tempDir('allowed-');
  writeFileSync(path.join(allowed, 'model.bin'), PROTOCOL_0_PICKLE);
  await expect(
    publishCheckpoint(store, 'germline/allowed', allowed, { tag: 'main', allowPickle: true }),
  ).resolves.toMatchObject({ size: PROTOCOL_0_PICKLE.length });
});

test('safetensors are validated at publish, even with pickles allowed: random bytes never pull as "verified" weights', async () => {
  const store = await newStore();
  const dir = tempDir('broken-');
  writeFileSync(path.join(dir, 'config.json'), '{}');
  writeFileSync(path.join(dir, 'model.safetensors'), randomBytes(4096));
  for (const allowPickle of [false, true]) {
    await expect(publishCheckpoint(store, 'germline/g', dir, { tag: 'main', allowPickle })).rejects.toThrow(
      /^model.safetensors is not a valid safetensors file: header length \d+ runs past the end of the 4096-byte file; write it again with safetensors/,
    );
  }
  expect(await store.listTags('germline/g')).toEqual([]);
});

test('a symbolic link loop, or a link to nothing, is refused with the path and what to do, not an ELOOP stack', async () => {
  const store = await newStore();
  const looping = tempDir('loop-');
  writeFileSync(path.join(looping, 'model.safetensors'), safetensorsOf('fine'));
  mkdirSync(path.join(looping, 'tokenizer'));
  symlinkSync('b', path.join(looping, 'tokenizer', 'a'));
  symlinkSync('a', path.join(looping, 'tokenizer', 'b'));
  const refused = publishCheckpoint(store, 'germline/g', looping, { tag: 'main' });
  await expect(refused).rejects.toThrow(CheckpointError);
  await expect(refused).rejects.toThrow(
    /^tokenizer\/[ab] is a symbolic link loop \(.*tokenizer\/[ab]\): replace it with the file it should point to, or remove it, and push again$/,
  );

  const dangling = tempDir('dangling-');
  symlinkSync('gone.safetensors', path.join(dangling, 'model.safetensors'));
  await expect(checkpointFiles(dangling)).rejects.toThrow(
    'model.safetensors links to gone.safetensors, which does not exist: copy the file in, or remove the link, and push again',
  );

  // The CLI prints the message alone: no "unexpected error", no stack.
  const cli = await promisify(execFile)(
    process.execPath,
    [path.join(__dirname, '../../bin/computatrum.js'), 'push', looping, 'germline/g:main'],
    {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, COMPUTATRUM_DATA_DIR: tempDir('cli-data-') },
    },
  ).catch((error: { code: number; stdout: string; stderr: string }) => error);
  expect(cli).toMatchObject({ code: 1, stdout: '' });
  expect(cli.stderr).toMatch(
    /^computatrum: tokenizer\/[ab] is a symbolic link loop \([^\n]*\): replace it with the file it should point to, or remove it, and push again\n$/,
  );
});

test('paths that escape the checkpoint folder are refused, on publish and on pull', async () => {
  const outside = tempDir('outside-');
  writeFileSync(path.join(outside, 'secret.txt'), 'not yours');
  const dir = tempDir('escape-');
  writeFileSync(path.join(dir, 'ok.safetensors'), 'x');
  symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'link.txt'));
  await expect(checkpointFiles(dir)).rejects.toThrow(/link.txt links to .*secret.txt, outside the checkpoint folder/);

  for (const evil of ['../x', 'a/../../x', '/etc/passwd', 'a\\..\\x', '']) {
    expect(() => safeTargetPath('/tmp/pull-here', evil)).toThrow(`refused file path "${evil}"`);
  }
  expect(safeTargetPath('/tmp/pull-here', 'tokenizer/tokenizer.json')).toBe('/tmp/pull-here/tokenizer/tokenizer.json');
});
