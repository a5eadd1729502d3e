// Blob downloads on worker threads: the thread that reads a response from its socket also writes
// the bytes to the `.partial` file and feeds them to SHA-256, so no byte is copied between threads
// or read back from the disk, and the downloads of a pull spread over the cores. The main thread
// keeps the decisions (what to resume, whether the digest matches, the rename).
//
// Measured with bench/checkpoints on 2 cores shared with the server (512 MB, 4 files at once):
// re-reading each file from the disk after its download and sync left a tail of hashing after the
// last byte (ratio to curl + sync about 0.62); hashing on the main thread serialises receive and
// hash on one core; a hash thread fed with copies of the chunks costs more CPU in copies and
// messages than it saves. Receiving, writing and hashing in the same thread used the least CPU
// (client about 1.4 CPU-s, curl 0.6, SHA-256 alone about 0.5 here), and syncing every 16 MiB
// while the body flows moves most of the disk writes out of the final fdatasync.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export interface ReceiveJob {
  url: string;
  headers: Record<string, string>;
  /** The `.partial` file. */
  file: string;
  /**
   * Bytes of `file` kept by an earlier attempt: they are hashed from the disk first, then only
   * the rest is requested (Range). If the server answers 200 instead, the file starts over.
   */
  have: number;
  /** The blob's size, for the Content-Range a resume must carry. */
  size: number;
}

/** What the file holds once the body has ended and the file is synced. */
export interface Received {
  /** sha256 of every byte of the file: the kept ones, then the received ones. */
  digest: string;
  size: number;
  /** Bytes received from the server. */
  received: number;
}

/** Why a download did not finish. `received` bytes were written to the file and kept. */
export type ReceiveFailure =
  | { kind: 'status'; status: number; contentRange?: string }
  /** The request failed before any answer: the server is not there. */
  | { kind: 'unreachable'; code?: string; message: string }
  /** The connection broke while the body flowed. */
  | { kind: 'interrupted'; code?: string; message: string; received: number }
  | { kind: 'disk'; code?: string; message: string; received: number };

export class ReceiveError extends Error {
  override name = 'ReceiveError';
  constructor(readonly failure: ReceiveFailure) {
    super('message' in failure ? failure.message : `status ${failure.status}`);
  }

  /** The errno code (ENOSPC, ECONNRESET, ...) where there is one. */
  get code(): string | undefined {
    return 'code' in this.failure ? this.failure.code : undefined;
  }
}

// Plain JS run with `eval`, so the pool works the same under tsx, jest and compiled code.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const READ_CHUNK = 4 * 1024 * 1024;
// Written bytes are synced every so often while the body flows, one sync at a time, so the disk
// writes them during the download instead of all at the end (measured: the final sync is most of
// the gap to curl + sync otherwise). The final fdatasync still decides durability.
const SYNC_EVERY = 16 * 1024 * 1024;
const PROGRESS_MS = 100;

function writeAll(fd, chunk, position) {
  let written = 0;
  while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written, position + written);
}

function receive({ id, url, headers, file, have, size }) {
  let fd;
  let settled = false;
  let received = 0;
  // At most one fdatasync in flight; the file is closed only after it returns.
  let syncing = false;
  let syncError;
  let afterSync;
  const sync = (then) => {
    syncing = true;
    fs.fdatasync(fd, (error) => {
      syncing = false;
      // Linux reports a failed write-back once per file: a later sync would succeed, so it is kept.
      if (error && !syncError) syncError = error;
      const next = afterSync;
      afterSync = undefined;
      if (then) then();
      if (next) next();
    });
  };
  const whenSynced = (then) => (syncing ? (afterSync = then) : then());
  const finish = (message) => {
    if (settled) return;
    settled = true;
    whenSynced(() => {
      if (fd !== undefined) {
        try { fs.closeSync(fd); } catch {}
        fd = undefined;
      }
      parentPort.postMessage({ id, ...message });
    });
  };
  const failure = (kind, error) => ({ failure: { kind, code: error.code, message: error.message, received } });

  // The bytes an earlier attempt kept are hashed from the disk before anything is requested.
  let hash = createHash('sha256');
  let kept = 0;
  try {
    if (have > 0) {
      fd = fs.openSync(file, 'r+');
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, have));
      while (kept < have) {
        const read = fs.readSync(fd, buffer, 0, Math.min(buffer.length, have - kept), kept);
        if (read === 0) break; // shorter than it was a moment ago: resume from what is there
        hash.update(buffer.subarray(0, read));
        kept += read;
      }
    }
  } catch (error) {
    finish(failure('disk', error));
    return;
  }

  const rangeHeaders = (given) => (kept > 0 ? { ...given, range: 'bytes=' + kept + '-' } : given);
  let request;
  // Registries hand blob downloads off to object storage with a redirect; the credentials stay
  // with the host they were given for (a presigned URL carries its own).
  const get = (target, given, redirects) => {
    const client = target.protocol === 'https:' ? https : http;
    request = client.get(target, { headers: rangeHeaders(given), agent: agents[target.protocol] }, (body) => {
      const location = body.headers.location;
      if ([301, 302, 303, 307, 308].includes(body.statusCode) && location && redirects > 0) {
        body.resume();
        const next = new URL(location, target);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          finish({ failure: { kind: 'status', status: body.statusCode } });
          return;
        }
        const withoutCredentials = Object.fromEntries(Object.entries(given).filter(([name]) => name.toLowerCase() !== 'authorization'));
        get(next, next.host === target.host ? given : withoutCredentials, redirects - 1);
        return;
      }
      respond(body);
    });
    request.on('error', (error) => finish(failure(received > 0 || request.res ? 'interrupted' : 'unreachable', error)));
  };
  const respond = (body) => {
    const status = body.statusCode || 0;
    const contentRange = body.headers['content-range'];
    const resumed = kept > 0 && status === 206 && contentRange === 'bytes ' + kept + '-' + (size - 1) + '/' + size;
    if (status < 200 || status > 299 || (status === 206 && !resumed)) {
      body.destroy(); // its bytes are of no use, however many there are
      finish({ failure: { kind: 'status', status, contentRange } });
      return;
    }
    let position = kept;
    try {
      if (kept > 0 && !resumed) {
        // A 200 to a Range request: the whole blob again, from the start, and its hash with it.
        hash = createHash('sha256');
        position = 0;
        fs.ftruncateSync(fd, 0);
      }
      if (fd === undefined) fd = fs.openSync(file, 'w');
    } catch (error) {
      body.destroy();
      finish(failure('disk', error));
      return;
    }
    let unsynced = 0;
    let reported = Date.now();
    body.on('data', (chunk) => {
      if (settled) return;
      try {
        writeAll(fd, chunk, position);
      } catch (error) {
        body.destroy();
        finish(failure('disk', error));
        return;
      }
      hash.update(chunk);
      position += chunk.length;
      received += chunk.length;
      unsynced += chunk.length;
      if (unsynced >= SYNC_EVERY && !syncing) {
        unsynced = 0;
        sync();
      }
      const now = Date.now();
      if (now - reported >= PROGRESS_MS) {
        reported = now;
        parentPort.postMessage({ id, progress: { done: position, received } });
      }
    });
    body.on('error', (error) => finish(failure('interrupted', error)));
    body.on('end', () => {
      if (settled) return;
      if (!body.complete) {
        finish(failure('interrupted', Object.assign(new Error('the connection closed before the end of the body'), { code: 'ECONNRESET' })));
        return;
      }
      whenSynced(() => {
        if (settled) return;
        try {
          fs.ftruncateSync(fd, position); // the file is exactly what was hashed, even if it held more
        } catch (error) {
          finish(failure('disk', error));
          return;
        }
        // On the thread pool, so this thread's other downloads keep flowing meanwhile.
        sync(() => {
          if (syncError) finish(failure('disk', syncError));
          else finish({ result: { digest: 'sha256:' + hash.digest('hex'), size: position, received } });
        });
      });
    });
  };
  get(new URL(url), headers, 5);
}

parentPort.on('message', (job) => {
  try {
    receive(job);
  } catch (error) {
    parentPort.postMessage({ id: job.id, failure: { kind: 'interrupted', code: error.code, message: error.message, received: 0 } });
  }
});
`;

interface Running {
  worker: Worker;
  onProgress?: (done: number, received: number) => void;
  resolve: (value: Received) => void;
  reject: (error: Error) => void;
}

type WorkerMessage = { id: number } & (
  { progress: { done: number; received: number } } | { result: Received } | { failure: ReceiveFailure }
);

/**
 * A few receiving threads; each carries several downloads at once (they wait on sockets, not on
 * the CPU). Idle threads do not keep the process alive.
 */
export class ReceivePool {
  private readonly workers: Worker[] = [];
  private readonly load = new Map<Worker, number>();
  private readonly running = new Map<number, Running>();
  private nextId = 0;

  constructor(readonly size = Math.min(availableParallelism(), 4)) {}

  /** Downloads `job.url` into `job.file` and returns the digest of the whole file, once it is synced. */
  receive(job: ReceiveJob, onProgress?: (done: number, received: number) => void): Promise<Received> {
    return new Promise((resolve, reject) => {
      const worker = this.pick();
      const id = this.nextId++;
      this.running.set(id, { worker, onProgress, resolve, reject });
      this.load.set(worker, this.load.get(worker)! + 1);
      worker.ref();
      worker.postMessage({ id, ...job });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.load.clear();
  }

  /** The least busy thread, or a new one while the pool is not full. */
  private pick(): Worker {
    let best: Worker | undefined;
    for (const worker of this.workers)
      if (best === undefined || this.load.get(worker)! < this.load.get(best)!) best = worker;
    if (best !== undefined && (this.load.get(best) === 0 || this.workers.length >= this.size)) return best;
    return this.spawn();
  }

  private settle(id: number): Running | undefined {
    const job = this.running.get(id);
    if (!job) return undefined;
    this.running.delete(id);
    const load = this.load.get(job.worker);
    if (load !== undefined) {
      this.load.set(job.worker, load - 1);
      if (load === 1) job.worker.unref();
    }
    return job;
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on('message', (message: WorkerMessage) => {
      if ('progress' in message) {
        this.running.get(message.id)?.onProgress?.(message.progress.done, message.progress.received);
        return;
      }
      const job = this.settle(message.id);
      if (!job) return;
      if ('result' in message) job.resolve(message.result);
      else job.reject(new ReceiveError(message.failure));
    });
    // A thread that crashes, or is terminated by close(), fails its own downloads (their files stay,
    // to resume) and is replaced on demand.
    const gone = (why: string) => {
      for (const [id, job] of [...this.running]) {
        if (job.worker !== worker) continue;
        this.settle(id);
        job.reject(new ReceiveError({ kind: 'interrupted', message: why, received: 0 }));
      }
      if (this.workers.includes(worker)) this.workers.splice(this.workers.indexOf(worker), 1);
      this.load.delete(worker);
    };
    worker.on('error', (error) => gone(error.message));
    worker.on('exit', () => gone('the receiving thread stopped'));
    this.workers.push(worker);
    this.load.set(worker, 0);
    worker.unref();
    return worker;
  }
}

let shared: ReceivePool | undefined;

/** The process-wide pool. */
export function receivePool(): ReceivePool {
  return (shared ??= new ReceivePool());
}
