// The prebuilt workflow bundle (worker/workflow-bundle.ts) as the daemon's image uses it: built once
// by `npm run build:workflows`, loaded by `up --only worker` through COMPUTATRUM_WORKFLOW_BUNDLE
// (no bundling at start), and refused with a message that says to rebuild once the code it was built
// from has changed, or when the bundle itself was altered or has no record.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { PROJECT_ROOT } from '../../runtime/paths';
import { germlineStatus } from '../../temporal/germline-client';
import { WORKFLOWS_PATH } from '../../worker/worker';
import {
  buildWorkflowBundle,
  sidecarPath,
  verifiedWorkflowBundle,
  type WorkflowBundleSidecar,
} from '../../worker/workflow-bundle';
import { germlineWorkflowId } from '../../workflows/names';
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { cli, startUp } from '../helpers/computatrum-up';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

jest.setTimeout(120_000);

const execute = promisify(execFile);
const REBUILD = 'npm run build:workflows';

let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'workflow-bundle-'));
  bundle = path.join(dir, 'workflows.js');
  // The script the image's build runs, as it runs it.
  const { stderr } = await execute(process.execPath, [path.join(PROJECT_ROOT, 'scripts/build-workflows.js'), bundle], {
    cwd: PROJECT_ROOT,
  });
  expect(stderr).toContain(`bundled the workflows`);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `up --only worker` against the test run's Temporal and PostgreSQL, on a task queue of its own. */
async function workerEnvironment(germline: string, workflowBundle: string): Promise<NodeJS.ProcessEnv> {
  const globals = testGlobals();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: globals.temporalAddress,
    DATABASE_URL: globals.databaseUrl,
    COMPUTATRUM_WORKFLOW_BUNDLE: workflowBundle,
    COMPUTATRUM_GERMLINE: germline,
    COMPUTATRUM_TASK_QUEUE: germline,
    COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(dir, 'data-')),
    PLATFORM_PORT: String(await freePort()),
    COMPUTATRUM_GENESIS_MAX_COST: '0',
    COMPUTATRUM_PROBE_MAX_COST: '0',
    COMPUTATRUM_PUBLIC_INSTANCE_MAX_COST: '0',
    LOG_PRETTY: 'false',
    LOG_LEVEL: 'info',
  };
  delete env.COMPUTATRUM_TEST_GLOBALS;
  return env;
}

test('the sidecar records every file the bundle was built from, the workflows and the SDK under them', () => {
  const sidecar = JSON.parse(readFileSync(sidecarPath(bundle), 'utf8')) as WorkflowBundleSidecar;
  const files = Object.keys(sidecar.sources);
  expect(files).toContain(path.relative(PROJECT_ROOT, WORKFLOWS_PATH));
  expect(files).toContain('workflows/germline.ts');
  expect(files.some((file) => file.startsWith('node_modules/@temporalio/workflow/'))).toBe(true);
  // Nothing from the test tree or the activities (workflows import activity types only).
  expect(files.filter((file) => file.startsWith('activities/') || file.startsWith('test/'))).toEqual([]);
});

test('a worker started with COMPUTATRUM_WORKFLOW_BUNDLE runs the workflows from it without bundling', async () => {
  const germline = uniqueName('bundled');
  const up = await startUp(await workerEnvironment(germline, bundle), '--only', 'worker');
  const connection = await Connection.connect({ address: testGlobals().temporalAddress });
  const client = new Client({ connection });
  try {
    // The germline was started by this worker and answers from the bundle's workflow code.
    const status = await germlineStatus(client, germline);
    expect(status).toMatchObject({ available: expect.any(String) });
    // The SDK logs this whenever it bundles at start; the prebuilt bundle skips that.
    expect(up.output()).not.toContain('Workflow bundle created');
  } finally {
    up.process.kill('SIGINT');
    expect(await up.exited).toBe(0);
    await client.workflow
      .getHandle(germlineWorkflowId(germline))
      .terminate('test over')
      .catch(() => undefined);
    await connection.close();
  }
});

test('a bundle whose sources changed since it was built is refused by `up`, which says to rebuild it', async () => {
  const stale = path.join(dir, 'stale.js');
  writeFileSync(stale, readFileSync(bundle));
  const sidecar = JSON.parse(readFileSync(sidecarPath(bundle), 'utf8')) as WorkflowBundleSidecar;
  // As if workflows/germline.ts had been edited after the build: its recorded hash is not the file's.
  sidecar.sources['workflows/germline.ts'] = '0'.repeat(64);
  writeFileSync(sidecarPath(stale), JSON.stringify(sidecar));

  const result = await cli(await workerEnvironment(uniqueName('stale'), stale), 'up', '--only', 'worker');

  expect(result.code).toBe(2);
  expect(result.stderr).toContain(`the workflow bundle ${stale} is stale`);
  expect(result.stderr).toContain('workflows/germline.ts');
  expect(result.stderr).toContain(REBUILD);
  expect(result.stderr).not.toContain('unexpected error');
});

describe('a bundle built from code that is then edited', () => {
  // A workflow of its own inside the project (the sidecar records project files only), out of git's,
  // ESLint's and Jest's sight, so editing it disturbs nothing else.
  const workflowDir = path.join(PROJECT_ROOT, 'node_modules', '.cache', `workflow-bundle-test-${process.pid}`);
  const workflowFile = path.join(workflowDir, 'workflows.js');
  const ownBundle = path.join(workflowDir, 'bundle.js');

  beforeAll(() => {
    mkdirSync(workflowDir, { recursive: true });
    writeFileSync(workflowFile, "export async function greet(name) { return 'hello ' + name; }\n");
  });
  afterAll(() => rmSync(workflowDir, { recursive: true, force: true }));

  test('is accepted until the edit, then refused naming the edited file', async () => {
    await buildWorkflowBundle(workflowFile, ownBundle);
    await expect(verifiedWorkflowBundle(ownBundle)).resolves.toBe(ownBundle);

    writeFileSync(workflowFile, "export async function greet(name) { return 'goodbye ' + name; }\n");
    const relative = path.relative(PROJECT_ROOT, workflowFile);
    await expect(verifiedWorkflowBundle(ownBundle)).rejects.toThrow(
      new RegExp(`is stale: built .* from code that has changed since \\(${relative}\\); rebuild it with \`${REBUILD}`),
    );
  });
});

test('a bundle altered after its build, or without its record, is refused', async () => {
  const altered = path.join(dir, 'altered.js');
  writeFileSync(altered, `${readFileSync(bundle, 'utf8')}\n// appended\n`);
  writeFileSync(sidecarPath(altered), readFileSync(sidecarPath(bundle)));
  await expect(verifiedWorkflowBundle(altered)).rejects.toThrow(/was changed after it was built: rebuild it/);

  const bare = path.join(dir, 'bare.js');
  writeFileSync(bare, readFileSync(bundle));
  await expect(verifiedWorkflowBundle(bare)).rejects.toThrow(/has no readable record of what it was built from/);

  await expect(verifiedWorkflowBundle(path.join(dir, 'missing.js'))).rejects.toThrow(
    /cannot read the workflow bundle .*missing\.js \(ENOENT\)/,
  );
});
