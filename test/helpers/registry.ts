// A real OCI Distribution registry for tests: Debian's docker-registry (CNCF Distribution v2) on
// loopback, with filesystem storage in a temporary folder that goes away with it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const REGISTRY_BINARY = '/usr/bin/docker-registry';
const READY_TIMEOUT_MS = 10_000;

export interface TestRegistry {
  url: string;
  /** The registry's filesystem storage root, for tests that look at what it stored. */
  storageDir: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** The registry's `auth` section, e.g. token authentication (test/helpers/token-server.ts). */
  auth?: Record<string, unknown>;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BINARY)) {
    throw new Error(
      `${REGISTRY_BINARY} is missing: install Debian's docker-registry package (apt-get install docker-registry)`,
    );
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'computatrum-registry-'));
  const storageDir = path.join(dir, 'storage');
  const port = await freePort();
  const configFile = path.join(dir, 'config.yml');
  await writeFile(configFile, registryConfig(storageDir, port, options));

  const child = spawn(REGISTRY_BINARY, ['serve', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => {
    stderr = (stderr + data.toString()).slice(-4000); // the tail, for a failure message
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await terminate(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(url, child, () => stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, storageDir, stop };
}

function registryConfig(storageDir: string, port: number, options: RegistryOptions): string {
  // JSON is YAML; no http.debug section, so no debug server.
  return JSON.stringify({
    version: 0.1,
    log: { level: 'error', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `127.0.0.1:${port}` },
    ...(options.auth ? { auth: options.auth } : {}),
  });
}

/** A port nobody listens on now: the one the OS picks for port 0. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not find a free port');
  return address.port;
}

async function waitUntilReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before serving: ${stderr()}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || (res.status === 401 && res.headers.has('www-authenticate'))) return; // 401: it wants a login
      lastError = `GET /v2/ answered ${res.status}`;
    } catch (error) {
      lastError = String((error as Error).cause ?? error);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`docker-registry at ${url} not ready after ${READY_TIMEOUT_MS} ms (${lastError}): ${stderr()}`);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 5_000); // should it hang on shutdown
  await exited;
  clearTimeout(kill);
}
