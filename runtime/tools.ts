// The Go programs computatrum runs beside itself: the Temporal CLI (dev server + Web UI) and
// stripe-mock, and kustomize, which renders deploy/. They are built once per machine with `go install`
// into a cache folder (GOBIN) and reused; one named by an environment variable or already on PATH is
// used as it is.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';

export interface ToolSpec {
  name: string;
  /** Environment variable that names an existing binary to use instead. */
  envVar: string;
  /** Go module versions to try in order: the pin first, then the nearest tags go install accepts. */
  modules: string[];
}

export const TEMPORAL_CLI: ToolSpec = {
  name: 'temporal',
  envVar: 'TEMPORAL_CLI_PATH',
  // v1.5.1 is the newest tag whose go.mod has no replace directive; it embeds server 1.29.1.
  modules: [
    'github.com/temporalio/cli/cmd/temporal@v1.5.1',
    'github.com/temporalio/cli/cmd/temporal@v1.5.0',
    'github.com/temporalio/cli/cmd/temporal@v1.4.1',
  ],
};

export const STRIPE_MOCK: ToolSpec = {
  name: 'stripe-mock',
  envVar: 'STRIPE_MOCK_PATH',
  modules: ['github.com/stripe/stripe-mock@v0.197.0'],
};

/** kustomize renders deploy/kustomize (`kustomize build deploy/kustomize/overlays/<name>`); the tests render it too. */
export const KUSTOMIZE: ToolSpec = {
  name: 'kustomize',
  envVar: 'KUSTOMIZE_PATH',
  // v5.8.1 builds with Go 1.24+ (api v0.21.1); v5.7.1 is the one before it.
  modules: ['sigs.k8s.io/kustomize/kustomize/v5@v5.8.1', 'sigs.k8s.io/kustomize/kustomize/v5@v5.7.1'],
};

export const TOOLS = [TEMPORAL_CLI, STRIPE_MOCK, KUSTOMIZE];

export class ToolError extends Error {
  override name = 'ToolError';
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** Where a tool is, without building anything: env var, then the cache folder, then PATH. */
export function findTool(tool: ToolSpec, toolsDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const named = env[tool.envVar];
  if (named) {
    if (!isExecutable(named)) throw new ToolError(`${tool.envVar}=${named} is not an executable file; fix or unset it`);
    return named;
  }
  const cached = path.join(toolsDir, 'bin', tool.name);
  if (isExecutable(cached)) return cached;
  return onPath(tool.name, env);
}

/** Like findTool, but tells the user how to get the tool when it is missing. */
export function requireTool(tool: ToolSpec, toolsDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = findTool(tool, toolsDir, env);
  if (found) return found;
  throw new ToolError(
    `${tool.name} is not installed: run \`npm run tools\` once (it builds it with Go into ${toolsDir}/bin), ` +
      `or set ${tool.envVar} to an existing ${tool.name} binary`,
  );
}

/** Where Go is when it is not on PATH: the official tarball's place. */
const GO_FALLBACKS = ['/usr/local/go/bin/go'];

function goBinary(env: NodeJS.ProcessEnv, fallbacks: string[]): string {
  const go = onPath('go', env) ?? fallbacks.find(isExecutable);
  if (!go) {
    throw new ToolError(
      'the Go toolchain (`go`) is missing: computatrum builds the Temporal CLI and stripe-mock with `go install`. ' +
        'Install Go 1.24 or newer (https://go.dev/dl) and run again, ' +
        'or point TEMPORAL_CLI_PATH / STRIPE_MOCK_PATH at existing binaries',
    );
  }
  return go;
}

function goInstall(
  go: string,
  module: string,
  gobin: string,
  log: (line: string) => void,
  env: NodeJS.ProcessEnv,
): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(go, ['install', module], {
      env: { ...env, GOBIN: gobin, GOFLAGS: env.GOFLAGS ?? '-trimpath' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let downloads = 0;
    const started = Date.now();
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      downloads += (text.match(/go: downloading/g) ?? []).length;
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const ticker = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      log(
        `  ... still building ${module}: ${seconds} s, ${downloads} modules downloaded (compiling once they are all in)`,
      );
    }, 15_000);
    child.on('close', (code) => {
      clearInterval(ticker);
      resolve({ ok: code === 0, output });
    });
  });
}

/** Builds a tool unless it is already there. Returns its path. */
export async function installTool(
  tool: ToolSpec,
  toolsDir: string,
  log: (line: string) => void = console.error,
  options: { env?: NodeJS.ProcessEnv; goFallbacks?: string[] } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  const found = findTool(tool, toolsDir, env);
  if (found) {
    log(`${tool.name}: using ${found}`);
    return found;
  }
  const go = goBinary(env, options.goFallbacks ?? GO_FALLBACKS);
  const gobin = path.join(toolsDir, 'bin');
  mkdirSync(gobin, { recursive: true });
  const failures: string[] = [];
  for (const module of tool.modules) {
    log(`${tool.name}: building ${module} with ${go} into ${gobin} (once per machine; takes a few minutes)`);
    const started = Date.now();
    const { ok, output } = await goInstall(go, module, gobin, log, env);
    if (ok) {
      log(`${tool.name}: built in ${Math.round((Date.now() - started) / 1000)} s`);
      return path.join(gobin, tool.name);
    }
    const lastLines = output.trim().split('\n').slice(-5).join('\n    ');
    failures.push(`${module}:\n    ${lastLines}`);
    log(`${tool.name}: ${module} failed; trying the next pinned version if any`);
  }
  throw new ToolError(`could not build ${tool.name}; go install said:\n  ${failures.join('\n  ')}`);
}
