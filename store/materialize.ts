// Writes a checkpoint's files from the store into a folder on this host (a training run's base):
// every file is verified against its digest on the way and renamed into place only when it matches.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { requireManifest, safeTargetPath } from './checkpoint';
import { type CheckpointStore, FILEPATH_ANNOTATION, type ImageManifest, StoreError } from './types';

export async function materializeCheckpoint(
  store: CheckpointStore,
  repo: string,
  reference: string,
  dir: string,
): Promise<{ digest: string; files: number }> {
  const stored = await requireManifest(store, repo, reference);
  const manifest = JSON.parse(stored.bytes.toString('utf8')) as ImageManifest;
  await mkdir(dir, { recursive: true });
  for (const layer of manifest.layers) {
    const filepath = layer.annotations?.[FILEPATH_ANNOTATION];
    if (!filepath)
      throw new StoreError(
        'MANIFEST_UNKNOWN',
        `layer ${layer.digest} of ${repo}@${stored.digest} names no file (${FILEPATH_ANNOTATION})`,
      );
    const target = safeTargetPath(dir, filepath);
    await mkdir(path.dirname(target), { recursive: true });
    const hash = createHash('sha256');
    const { stream } = await store.openBlob(repo, layer.digest);
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(stream, hashing, createWriteStream(`${target}.partial`));
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== layer.digest) {
      await rm(`${target}.partial`, { force: true });
      throw new StoreError(
        'DIGEST_INVALID',
        `${filepath} of ${repo}@${stored.digest} is corrupt in ${store.location}: expected ${layer.digest}, read ${actual}`,
      );
    }
    await rename(`${target}.partial`, target);
  }
  return { digest: stored.digest, files: manifest.layers.length };
}
