// `computatrum up` as an operator runs it, for the end-to-end tests: the real process on the embedded
// default (Temporal dev server + PGlite) on free ports, the real CLI beside it, Ctrl-C to stop.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../runtime/embedded/temporal-dev-server';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/computatrum.js');
const run = promisify(execFile);

export interface Up {
  process: ChildProcessWithoutNullStreams;
  output: () => string;
  exited: Promise<number | null>;
}

/** The environment of an embedded `up` in `dataDir`, on free ports, with nothing of the test run's own services. */
export async function upEnvironment(dataDir: string, germline: string): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COMPUTATRUM_DATA_DIR: dataDir,
    COMPUTATRUM_GERMLINE: germline,
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    PGLITE_PORT: String(await freePort()),
    PLATFORM_PORT: String(await freePort()),
    LOG_PRETTY: 'false',
    LOG_LEVEL: 'warn',
    // No behaviour probes: their instances outlive these short runs (see the probes' own tests).
    COMPUTATRUM_PROBE_MAX_COST: '0',
  };
  delete env.DATABASE_URL; // the embedded default: PGlite
  delete env.TEMPORAL_ADDRESS;
  delete env.COMPUTATRUM_TEST_GLOBALS;
  return env;
}

export function startUp(env: NodeJS.ProcessEnv, ...options: string[]): Promise<Up> {
  const child = spawn(process.execPath, [BIN, 'up', ...options], { env, cwd: ROOT });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = () => {
      if (output.includes('Press Ctrl-C')) {
        child.stdout.off('data', onData);
        resolve({ process: child, output: () => output, exited });
      }
    };
    child.stdout.on('data', onData);
    void exited.then((code) => reject(new Error(`computatrum up exited with ${code} before it was ready:\n${output}`)));
  });
}

export async function cli(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
