// The embedded store cleans up after itself: a push killed mid-way leaves a half-written file that
// the next start removes (never a live writer's), `computatrum store fsck` reports unreferenced,
// half-written and missing files, and `computatrum store gc` removes what nothing references.
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { publishCheckpoint } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { checkLayout, collectGarbage, removeLeftovers, temporaryName } from '../../store/layout-maintenance';

jest.setTimeout(120_000);

const BIN = path.join(__dirname, '..', '..', 'bin', 'computatrum.js');
const execute = promisify(execFile);

function cliEnv(storePath: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    COMPUTATRUM_STORE: 'layout',
    COMPUTATRUM_STORE_PATH: storePath,
    COMPUTATRUM_DATA_DIR: path.dirname(storePath),
    LOG_LEVEL: 'error',
  };
}

async function cli(storePath: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execute(process.execPath, [BIN, ...args], { env: cliEnv(storePath) });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const blobsOf = (storePath: string) => path.join(storePath, 'blobs', 'sha256');
const halfWritten = (storePath: string) =>
  readdirSync(blobsOf(storePath)).filter((name) => name.startsWith('.ingest-'));

test("a push killed mid-way leaves a half-written file: fsck reports it, and the next start removes it, never a live writer's", async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'killed-push-'));
  const storePath = path.join(root, 'store');
  await new LayoutStore(storePath).init();
  const checkpoint = path.join(root, 'checkpoint');
  const big = path.join(checkpoint, 'weights.bin');
  mkdirSync(checkpoint);
  const fd = openSync(big, 'w');
  ftruncateSync(fd, 1024 * 1024 * 1024); // a sparse gigabyte: cheap to make, long enough to copy that the push is caught mid-way
  closeSync(fd);

  const push = spawn(process.execPath, [BIN, 'push', checkpoint, 'germline/killed:main'], {
    env: cliEnv(storePath),
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => push.once('exit', resolve));
  const deadline = Date.now() + 60_000;
  while (halfWritten(storePath).length === 0) {
    if (Date.now() > deadline) throw new Error('the push never started writing');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  push.kill('SIGKILL');
  await exited;
  const [leftover] = halfWritten(storePath);
  expect(leftover).toMatch(new RegExp(`^\\.ingest-${push.pid}-`));

  const report = await cli(storePath, 'store', 'fsck');
  expect(report.stdout).toMatch(/half-written files\s+1 left by interrupted writes/);
  expect(report.code).toBe(0);

  // `up` removes them as it starts; a write in progress in a live process (this one) is left alone.
  const live = path.join(blobsOf(storePath), temporaryName('ingest'));
  writeFileSync(live, 'being written');
  expect((await removeLeftovers(storePath)).map((l) => path.basename(l.file))).toEqual([leftover]);
  expect(halfWritten(storePath)).toEqual([path.basename(live)]);
  rmSync(live);
  rmSync(root, { recursive: true, force: true });
});

test('gc removes the blobs a moved branch left behind, keeps what is referenced and what is younger than the grace time; fsck names a missing blob', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'store-gc-'));
  const storePath = path.join(root, 'store');
  const store = await new LayoutStore(storePath).init();
  const version = (text: string) => {
    const dir = mkdtempSync(path.join(root, 'v-'));
    writeFileSync(path.join(dir, 'notes.txt'), text);
    writeFileSync(path.join(dir, 'shared.txt'), 'the same in every version');
    return dir;
  };
  const first = await publishCheckpoint(store, 'germline/gc', version('first'), { tag: 'main' });
  const second = await publishCheckpoint(store, 'germline/gc', version('second'), { tag: 'main' }); // main moves on
  const firstOnly = [first.digest, first.manifest.config.digest, first.manifest.layers[0]!.digest];

  const before = await checkLayout(store);
  expect(before.unreferenced.map((b) => b.digest).sort()).toEqual([...firstOnly].sort());
  expect(before.missing).toEqual([]);

  expect((await collectGarbage(store, { graceMs: 60 * 60 * 1000 })).removed).toEqual([]); // all of it is younger than an hour
  // The first version's files as if written two hours ago: older than the default grace time.
  const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  for (const digest of firstOnly) utimesSync(path.join(blobsOf(storePath), digest.slice(7)), twoHoursAgo, twoHoursAgo);
  const dry = await cli(storePath, 'store', 'gc', '--dry-run');
  expect(dry.stdout).toContain('would free');
  for (const digest of firstOnly) expect(dry.stdout).toContain(digest.slice(7));
  for (const digest of firstOnly) expect(existsSync(path.join(blobsOf(storePath), digest.slice(7)))).toBe(true);
  const gc = await cli(storePath, 'store', 'gc');
  expect(gc.code).toBe(0);
  expect(gc.stdout).toMatch(/freed .* in 3 file\(s\)/);
  for (const digest of firstOnly) expect(existsSync(path.join(blobsOf(storePath), digest.slice(7)))).toBe(false);
  expect((await store.getManifest('germline/gc', 'main'))?.digest).toBe(second.digest);
  expect((await checkLayout(store, { verify: true })).unreferenced).toEqual([]);

  // A push that finds a file stored already makes it young again, so gc keeps it until the manifest
  // references it; a manifest whose files gc removed all the same is refused, not left dangling.
  const third = version('third');
  const { digest: thirdNotes } = await store.ingestFile(path.join(third, 'notes.txt'));
  utimesSync(path.join(blobsOf(storePath), thirdNotes.slice(7)), twoHoursAgo, twoHoursAgo);
  await store.ingestFile(path.join(third, 'notes.txt')); // published again: found, and touched
  expect((await collectGarbage(store, { graceMs: 60 * 60 * 1000 })).removed).toEqual([]);
  rmSync(path.join(blobsOf(storePath), thirdNotes.slice(7)));
  await expect(publishCheckpoint(store, 'germline/gc', third, { tag: 'main' })).resolves.toMatchObject({
    manifest: { layers: [{ digest: thirdNotes }, expect.anything()] },
  });
  const dangling = Buffer.from(
    JSON.stringify({
      ...second.manifest,
      layers: [{ ...second.manifest.layers[0]!, digest: `sha256:${'0'.repeat(64)}` }],
    }),
  );
  await expect(
    store.putManifest('germline/gc', dangling, 'application/vnd.oci.image.manifest.v1+json', 'dangling'),
  ).rejects.toMatchObject({ code: 'BLOB_UNKNOWN', message: expect.stringContaining('publish again') });
  expect(await store.listTags('germline/gc')).toEqual(['main']);

  rmSync(path.join(blobsOf(storePath), thirdNotes.slice(7)));
  const fsck = await cli(storePath, 'store', 'fsck');
  expect(fsck.code).toBe(1);
  expect(fsck.stdout).toContain(`MISSING  ${thirdNotes}  referenced by germline/gc`);
  expect(fsck.stderr).toContain('push the affected checkpoints again');
  rmSync(root, { recursive: true, force: true });
});
