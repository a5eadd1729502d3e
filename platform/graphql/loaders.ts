// Per-request batching of the fields a list asks once per item (an image's threads, its
// recordings, the run that made a checkpoint): every load made while one level of a list resolves goes to the database as one
// query, and a key asked twice in a request is read once. A fresh set per request, so nothing one
// caller may read is ever handed to another.
import type { TrainingRun } from '@prisma/client';
import type { Database } from '../../db/prisma';
import { runsThatMade } from '../datasets';
import { listRecordingsOf, listThreadsOf, type RecordingView, type ThreadView } from '../hub';

/** DataLoader's idea in a few lines: keys collected until the current round of promise jobs ends. */
export class BatchLoader<K, V> {
  private pending: Array<{ key: K; resolve: (value: V) => void; reject: (error: unknown) => void }> | undefined;
  private readonly loaded = new Map<K, Promise<V>>();

  constructor(
    private readonly batch: (keys: K[]) => Promise<Map<K, V>>,
    private readonly missing: () => V,
  ) {}

  load(key: K): Promise<V> {
    const known = this.loaded.get(key);
    if (known) return known;
    const promise = new Promise<V>((resolve, reject) => {
      if (!this.pending) {
        this.pending = [];
        // After the promise jobs already queued: the sibling items of a list resolve in them.
        void Promise.resolve().then(() => process.nextTick(() => this.dispatch()));
      }
      this.pending.push({ key, resolve, reject });
    });
    this.loaded.set(key, promise);
    return promise;
  }

  private dispatch(): void {
    const waiting = this.pending ?? [];
    this.pending = undefined;
    this.batch([...new Set(waiting.map((w) => w.key))]).then(
      (values) => {
        for (const w of waiting) w.resolve(values.has(w.key) ? values.get(w.key)! : this.missing());
      },
      (error: unknown) => {
        for (const w of waiting) {
          this.loaded.delete(w.key);
          w.reject(error);
        }
      },
    );
  }
}

export interface Loaders {
  threadsOf: BatchLoader<string, ThreadView[]>;
  recordingsOf: BatchLoader<string, RecordingView[]>;
  /** The succeeded training run that made a checkpoint, by its digest. */
  runThatMade: BatchLoader<string, TrainingRun | null>;
}

export function requestLoaders(db: Database): Loaders {
  return {
    threadsOf: new BatchLoader(
      (repositories) => listThreadsOf(db, repositories),
      () => [],
    ),
    recordingsOf: new BatchLoader(
      (repositories) => listRecordingsOf(db, repositories),
      () => [],
    ),
    runThatMade: new BatchLoader(
      (digests) => runsThatMade(db, digests),
      () => null,
    ),
  };
}
