// The container images without a Docker engine (none here): each Dockerfile's inputs exist and its
// entrypoints are the programs the manifests name, .dockerignore keeps what the build needs and
// nothing else, and the reference images' entrypoints do their job as plain processes: the trainer's
// `computatrum-train` trains from scratch and from a base and pushes with the lineage the worker
// checks; the instance's `computatrum-instance` serves what it pushed.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { PROJECT_ROOT } from '../../runtime/paths';
import { ANNOTATION } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { materializeCheckpoint } from '../../store/materialize';

jest.setTimeout(120_000);

const execute = promisify(execFile);
const IMAGES = path.join(PROJECT_ROOT, 'deploy', 'images');
const dockerfile = (name: string) => readFileSync(path.join(IMAGES, `${name}.Dockerfile`), 'utf8');
/** Instructions with their continuation lines joined. */
const instructions = (text: string): string[] =>
  text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() && !line.trim().startsWith('#'));
const jsonForm = (text: string, instruction: string): string[] =>
  JSON.parse(
    instructions(text)
      .find((line) => line.startsWith(`${instruction} `))!
      .slice(instruction.length + 1),
  );

describe('the Dockerfiles', () => {
  const daemon = dockerfile('daemon');
  /** The programs the daemon's image links onto PATH: name -> file in the repository. */
  const onPath = Object.fromEntries(
    [...daemon.matchAll(/ln -s \/app\/(\S+) \/usr\/local\/bin\/(\S+)/g)].map((m) => [m[2]!, m[1]!]),
  );

  test('copy only what exists, and build with the scripts package.json has', () => {
    for (const line of instructions(daemon).filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      const sources = line.split(/\s+/).slice(1, -1);
      for (const source of sources) expect(existsSync(path.join(PROJECT_ROOT, source))).toBe(true);
    }
    const scripts = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as any).scripts;
    for (const [, script] of daemon.matchAll(/npm run ([\w:]+)/g)) expect(scripts[script!]).toEqual(expect.any(String));
    expect(daemon).toContain('npm prune --omit=dev');
    // The bundle the worker loads is the one the build wrote, checked against the pruned tree.
    const bundle = /COMPUTATRUM_WORKFLOW_BUNDLE=(\S+)/.exec(daemon)![1]!;
    expect(daemon).toContain(`npm run build:workflows -- ${bundle}`);
    expect(daemon).toContain('node scripts/build-workflows.js --check "$COMPUTATRUM_WORKFLOW_BUNDLE"');
  });

  test('start programs that exist and are executable, the ones the manifests and the runners name', () => {
    expect(jsonForm(daemon, 'ENTRYPOINT')).toEqual(['node', '/app/bin/computatrum.js']);
    expect(Object.keys(onPath).sort()).toEqual(['computatrum', 'computatrum-instance', 'computatrum-train']);
    for (const file of Object.values(onPath)) {
      accessSync(path.join(PROJECT_ROOT, file), constants.X_OK);
      expect(readFileSync(path.join(PROJECT_ROOT, file), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
    }
    // deploy/training-job.yaml runs `computatrum-train`; the instance runner runs the image's entrypoint.
    expect(jsonForm(dockerfile('trainer'), 'ENTRYPOINT')).toEqual(['computatrum-train']);
    expect(jsonForm(dockerfile('instance'), 'ENTRYPOINT')).toEqual(['computatrum-instance']);
    expect(dockerfile('instance')).toMatch(/HOST=0\.0\.0\.0/);
    for (const name of ['trainer', 'instance']) expect(dockerfile(name)).toMatch(/^FROM \$\{DAEMON_IMAGE\}$/m);
    expect(daemon).toMatch(/^USER 10001:10001$/m);
  });

  test('.dockerignore keeps installed, built, secret and test files out, and what the build needs in', () => {
    const patterns = readFileSync(path.join(PROJECT_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    const ignored = (file: string) =>
      patterns.some((pattern) =>
        pattern.startsWith('**/*')
          ? file.endsWith(pattern.slice(4))
          : file === pattern || file.startsWith(`${pattern}/`),
      );
    for (const file of [
      'node_modules/pino/package.json',
      'dist/cli/main.js',
      'test/helpers/temporal.ts',
      '.git/HEAD',
      '.env',
    ])
      expect({ file, ignored: ignored(file) }).toEqual({ file, ignored: true });
    for (const file of [
      'package.json',
      'package-lock.json',
      'bin/computatrum-train.js',
      'scripts/build-workflows.js',
      'workflows/index.ts',
      'prisma/schema.prisma',
      'deploy/training-job.yaml',
      'activities/runners/tiny-trainer/corpus.txt',
    ])
      expect({ file, ignored: ignored(file) }).toEqual({ file, ignored: false });
  });
});

describe("the reference images' entrypoints, run as plain processes", () => {
  let dir: string;
  let store: LayoutStore;
  const REPO = 'germline/image-test';

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'images-'));
    store = await new LayoutStore(path.join(dir, 'store')).init();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** computatrum-train as the Job runs it: the runner's environment, the store the pod pushes to. */
  async function train(runId: string, extra: NodeJS.ProcessEnv) {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      COMPUTATRUM_STORE: 'layout',
      COMPUTATRUM_STORE_PATH: store.location,
      COMPUTATRUM_RUN_ID: runId,
      COMPUTATRUM_GPUS: '0',
      COMPUTATRUM_MAX_SECONDS: '600',
      COMPUTATRUM_BASE_DIR: path.join(dir, runId, 'base'),
      COMPUTATRUM_OUTPUT_DIR: path.join(dir, runId, 'output'),
      COMPUTATRUM_OUTPUT_REF: `${REPO}:run-${runId}`,
      ...extra,
    };
    try {
      const { stderr } = await execute(process.execPath, [path.join(PROJECT_ROOT, 'bin/computatrum-train.js')], {
        env,
      });
      return { code: 0, stderr };
    } catch (error) {
      const failed = error as { code: number; stderr: string };
      return { code: failed.code, stderr: failed.stderr };
    }
  }

  const manifestOf = async (reference: string) => {
    const stored = await store.getManifest(REPO, reference);
    return { digest: stored!.digest, manifest: JSON.parse(stored!.bytes.toString('utf8')) as any };
  };

  test('computatrum-train trains, pushes its newest checkpoint, and names the base it started from', async () => {
    const scratch = await train('scratch', {});
    expect(scratch).toMatchObject({ code: 0 });
    expect(scratch.stderr).toMatch(new RegExp(`pushed checkpoint-\\d{8} to ${REPO}:run-scratch \\(sha256:`));
    const first = await manifestOf('run-scratch');
    expect(first.manifest.annotations[ANNOTATION.trainingRun]).toBe('scratch');
    expect(first.manifest.annotations[ANNOTATION.parent]).toBeUndefined();

    // The next run starts from that one, pulled by digest, as the runner sets COMPUTATRUM_BASE_REF.
    const next = await train('next', { COMPUTATRUM_BASE_REF: `${REPO}@${first.digest}` });
    expect(next).toMatchObject({ code: 0 });
    expect(next.stderr).toContain(`pulled ${REPO}@${first.digest}`);
    const second = await manifestOf('run-next');
    // The worker moves the branch only when the pushed checkpoint names the run's base as its parent.
    expect(second.manifest.annotations[ANNOTATION.parent]).toBe(first.digest);
    expect(second.digest).not.toBe(first.digest);
  });

  test("computatrum-train without the Job's environment says what is missing and exits 2 (not retried)", async () => {
    const result = await train('broken', { COMPUTATRUM_OUTPUT_REF: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('COMPUTATRUM_OUTPUT_REF is not set');
  });

  test('computatrum-instance serves the pushed checkpoint on PORT and stops cleanly on SIGTERM', async () => {
    const modelDir = path.join(dir, 'model');
    await materializeCheckpoint(store, REPO, 'run-scratch', modelDir);
    const port = await freePort();
    const server: ChildProcessWithoutNullStreams = spawn(
      process.execPath,
      [path.join(PROJECT_ROOT, 'bin/computatrum-instance.js')],
      {
        env: {
          PATH: process.env.PATH,
          COMPUTATRUM_MODEL_DIR: modelDir,
          COMPUTATRUM_MODEL_NAME: 'image-test',
          PORT: String(port),
          HOST: '127.0.0.1',
        },
      },
    );
    const exited = new Promise<number | null>((resolve) => server.on('exit', resolve));
    let output = '';
    server.stderr.on('data', (chunk) => (output += chunk));
    await new Promise<void>((resolve, reject) => {
      server.stdout.on('data', (chunk) => {
        output += chunk;
        if (output.includes('serving image-test')) resolve();
      });
      void exited.then((code) => reject(new Error(`computatrum-instance exited with ${code}:\n${output}`)));
    });
    try {
      const models = await fetch(`http://127.0.0.1:${port}/v1/models`);
      expect(models.status).toBe(200);
      expect(((await models.json()) as any).data.map((m: any) => m.id)).toEqual(['image-test']);
      const chat = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'image-test', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }),
      });
      expect(chat.status).toBe(200);
      expect(((await chat.json()) as any).usage.completion_tokens).toBeGreaterThan(0);
    } finally {
      server.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
