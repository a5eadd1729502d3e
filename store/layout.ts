// The embedded checkpoint store: one OCI Image Layout directory (oci-layout, index.json,
// blobs/sha256/...) shared by every repository, so identical files are stored once and a fork
// writes no blob bytes. Tags are index entries named `<repo>:<tag>`, which `oras cp
// --from-oci-layout` and skopeo (`oci:<dir>:<repo>:<tag>`) understand.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hashPool } from './hashing';
import { type ByteRange, type CheckpointStore, OCI_INDEX, type StoredManifest, StoreError } from './types';
import { assertDigest, assertRepository, isDigest } from './names';
import { temporaryName } from './layout-maintenance';

const REF_NAME = 'org.opencontainers.image.ref.name';
/** Which repository an index entry belongs to (untagged manifests have no ref name). */
const REPOSITORY = 'io.computatrum.repository';

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

interface LayoutIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX;
  manifests: IndexEntry[];
}

/** Which digests each repository holds, derived from the index as it was at `stamp`. */
interface ContentIndex {
  stamp: string;
  byRepository: Map<string, Set<string>>;
  /** What index entries of no repository reference (written by other tools, e.g. skopeo): served by none, kept by gc. */
  unattributed: Set<string>;
}

export class LayoutStore implements CheckpointStore {
  private writes: Promise<unknown> = Promise.resolve();
  /** Digests whose blob this process is storing right now. */
  private readonly storing = new Set<string>();
  /** Manifests are immutable: parsed once per process. */
  private readonly manifestRefs = new Map<string, { blobs: string[]; manifests: string[] }>();
  private content: Promise<ContentIndex> | undefined;

  constructor(readonly location: string) {}

  private blobPath(digest: string): string {
    return path.join(this.location, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  async init(): Promise<this> {
    await mkdir(path.join(this.location, 'blobs', 'sha256'), { recursive: true });
    await writeFile(path.join(this.location, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    try {
      await stat(path.join(this.location, 'index.json'));
    } catch {
      await this.writeIndex({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    }
    return this;
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    return (await this.blobSize(repo, digest)) !== undefined;
  }

  /**
   * Blobs are stored once for the whole layout, but a repository holds only the blobs its own
   * manifests reference (as a registry holds only the blobs pushed or mounted into a repository):
   * a digest asked for under another repository's name is unknown there.
   */
  async blobSize(repo: string, digest: string): Promise<number | undefined> {
    assertDigest(digest);
    if (!(await this.holds(repo, digest))) return undefined;
    return this.storedSize(digest);
  }

  /** Every digest some repository holds, and which repositories hold it (for fsck and gc). */
  async referencedDigests(): Promise<Map<string, string[]>> {
    const { byRepository } = await this.contentIndex();
    const holders = new Map<string, string[]>();
    const { unattributed } = await this.contentIndex();
    for (const [repo, digests] of byRepository)
      for (const digest of digests) holders.set(digest, [...(holders.get(digest) ?? []), repo]);
    for (const digest of unattributed)
      holders.set(digest, [...(holders.get(digest) ?? []), '(an index entry of no repository)']);
    return holders;
  }

  /** True when `repo` has a manifest that is, or references, `digest`. */
  async holds(repo: string, digest: string): Promise<boolean> {
    const { byRepository } = await this.contentIndex();
    return byRepository.get(repo)?.has(digest) === true;
  }

  /**
   * True when the blob is stored already; its time is set to now, so that garbage collection's grace
   * time protects it until the manifest being published references it.
   */
  private async touchStored(digest: string): Promise<boolean> {
    const now = new Date();
    return utimes(this.blobPath(digest), now, now).then(
      () => true,
      () => false,
    );
  }

  /** The size of a stored blob, whichever repositories hold it; undefined when it is not stored. */
  private async storedSize(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  async putBlobFile(repo: string, file: string, digest: string, size: number): Promise<{ written: number }> {
    assertRepository(repo);
    assertDigest(digest);
    if (await this.touchStored(digest)) return { written: 0 };
    const ingested = await this.ingestFile(file);
    if (ingested.digest !== digest || ingested.size !== size) {
      throw new StoreError(
        'DIGEST_INVALID',
        `${file} changed while it was published: expected ${digest} (${size} bytes), read ${ingested.digest} (${ingested.size} bytes); publish again`,
      );
    }
    return { written: ingested.written };
  }

  /**
   * Copies a file into the store while hashing it (one read, one write) and renames the copy to its
   * digest only once the digest is known. A blob already present costs the copy, never a duplicate.
   */
  async ingestFile(file: string): Promise<{ digest: string; size: number; written: number }> {
    const temp = path.join(this.location, 'blobs', 'sha256', temporaryName('ingest'));
    try {
      const { digest, size } = await hashPool().copyAndHash(file, temp);
      // Two identical files ingested at once: the first to get here stores the blob, the other writes nothing.
      if (this.storing.has(digest)) return { digest, size, written: 0 };
      this.storing.add(digest);
      try {
        if (await this.touchStored(digest)) return { digest, size, written: 0 };
        await rename(temp, this.blobPath(digest));
        return { digest, size, written: size };
      } finally {
        this.storing.delete(digest);
      }
    } finally {
      await rm(temp, { force: true });
    }
  }

  async putBlobBytes(_repo: string, bytes: Buffer, digest: string): Promise<{ written: number }> {
    assertDigest(digest);
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== digest) throw new StoreError('DIGEST_INVALID', `content digest is ${actual}, not ${digest}`);
    if (await this.touchStored(digest)) return { written: 0 };
    const temp = path.join(this.location, 'blobs', 'sha256', temporaryName('blob'));
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.blobPath(digest));
    return { written: bytes.length };
  }

  async mountBlob(repo: string, fromRepo: string, digest: string): Promise<void> {
    // Blobs are shared by every repository of the layout: mounting writes nothing, and `repo` holds
    // the blob once a manifest of its own references it. Only a blob `fromRepo` holds may be mounted.
    assertRepository(repo);
    assertRepository(fromRepo);
    if (!(await this.hasBlob(fromRepo, digest)))
      throw new StoreError('BLOB_UNKNOWN', `blob ${digest} is not in ${fromRepo}`);
  }

  async openBlob(repo: string, digest: string, range?: ByteRange) {
    assertDigest(digest);
    const size = await this.blobSize(repo, digest);
    if (size === undefined) throw new StoreError('BLOB_UNKNOWN', `blob ${digest} is not in ${repo}`);
    const stream = createReadStream(this.blobPath(digest), range ? { start: range.start, end: range.end } : {});
    return { stream, size };
  }

  async putManifest(repo: string, manifest: Buffer, mediaType: string, tag?: string): Promise<string> {
    assertRepository(repo);
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    await this.putBlobBytes(repo, manifest, digest);
    await this.updateIndex(async (index) => {
      // Under the lock that garbage collection deletes under: what this manifest references is still here.
      if ((await this.storedSize(digest)) === undefined) await this.putBlobBytes(repo, manifest, digest);
      const { blobs, manifests } = await this.referencesOf(digest);
      for (const referenced of [...blobs, ...manifests]) {
        if ((await this.storedSize(referenced)) === undefined) {
          throw new StoreError(
            'BLOB_UNKNOWN',
            `${referenced}, which the manifest ${digest} references, is not in ${this.location} (removed by \`computatrum store gc\` while it was published?): publish again`,
          );
        }
      }
      const entry: IndexEntry = { mediaType, digest, size: manifest.length, annotations: { [REPOSITORY]: repo } };
      if (tag === undefined) {
        if (!index.manifests.some((m) => m.digest === digest && m.annotations[REPOSITORY] === repo))
          index.manifests.push(entry);
        return;
      }
      const name = `${repo}:${tag}`;
      index.manifests = index.manifests.filter((m) => m.annotations[REF_NAME] !== name);
      index.manifests.push({ ...entry, annotations: { ...entry.annotations, [REF_NAME]: name } });
    });
    return digest;
  }

  async getManifest(repo: string, reference: string): Promise<StoredManifest | undefined> {
    const index = await this.readIndex();
    const entry = reference.startsWith('sha256:')
      ? index.manifests.find((m) => m.digest === reference && m.annotations[REPOSITORY] === repo)
      : index.manifests.find((m) => m.annotations[REF_NAME] === `${repo}:${reference}`);
    if (!entry) return undefined;
    const bytes = await readFile(this.blobPath(entry.digest));
    return { bytes, digest: entry.digest, mediaType: entry.mediaType };
  }

  async listTags(repo: string): Promise<string[]> {
    const prefix = `${repo}:`;
    const index = await this.readIndex();
    return index.manifests
      .map((m) => m.annotations[REF_NAME])
      .filter((name): name is string => name?.startsWith(prefix) === true)
      .map((name) => name.slice(prefix.length))
      .sort();
  }

  /** Every repository that has a tag or manifest in the layout. */
  async listRepositories(): Promise<string[]> {
    const index = await this.readIndex();
    return [
      ...new Set(index.manifests.map((m) => m.annotations[REPOSITORY]).filter((r): r is string => Boolean(r))),
    ].sort();
  }

  /**
   * Which digests each repository holds: its manifests (tagged or not) and what they reference
   * (config, layers, the manifests of an index), never a `subject`, which is another image. Rebuilt
   * when index.json changes, by this process or another one.
   */
  private async contentIndex(): Promise<ContentIndex> {
    const indexFile = path.join(this.location, 'index.json');
    const stamp = await stat(indexFile).then(
      (s) => `${s.mtimeMs}:${s.size}:${s.ino}`,
      () => 'none',
    );
    const current = await this.content;
    if (current?.stamp === stamp) return current;
    this.content = (async () => {
      const index = await this.readIndex();
      const byRepository = new Map<string, Set<string>>();
      const unattributed = new Set<string>();
      for (const entry of index.manifests) {
        const repo = entry.annotations?.[REPOSITORY];
        const held = repo ? (byRepository.get(repo) ?? new Set<string>()) : unattributed;
        if (repo) byRepository.set(repo, held);
        await this.collectReferences(entry.digest, held);
      }
      return { stamp, byRepository, unattributed };
    })();
    this.content.catch(() => (this.content = undefined));
    return this.content;
  }

  /** Adds a manifest, its config and layers, and (for an index) its manifests, to `held`. */
  private async collectReferences(manifestDigest: string, held: Set<string>): Promise<void> {
    if (held.has(manifestDigest)) return;
    held.add(manifestDigest);
    const { blobs, manifests } = await this.referencesOf(manifestDigest);
    for (const blob of blobs) held.add(blob);
    for (const child of manifests) await this.collectReferences(child, held);
  }

  /** What a manifest references: blobs (config, layers) and, for an index, child manifests. */
  private async referencesOf(manifestDigest: string): Promise<{ blobs: string[]; manifests: string[] }> {
    const known = this.manifestRefs.get(manifestDigest);
    if (known) return known;
    const digests = (list: unknown[]) =>
      list
        .map((d) => (d as { digest?: unknown } | undefined)?.digest)
        .filter((d): d is string => typeof d === 'string' && isDigest(d));
    try {
      const parsed = JSON.parse(await readFile(this.blobPath(manifestDigest), 'utf8')) as {
        config?: unknown;
        layers?: unknown[];
        manifests?: unknown[];
      };
      const refs = {
        blobs: digests([parsed.config, ...(parsed.layers ?? [])]),
        manifests: digests(parsed.manifests ?? []),
      };
      this.manifestRefs.set(manifestDigest, refs);
      return refs;
    } catch {
      // A missing or unreadable manifest references nothing more for now (fsck reports it); read again next time.
      return { blobs: [], manifests: [] };
    }
  }

  private async readIndex(): Promise<LayoutIndex> {
    try {
      return JSON.parse(await readFile(path.join(this.location, 'index.json'), 'utf8')) as LayoutIndex;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new StoreError(
          'NAME_UNKNOWN',
          `${this.location} is not a checkpoint store (no index.json): run computatrum up once`,
        );
      }
      throw error;
    }
  }

  private async writeIndex(index: LayoutIndex): Promise<void> {
    const temp = path.join(this.location, temporaryName('index'));
    await writeFile(temp, JSON.stringify(index, null, 1));
    await rename(temp, path.join(this.location, 'index.json')); // readers see the old or the new index, whole
  }

  /** Read-modify-write of index.json, one at a time in this process and under a lock file across processes. */
  private updateIndex(change: (index: LayoutIndex) => void | Promise<void>): Promise<void> {
    return this.exclusively(async () => {
      const index = await this.readIndex();
      await change(index);
      await this.writeIndex(index);
    });
  }

  /**
   * Runs `action` holding the index lock: one at a time in this process, and under a lock file
   * across processes. Index changes and garbage collection's deletes never interleave.
   */
  exclusively<T>(action: () => Promise<T>): Promise<T> {
    const next = this.writes.then(async () => {
      const release = await lockFile(path.join(this.location, 'index.json.lock'));
      try {
        return await action();
      } finally {
        await release();
      }
    });
    this.writes = next.catch(() => undefined);
    return next;
  }
}

/** An exclusive lock file; a lock left by a dead process is taken over after 30 s. */
async function lockFile(file: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(file).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > 30_000) await rm(file, { force: true });
      else if (Date.now() > deadline)
        throw new Error(`${file} is held by another process; remove it if no computatrum is running`);
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
