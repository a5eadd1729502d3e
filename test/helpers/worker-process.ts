// A worker in an OS process of its own (test/helpers/worker-process-main.ts through tsx): what a test
// needs to kill a worker with -9, which an in-process worker (test/helpers/temporal.ts) cannot be.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface WorkerProcessOptions {
  taskQueue: string;
  /** The daemon's data folder (training runs) and the checkpoint store's OCI layout folder. */
  dataDir: string;
  storeDir: string;
  /** The local instance runner's folder and its instances' default argv. */
  instancesDir: string;
  instanceCommand: string[];
  /** Activities in flight get this long to finish after SIGTERM (default 0: cancelled at once). */
  shutdownGraceSeconds?: number;
}

export interface WorkerProcess {
  pid: number;
  /** Ids of instance processes the sweep at its start stopped. */
  swept: string[];
  /** Everything it wrote to stderr so far (its log). */
  stderr(): string;
  /** SIGKILL: no shutdown, no activity finished or failed, nothing flushed. Resolves when it has exited. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful shutdown), then SIGKILL if it is still there after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const MAIN = path.join(__dirname, 'worker-process-main.ts');

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

/** Starts the worker process and resolves once it polls its task queue. */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, COMPUTATRUM_TEST_WORKER: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const ready = await new Promise<{ pid: number; swept: string[] }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('ready ')) resolve(JSON.parse(line.slice('ready '.length)));
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`the worker process exited (${code ?? signal}) before it was ready:\n${stderr}`)),
    );
  });
  return {
    pid: ready.pid,
    swept: ready.swept,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    },
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited(child);
      clearTimeout(timer);
    },
  };
}
