// npm run bench:cli [-- --runs 10]
//
// How long the CLI takes, from the user's shell to the answer: `computatrum --help`, `--version` and
// `status` (a query of the germline workflow), each a fresh process as a person starts it, beside
// `temporal workflow query --name status` of the same germline with the Temporal CLI (a Go binary:
// the floor for asking Temporal anything from a shell). Goals: --help under 300 ms, status within
// 5x the Temporal CLI. The stack is `computatrum up` itself, in a temp folder on free ports; each
// command runs once unmeasured first (which also compiles dist/ if a source changed), then `--runs`
// times, interleaved, and the median and the fastest run are reported.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../runtime/config';
import { freePort } from '../runtime/embedded/temporal-dev-server';
import { requireTool, TEMPORAL_CLI } from '../runtime/tools';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const RUNS = Number(values.runs);
const BIN = path.join(__dirname, '..', 'bin', 'computatrum.js');
const GERMLINE = 'bench';
const HELP_GOAL_MS = 300;
const STATUS_GOAL_RATIO = 5;

/** `computatrum up` in `dir`; resolves with the Temporal address it prints once everything is up. */
async function startUp(env: NodeJS.ProcessEnv): Promise<{ up: ChildProcess; address: string }> {
  const up = spawn(process.execPath, [BIN, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`computatrum up did not come up in 180 s:\n${output}`)), 180_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Temporal\s+(\S+:\d+) \(namespace/.exec(output);
      if (match && output.includes('Press Ctrl-C to stop.')) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    up.stdout!.on('data', read);
    up.stderr!.on('data', read);
    up.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`computatrum up exited (${code}):\n${output}`));
    });
  });
  up.stdout!.resume();
  up.stderr!.resume();
  return { up, address };
}

async function stopUp(up: ChildProcess): Promise<void> {
  if (up.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => up.once('exit', () => resolve()));
  up.kill('SIGINT');
  const timer = setTimeout(() => up.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

interface Target {
  name: string;
  argv: string[];
}

/** Wall time of one run in ms; a failing command stops the benchmark with its output. */
function timeOnce(target: Target, env: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(target.argv[0]!, target.argv.slice(1), { env, encoding: 'utf8' });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${target.name} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  return elapsed;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

async function main(): Promise<void> {
  const temporal = requireTool(TEMPORAL_CLI, loadConfig().toolsDir);
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-bench-cli-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COMPUTATRUM_DATA_DIR: dir,
    COMPUTATRUM_GERMLINE: GERMLINE,
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    PGLITE_PORT: String(await freePort()),
    PLATFORM_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
    LOG_PRETTY: 'false',
  };
  delete env.TEMPORAL_ADDRESS;
  delete env.DATABASE_URL;
  console.log(`starting computatrum up in ${dir}...`);
  const { up, address } = await startUp(env);
  try {
    const node = process.execPath;
    const targets: Target[] = [
      { name: 'computatrum --help', argv: [node, BIN, '--help'] },
      { name: 'computatrum --version', argv: [node, BIN, '--version'] },
      { name: 'computatrum status', argv: [node, BIN, 'status'] },
      {
        name: 'temporal workflow query --name status',
        argv: [
          temporal,
          'workflow',
          'query',
          '--workflow-id',
          `germline/${GERMLINE}`,
          '--name',
          'status',
          '--address',
          address,
        ],
      },
    ];
    for (const target of targets) timeOnce(target, env); // warm the file cache (and build dist/ if stale)
    const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let run = 0; run < RUNS; run++)
      for (const target of targets) times.get(target.name)!.push(timeOnce(target, env));

    const floor = median(times.get(targets[3]!.name)!);
    console.log(`\n${RUNS} runs each, interleaved; Temporal at ${address}, germline/${GERMLINE}\n`);
    console.log(
      `${'command'.padEnd(40)} ${'median'.padStart(9)} ${'fastest'.padStart(9)} ${'vs temporal'.padStart(12)}`,
    );
    for (const target of targets) {
      const ms = times.get(target.name)!;
      const ratio = median(ms) / floor;
      console.log(
        `${target.name.padEnd(40)} ${`${median(ms).toFixed(0)} ms`.padStart(9)} ${`${Math.min(...ms).toFixed(0)} ms`.padStart(9)} ${`${ratio.toFixed(1)}x`.padStart(12)}`,
      );
    }
    const help = median(times.get('computatrum --help')!);
    const status = median(times.get('computatrum status')!) / floor;
    console.log(
      `\n--help ${help.toFixed(0)} ms: ${help < HELP_GOAL_MS ? 'meets' : 'misses'} the goal of under ${HELP_GOAL_MS} ms`,
    );
    console.log(
      `status ${status.toFixed(1)}x the Temporal CLI: ${status <= STATUS_GOAL_RATIO ? 'meets' : 'misses'} the goal of within ${STATUS_GOAL_RATIO}x`,
    );
  } finally {
    await stopUp(up);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
