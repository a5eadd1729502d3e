// The CLI refuses an amount above the most one amount may be (workflows/money.ts MAX_MINOR_UNITS) while
// it parses its options, before it reaches Temporal: the real command in a child process, pointed at
// a Temporal address where nothing listens, so an amount that got through would fail differently.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin/computatrum.js');
const execute = promisify(execFile);
const LIMIT = 'is above the most one amount may be (10,000,000,000,000.00 USD)';

jest.setTimeout(120_000);

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    COMPUTATRUM_CURRENCY: 'usd',
    COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'cli-amounts-')),
  };
  try {
    const { stderr } = await execute(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { code: failed.code, stderr: failed.stderr };
  }
}

test.each([
  ['deposit', ['deposit', '100000000000000000.00', '--reference', 'x'], '100000000000000000.00'],
  ['policy set --daily-cap', ['policy', 'set', '--daily-cap', '100000000000000000'], '100000000000000000'],
  [
    'spawn --allowance',
    ['spawn', 'coder', '--allowance', '100000000000000000', '--purpose', 'programming'],
    '100000000000000000',
  ],
  ['train --max-cost', ['train', '--branch', 'main', '--max-cost', '100000000000000000'], '100000000000000000'],
  ['autonomy --child-cap', ['autonomy', '--child-cap', '100000000000000000'], '100000000000000000'],
  ['autonomy --run-cost', ['autonomy', '--run-cost', '100000000000000000'], '100000000000000000'],
])('%s above the maximum is a usage error naming the limit', async (_name, args, amount) => {
  const { code, stderr } = await cli(args);
  expect(code).toBe(2);
  expect(stderr).toContain(`amount "${amount}" ${LIMIT}`);
  expect(stderr).not.toContain('cannot reach Temporal');
});

test('the maximum itself passes the parser (and then needs Temporal)', async () => {
  const { code, stderr } = await cli(['deposit', '10,000,000,000,000.00', '--reference', 'x']);
  expect(code).toBe(1);
  expect(stderr).toContain('cannot reach Temporal at 127.0.0.1:1');
});
