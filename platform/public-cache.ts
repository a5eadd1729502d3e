// Answers that are the same for every caller and change only when a tag, a breed, a thread, a
// comment or a recording does, kept in memory so that the public reads (the daily checkpoints, the
// marketplace, the hub's discussions) cost no database query. Every write to those tables, by any
// process (the worker tags the daily checkpoint; several platform replicas may run), counts the
// database's public generation up and notifies `computatrum_public` (a trigger, migration
// 0019_public_cache_notify), so a replica forgets its answers:
// - on PostgreSQL, when the notification arrives (LISTEN on its own connection);
// - on PGlite, whose one session hands another connection's notifications to the notifier and never
//   to the listener, or when listening fails: by reading the generation at most every `checkMs`
//   (coalesced: one query however many requests wait), so an answer is at most that stale.
// A TTL bounds every answer as a safety net, and the cache is bounded in entries and bytes (LRU).
import { createHash } from 'node:crypto';
import { Client } from 'pg';
import type { Database } from '../db/prisma';

export const PUBLIC_CHANNEL = 'computatrum_public';

export interface PublicCacheOptions {
  db: Database;
  /** Where to LISTEN for changes; without it (or on PGlite) the generation is read instead. */
  databaseUrl?: string;
  maxEntries?: number;
  maxBytes?: number;
  /** The longest an answer is kept, whatever the database says: a safety net. */
  ttlMs?: number;
  /** When not listening: how stale an answer may be (0: the generation is read before every answer). */
  checkMs?: number;
  log?: { warn(details: object, message: string): void };
  now?: () => number;
}

export interface CachedAnswer {
  body: string;
  /** A strong validator of `body`, quoted as the ETag header wants it. */
  etag: string;
  storedAt: number;
}

export const PUBLIC_CACHE_DEFAULTS = {
  maxEntries: 1_000,
  maxBytes: 32 * 1024 * 1024,
  ttlMs: 60_000,
  checkMs: 1_000,
};

export class PublicCache {
  private readonly entries = new Map<string, CachedAnswer>();
  private bytes = 0;
  /** Counted up by every invalidation: an answer computed under an older epoch is never stored. */
  private epoch = 0;
  private generation: string | undefined;
  private checkedAt = -Infinity;
  private checking: Promise<void> | undefined;
  private listener: Client | undefined;
  private readonly settings: typeof PUBLIC_CACHE_DEFAULTS;
  private readonly now: () => number;

  constructor(private readonly options: PublicCacheOptions) {
    this.settings = {
      maxEntries: options.maxEntries ?? PUBLIC_CACHE_DEFAULTS.maxEntries,
      maxBytes: options.maxBytes ?? PUBLIC_CACHE_DEFAULTS.maxBytes,
      ttlMs: options.ttlMs ?? PUBLIC_CACHE_DEFAULTS.ttlMs,
      checkMs: options.checkMs ?? PUBLIC_CACHE_DEFAULTS.checkMs,
    };
    this.now = options.now ?? Date.now;
  }

  /** True while changes arrive as notifications (PostgreSQL); false while the generation is read (PGlite). */
  get listening(): boolean {
    return this.listener !== undefined;
  }

  /** What it holds: answers, and their bytes with their keys (characters, as JavaScript counts them). */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** Listens for changes where the database can tell this process (PostgreSQL); otherwise reads the generation. */
  async start(): Promise<void> {
    if (!this.options.databaseUrl || this.listener) return;
    const client = new Client({ connectionString: this.options.databaseUrl });
    try {
      await client.connect();
      const { rows } = await client.query<{ version: string }>('SELECT version()');
      if (rows[0]?.version.includes('PGlite')) {
        await client.end();
        return;
      }
      client.on('notification', () => this.invalidate());
      // A lost connection may have lost notifications too: forget everything, read the generation from now on.
      client.on('error', (error) => this.stopListening(client, error));
      client.on('end', () => this.stopListening(client));
      await client.query(`LISTEN ${PUBLIC_CHANNEL}`);
      this.listener = client;
      this.invalidate();
    } catch (error) {
      this.options.log?.warn({ err: error }, 'public cache: cannot LISTEN; reading the generation instead');
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    this.invalidate();
    await listener?.end().catch(() => undefined);
  }

  /** The answer stored under `key` while it is current (reading the generation first where due). */
  async get(key: string): Promise<CachedAnswer | undefined> {
    await this.current();
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (this.now() - entry.storedAt >= this.settings.ttlMs) {
      this.bytes -= key.length + entry.body.length;
      return undefined;
    }
    this.entries.set(key, entry); // most recently used last
    return entry;
  }

  /** Taken before an answer is computed: `set` refuses it when anything changed since. */
  ticket(): number {
    return this.epoch;
  }

  /** Stores `body` under `key` unless something changed since `ticket`; returns what was stored. */
  set(key: string, body: string, ticket: number): CachedAnswer | undefined {
    const size = key.length + body.length;
    if (ticket !== this.epoch || !(this.listener || this.generation) || size > this.settings.maxBytes / 4)
      return undefined;
    const previous = this.entries.get(key);
    if (previous) {
      this.entries.delete(key);
      this.bytes -= key.length + previous.body.length;
    }
    const entry = { body, etag: etagOf(body), storedAt: this.now() };
    this.entries.set(key, entry);
    this.bytes += size;
    for (const [oldest, old] of this.entries) {
      if (this.entries.size <= this.settings.maxEntries && this.bytes <= this.settings.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= oldest.length + old.body.length;
    }
    return entry;
  }

  /** Forgets every answer (a change was seen, or this process made one). */
  invalidate(): void {
    this.epoch++;
    this.entries.clear();
    this.bytes = 0;
  }

  private current(): Promise<void> | undefined {
    if (this.listener || this.now() - this.checkedAt < this.settings.checkMs) return undefined;
    this.checking ??= this.readGeneration().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async readGeneration(): Promise<void> {
    const started = this.now();
    try {
      const rows = await this.options.db.$queryRaw<Array<{ generation: bigint }>>`
        SELECT "generation" FROM "_computatrum_public_generation" WHERE "id" = 1`;
      const generation = String(rows[0]?.generation);
      if (generation !== this.generation) {
        this.invalidate();
        this.generation = generation;
      }
      this.checkedAt = started;
    } catch (error) {
      // Unknown: store nothing until the generation can be read again.
      this.options.log?.warn({ err: error }, 'public cache: cannot read the generation; caching nothing');
      this.invalidate();
      this.generation = undefined;
    }
  }

  private stopListening(client: Client, error?: unknown): void {
    if (this.listener !== client) return;
    this.options.log?.warn({ err: error }, 'public cache: lost the LISTEN connection; reading the generation instead');
    this.listener = undefined;
    this.generation = undefined;
    this.checkedAt = -Infinity;
    this.invalidate();
    client.end().catch(() => undefined);
  }
}

export const etagOf = (body: string): string =>
  `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;

/** Whether an If-None-Match header names `etag` (a list, weak validators and `*` included). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}
