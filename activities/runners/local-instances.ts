// The local instance runner: an instance (any process serving the OpenAI-compatible API, see the
// instance contract in ./types) as a process on this host. The `instance/<id>` workflow starts,
// checks and stops it in separate activity calls, possibly from a restarted worker, so the process
// is detached (its own process group: it outlives a worker killed with -9, and stop reaches all it
// started) and found again through `<dataDir>/<id>/process.json`. Its output goes to
// `<dataDir>/<id>/instance.log`, a file rather than a pipe, so nothing ties it to this worker.
import { spawn } from 'node:child_process';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { INSTANCE_ENV, INSTANCE_READY_PATH, INSTANCE_STOP_SECONDS, InstanceFailedError } from './types';

export interface LocalInstanceRunnerOptions {
  /** Where instance folders live (`<data>/instances`). */
  dataDir: string;
  /** The instance's argv when a spec names none. */
  defaultCommand: string[];
  logger?: Logger;
  /** How long a new instance gets to answer `GET /v1/models` with 200 (default 60 s). */
  readyTimeoutMs?: number;
}

export interface InstanceSpec {
  instanceId: string;
  modelDir: string;
  modelName: string;
  gpus: number;
  command?: string[];
  env?: Record<string, string>;
}

export interface InstanceStarted {
  endpoint: string;
  pid: number;
  /** True when a process already running for this id was taken over rather than started. */
  adopted: boolean;
}

export interface InstanceCheck {
  state: 'ready' | 'starting' | 'gone';
  endpoint?: string;
  /** Only when this worker process saw the exit: the code, or null when a signal ended it. */
  exitCode?: number | null;
  /** The end of instance.log, when gone: why it stopped. */
  logTail?: string;
}

/** What process.json holds. */
interface ProcessRecord {
  pid: number;
  port: number;
  startedAt: string;
  argv: string[];
  modelDir: string;
  modelName: string;
  /** /proc/<pid>/stat's start time (Linux): a reused pid has another, so it is not mistaken for ours. */
  procStart?: string;
}

const POLL_MS = 100;
const PROBE_TIMEOUT_MS = 2_000;
const LOG_TAIL_LINES = 30;
/**
 * Only these variables of the worker's environment reach an instance: the worker holds secrets
 * (DATABASE_URL, STRIPE_*, COMPUTATRUM_TOKEN, TEMPORAL_API_KEY, registry and cloud credentials) that
 * an instance, which may run an operator's or a model's code, has no business seeing. An allow-list,
 * because a deny-list misses every secret added later. What an instance needs beyond this comes
 * through the spec's env.
 */
const PASSED_ENV =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|TZ|TMPDIR|LD_LIBRARY_PATH|VIRTUAL_ENV|HF_HOME|LC_\w+|CUDA_\w+|NVIDIA_\w+)$/;
/** Exit codes of processes this worker started, seen by their 'exit' event (a non-child's is unknowable). */
const exitCodes = new Map<number, number | null>();
/** Pids this worker started that have not exited yet: Node reaps them, and records their exit code as it does. */
const children = new Set<number>();
/** Calls for one id run one after another in this process, so a retried start never spawns twice. */
const busy = new Map<string, Promise<unknown>>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readRecord(file: string): Promise<ProcessRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ProcessRecord;
  } catch {
    return undefined; // none (or unreadable: treated as none, the next start records afresh)
  }
}

/** Temp file + rename: a worker killed mid-write leaves the old record or the new one, never half of one. */
async function writeRecord(file: string, record: ProcessRecord): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(record));
  await rename(temp, file);
}

/** `/proc/<pid>/stat`'s state and start time; undefined without procfs (not Linux), null when no such pid. */
async function procStat(pid: number): Promise<{ state: string; start: string } | null | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return (await readFile('/proc/self/stat').catch(() => undefined)) ? null : undefined;
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": field 3 on
  return { state: fields[0]!, start: fields[19]! };
}

/** The recorded process still runs: the pid exists, is no zombie and (Linux) started when ours did. */
async function running(record: ProcessRecord): Promise<boolean> {
  const stat = await procStat(record.pid);
  if (stat === null) return false;
  // A zombie: dead, but a child of ours counts until Node has reaped it, so its exit code is known then.
  if (stat)
    return (stat.state !== 'Z' || children.has(record.pid)) && (!record.procStart || stat.start === record.procStart);
  try {
    process.kill(record.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signals the whole process group (detached: its group id is its pid); gone already is fine. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** `GET /v1/models` (INSTANCE_READY_PATH) answers 200: the contract's readiness. */
async function answers(endpoint: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}${INSTANCE_READY_PATH}`, {
      signal: AbortSignal.timeout(Math.max(timeoutMs, 1)),
    });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

async function logTail(file: string): Promise<string> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 16_384);
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } finally {
    await handle.close();
  }
}

const endpointOf = (record: ProcessRecord) => `http://127.0.0.1:${record.port}`;

export class LocalInstanceRunner {
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;

  constructor(private readonly options: LocalInstanceRunnerOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  }

  private dir(id: string): string {
    if (!/^[\w.-]+$/.test(id) || id.startsWith('.')) throw new Error(`invalid instance id ${JSON.stringify(id)}`);
    return path.join(this.options.dataDir, id);
  }
  private recordFile = (id: string) => path.join(this.dir(id), 'process.json');
  private logFile = (id: string) => path.join(this.dir(id), 'instance.log');

  private serially<T>(id: string, task: () => Promise<T>): Promise<T> {
    const result = (busy.get(id) ?? Promise.resolve()).catch(() => undefined).then(task);
    busy.set(id, result);
    void result.finally(() => busy.get(id) === result && busy.delete(id)).catch(() => undefined);
    return result;
  }

  start(spec: InstanceSpec): Promise<InstanceStarted> {
    return this.serially(spec.instanceId, () => this.startNow(spec));
  }

  private async startNow(spec: InstanceSpec): Promise<InstanceStarted> {
    const id = spec.instanceId;
    const argv = spec.command?.length ? spec.command : this.options.defaultCommand;
    const previous = await readRecord(this.recordFile(id));
    if (previous && (await running(previous))) {
      const same =
        JSON.stringify(previous.argv) === JSON.stringify(argv) &&
        previous.modelDir === spec.modelDir &&
        previous.modelName === spec.modelName;
      if (same) {
        // Ours, from an earlier call or worker: adopt it, waiting if it is still loading (starting
        // another would hold the GPUs twice).
        await this.waitReady(id, previous, () => exitCodes.has(previous.pid));
        this.log.info({ instanceId: id, pid: previous.pid }, 'instance adopted');
        return { endpoint: endpointOf(previous), pid: previous.pid, adopted: true };
      }
      this.log.info({ instanceId: id, pid: previous.pid }, 'instance spec changed: replacing the running process');
      await this.stopNow(id, INSTANCE_STOP_SECONDS * 1000);
    }

    const dir = this.dir(id);
    await mkdir(dir, { recursive: true });
    const port = await freePort();
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env))
      if (value !== undefined && PASSED_ENV.test(name)) env[name] = value;
    Object.assign(env, spec.env, {
      [INSTANCE_ENV.modelDir]: spec.modelDir,
      [INSTANCE_ENV.modelName]: spec.modelName,
      [INSTANCE_ENV.instanceId]: id,
      [INSTANCE_ENV.gpus]: String(spec.gpus),
      [INSTANCE_ENV.port]: String(port),
    });
    const log = await open(this.logFile(id), 'a');
    await log.write(`--- ${new Date().toISOString()} starting ${argv.join(' ')} on port ${port}\n`);
    // detached: its own process group and session, untouched by the worker's death or Ctrl-C.
    const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, detached: true, stdio: ['ignore', log.fd, log.fd], env });
    // 'spawn' or 'error' comes on the next tick: listened to before anything is awaited.
    const spawned = new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    await log.close(); // the child holds its own copy of the descriptor
    const failure = await spawned;
    if (failure)
      throw new InstanceFailedError(`cannot start ${argv[0]}: ${failure.message}`, await logTail(this.logFile(id)));
    const pid = child.pid!;
    exitCodes.delete(pid); // a pid this worker saw exit before, reused
    children.add(pid);
    child.once('exit', (code) => {
      children.delete(pid);
      exitCodes.set(pid, code);
    });
    child.unref(); // the worker may exit while the instance serves on
    const record: ProcessRecord = {
      pid,
      port,
      startedAt: new Date().toISOString(),
      argv,
      modelDir: spec.modelDir,
      modelName: spec.modelName,
      procStart: (await procStat(pid))?.start,
    };
    // Recorded before it is ready, so a worker dying during the wait leaves it findable.
    await writeRecord(this.recordFile(id), record);
    this.log.info({ instanceId: id, pid, port, argv }, 'instance started');
    await this.waitReady(id, record, () => child.exitCode !== null || child.signalCode !== null);
    return { endpoint: endpointOf(record), pid, adopted: false };
  }

  /** Polls readiness until the deadline; on exit or timeout kills the process and throws InstanceFailedError. */
  private async waitReady(id: string, record: ProcessRecord, exited: () => boolean): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (await answers(endpointOf(record), Math.min(PROBE_TIMEOUT_MS, deadline - Date.now()))) return;
      const gone = exited() || !(await running(record));
      if (gone || Date.now() >= deadline) {
        await this.stopNow(id, 0);
        const code = exitCodes.get(record.pid);
        const why = gone
          ? `instance ${id} exited${code === undefined ? '' : code === null ? ' on a signal' : ` with code ${code}`} before it was ready`
          : `instance ${id} did not answer GET ${INSTANCE_READY_PATH} within ${this.readyTimeoutMs} ms`;
        throw new InstanceFailedError(why, await logTail(this.logFile(id)));
      }
      await sleep(Math.min(POLL_MS, Math.max(deadline - Date.now(), 0)));
    }
  }

  async check(instanceId: string): Promise<InstanceCheck> {
    const record = await readRecord(this.recordFile(instanceId));
    if (record && (await running(record))) {
      const endpoint = endpointOf(record);
      return { state: (await answers(endpoint)) ? 'ready' : 'starting', endpoint };
    }
    const exitCode = record ? exitCodes.get(record.pid) : undefined;
    return {
      state: 'gone',
      ...(exitCode !== undefined ? { exitCode } : {}),
      logTail: await logTail(this.logFile(instanceId)),
    };
  }

  stop(
    instanceId: string,
    { graceMs = INSTANCE_STOP_SECONDS * 1000 }: { graceMs?: number } = {},
  ): Promise<{ stopped: boolean }> {
    return this.serially(instanceId, () => this.stopNow(instanceId, graceMs));
  }

  /** SIGTERM to the group (the contract: finish in-flight requests and exit), SIGKILL after graceMs. */
  private async stopNow(id: string, graceMs: number): Promise<{ stopped: boolean }> {
    const file = this.recordFile(id);
    const record = await readRecord(file);
    let stopped = false;
    if (record && (await running(record))) {
      stopped = true;
      signalGroup(record.pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
      const deadline = Date.now() + graceMs;
      while ((await running(record)) && Date.now() < deadline) await sleep(POLL_MS);
      // Also sweeps what the instance started and left behind in its group (a group id is not
      // reused while a member lives, and its leader's pid was freed only a moment ago).
      signalGroup(record.pid, 'SIGKILL');
      const killed = Date.now() + 5_000; // bounded: a process stuck in the kernel may take longer
      while ((await running(record)) && Date.now() < killed) await sleep(POLL_MS);
      this.log.info({ instanceId: id, pid: record.pid }, 'instance stopped');
    }
    await rm(file, { force: true });
    return { stopped };
  }

  /**
   * Stops the processes of instances that are no longer live, `isLive` says which (their workflow
   * ended while no worker ran: terminated, stopped meanwhile, or gone): nothing else would ever stop
   * them. An id `isLive` cannot answer for (it throws) is kept: a live instance is never stopped on a
   * doubt. A dead process's leftover record goes as well. Answers the ids whose process was stopped.
   */
  async sweep(isLive: (instanceId: string) => Promise<boolean>): Promise<string[]> {
    const stopped: string[] = [];
    for (const id of await this.list()) {
      const live = await isLive(id).catch((error: unknown) => {
        this.log.warn({ instanceId: id, err: error }, 'sweep: cannot tell whether the instance is live; kept');
        return true;
      });
      if (live) continue;
      // Serially with the id's other calls: a start in flight finishes before this looks.
      const { stopped: wasRunning } = await this.stop(id);
      if (wasRunning) {
        this.log.info({ instanceId: id }, 'sweep: stopped the process of an instance that is no longer live');
        stopped.push(id);
      }
    }
    return stopped;
  }

  /** Ids with a process.json, running or not (for sweeping orphans). */
  async list(): Promise<string[]> {
    const names = await readdir(this.options.dataDir).catch(() => [] as string[]);
    const found = await Promise.all(
      names.map(async (name) =>
        (await readRecord(path.join(this.options.dataDir, name, 'process.json'))) ? name : undefined,
      ),
    );
    return found.filter((name): name is string => name !== undefined).sort();
  }
}
