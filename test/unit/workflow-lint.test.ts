// The lint rules that keep workflow code deterministic, checked on code they must refuse.
import { ESLint } from 'eslint';

// The project's own config, passed in: ESLint's loader would import() it, which jest's VM refuses.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const projectConfig = require('../../eslint.config.js');
const eslint = new ESLint({ cwd: `${__dirname}/../..`, overrideConfigFile: true, overrideConfig: projectConfig });

async function problems(code: string, filePath = 'workflows/example.ts'): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

test.each([
  ["import fs from 'node:fs';\nexport const x = fs;", /Node built-ins are not deterministic/],
  ["import { readFileSync } from 'fs';\nexport const x = readFileSync;", /Node built-ins are not deterministic/],
  [
    "import { createJournalActivities } from '../activities/journal';\nexport const x = createJournalActivities;",
    /import their types only/,
  ],
  ["import { Client } from '@temporalio/client';\nexport const x = Client;", /may import @temporalio\/workflow/],
  ['export const x = Math.random();', /uuid4\(\)/],
  ['export const x = Date.now();', /Read workflow time in one place/],
  ['export const x = new Date();', /Read workflow time in one place/],
  ['export const x = process.env.HOME;', /process is not available or not deterministic/],
  ["export const x = fetch('http://example.com');", /fetch is not available/],
])('workflow code is refused: %s', async (code, expected) => {
  expect((await problems(code)).join('\n')).toMatch(expected);
});

test('type-only imports of activities, the SDK, and parsing dates are fine in workflows', async () => {
  const code = [
    "import type { JournalActivities } from '../activities/journal';",
    "import { proxyActivities } from '@temporalio/workflow';",
    "export const acts = proxyActivities<JournalActivities>({ startToCloseTimeout: '1 minute' });",
    "export const day = new Date('2026-11-25T00:00:00Z');",
  ].join('\n');
  expect(await problems(code)).toEqual([]);
});

test('the same code outside workflows/ is allowed', async () => {
  expect(
    await problems(
      "import fs from 'node:fs';\nexport const x = [fs, Date.now(), Math.random()];",
      'activities/example.ts',
    ),
  ).toEqual([]);
});
