// The hashing threads: digests match node:crypto, copies are exact, and a bad file fails alone.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HashPool } from '../../store/hashing';

const pool = new HashPool(2);
afterAll(() => pool.close());

test('several files hashed and copied at once; a missing file fails alone, naming itself', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hash-'));
  const files = [0, 1, 2, 3].map((i) => {
    const file = path.join(dir, `f${i}`);
    writeFileSync(file, randomBytes(1_000_000 + i));
    return file;
  });
  const results = await Promise.allSettled([
    ...files.map((f) => pool.hash(f)),
    pool.hash(path.join(dir, 'missing')),
    pool.copyAndHash(files[0]!, path.join(dir, 'copy')),
  ]);
  files.forEach((file, i) => {
    expect(results[i]).toEqual({
      status: 'fulfilled',
      value: { digest: `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`, size: 1_000_000 + i },
    });
  });
  expect(results[4]).toMatchObject({
    status: 'rejected',
    reason: { message: expect.stringContaining(`cannot read ${path.join(dir, 'missing')}`) },
  });
  expect(results[5]).toMatchObject({ status: 'fulfilled', value: { size: 1_000_000 } });
  // Buffer.equals: jest's element-wise diff of a megabyte takes seconds.
  expect(readFileSync(path.join(dir, 'copy')).equals(readFileSync(files[0]!))).toBe(true);
});
