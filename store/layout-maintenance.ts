// Housekeeping of the OCI layout store: the files an interrupted write leaves behind (a push killed
// mid-way), blobs no manifest references any more, and blobs missing or damaged. Temporary files
// are named after the process writing them, so a live writer's files are never touched.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { LayoutStore } from './layout';

/** `.<what>-<pid>-<uuid>`: a file being written by process `pid`. */
const TEMPORARY = /^\.(ingest|blob|index)-(\d+)-[0-9a-f-]{36}$/;
/** Names of earlier versions, which carry no pid: removed once they are clearly abandoned. */
const LEGACY_TEMPORARY = /^(\.ingest-[0-9a-f-]{36}|.*\.[0-9a-f-]{36}\.tmp)$/;
const LEGACY_ABANDONED_MS = 60 * 60 * 1000;
const BLOB_NAME = /^[a-f0-9]{64}$/;

export function temporaryName(what: 'ingest' | 'blob' | 'index'): string {
  return `.${what}-${process.pid}-${randomUUID()}`;
}

export interface Leftover {
  file: string;
  bytes: number;
  /** The process that was writing it, when the name says. */
  pid?: number;
  /** True while that process still runs: its write may be in progress. */
  writing: boolean;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** The temporary files in the layout's root and blob folder, and whether their writer still runs. */
export async function findLeftovers(location: string): Promise<Leftover[]> {
  const folders = [location, path.join(location, 'blobs', 'sha256')];
  const found: Leftover[] = [];
  for (const folder of folders) {
    const names = await readdir(folder).catch(() => [] as string[]);
    for (const name of names) {
      const current = TEMPORARY.exec(name);
      if (!current && !LEGACY_TEMPORARY.test(name)) continue;
      const file = path.join(folder, name);
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) continue;
      if (current) {
        const pid = Number(current[2]);
        found.push({ file, bytes: info.size, pid, writing: processAlive(pid) });
      } else {
        found.push({ file, bytes: info.size, writing: Date.now() - info.mtimeMs < LEGACY_ABANDONED_MS });
      }
    }
  }
  return found;
}

/** Removes the leftovers of writers that no longer run; returns what was removed. */
export async function removeLeftovers(location: string): Promise<Leftover[]> {
  const abandoned = (await findLeftovers(location)).filter((l) => !l.writing);
  for (const leftover of abandoned) await rm(leftover.file, { force: true });
  return abandoned;
}

export interface UnreferencedBlob {
  digest: string;
  bytes: number;
  ageMs: number;
}

export interface LayoutReport {
  blobs: number;
  bytes: number;
  /** Blobs no manifest of any repository references (a push that never finished, a moved branch's old files). */
  unreferenced: UnreferencedBlob[];
  /** Referenced blobs that are not in the store, with the repositories that reference them. */
  missing: Array<{ digest: string; repositories: string[] }>;
  /** Blobs whose content does not hash to their name (only with `verify`). */
  damaged: string[];
  leftovers: Leftover[];
}

/** Checks the layout: what is stored, unreferenced, missing, damaged (`verify` hashes every blob) and left over. */
export async function checkLayout(store: LayoutStore, options: { verify?: boolean } = {}): Promise<LayoutReport> {
  const folder = path.join(store.location, 'blobs', 'sha256');
  const referenced = await store.referencedDigests();
  const names = (await readdir(folder)).filter((name) => BLOB_NAME.test(name));
  const stored = new Set(names.map((name) => `sha256:${name}`));
  const report: LayoutReport = {
    blobs: 0,
    bytes: 0,
    unreferenced: [],
    missing: [],
    damaged: [],
    leftovers: await findLeftovers(store.location),
  };
  for (const name of names) {
    const digest = `sha256:${name}`;
    const info = await stat(path.join(folder, name));
    report.blobs += 1;
    report.bytes += info.size;
    if (!referenced.has(digest))
      report.unreferenced.push({ digest, bytes: info.size, ageMs: Date.now() - info.mtimeMs });
    if (options.verify && (await sha256Of(path.join(folder, name))) !== name) report.damaged.push(digest);
  }
  for (const [digest, repositories] of referenced)
    if (!stored.has(digest)) report.missing.push({ digest, repositories });
  return report;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface CollectedGarbage {
  removed: Array<{ file: string; bytes: number }>;
  /** Unreferenced blobs kept: younger than the grace time, or a write was in progress. */
  kept: number;
  bytes: number;
}

/**
 * Removes abandoned leftovers and the unreferenced blobs older than `graceMs`. While any writer is
 * at work, every unreferenced blob is kept: a push stores its files before the manifest that
 * references them.
 */
export async function collectGarbage(
  store: LayoutStore,
  options: { graceMs: number; dryRun?: boolean },
): Promise<CollectedGarbage> {
  const report = await checkLayout(store);
  const writing = report.leftovers.some((l) => l.writing);
  const blobs = path.join(store.location, 'blobs', 'sha256');
  const doomed = [
    ...report.leftovers.filter((l) => !l.writing).map((l) => ({ file: l.file, bytes: l.bytes })),
    ...report.unreferenced
      .filter((b) => !writing && b.ageMs >= options.graceMs)
      .map((b) => ({ file: path.join(blobs, b.digest.slice('sha256:'.length)), bytes: b.bytes })),
  ];
  // Checked again, and removed, under the index lock: a manifest written meanwhile keeps its blobs,
  // and one written after finds its blobs gone and is refused (publish again), never left dangling.
  const removed = await store.exclusively(async () => {
    const referencedNow = await store.referencedDigests();
    const unreferenced = doomed.filter((item) => !referencedNow.has(`sha256:${path.basename(item.file)}`));
    if (!options.dryRun) for (const item of unreferenced) await rm(item.file, { force: true });
    return unreferenced;
  });
  const removedBlobs = removed.filter((item) => BLOB_NAME.test(path.basename(item.file))).length;
  return {
    removed,
    kept: report.unreferenced.length - removedBlobs,
    bytes: removed.reduce((sum, d) => sum + d.bytes, 0),
  };
}
