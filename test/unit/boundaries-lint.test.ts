// The import boundaries between top-level folders (eslint.config.js, FORBIDDEN), checked on code
// each rule must refuse and on code it must let through.
import { ESLint } from 'eslint';

// The project's own config, passed in: ESLint's loader would import() it, which jest's VM refuses.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const projectConfig = require('../../eslint.config.js');
const eslint = new ESLint({ cwd: `${__dirname}/../..`, overrideConfigFile: true, overrideConfig: projectConfig });

async function problems(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

/** A file that imports `specifier` and uses what it gets. */
const importing = (specifier: string) => `import { thing } from '${specifier}';\nexport const used = thing;\n`;
const importingType = (specifier: string) => `import type { Thing } from '${specifier}';\nexport type Used = Thing;\n`;

const LIBRARIES = ['store', 'db', 'temporal', 'runtime'];

// [file, code, what the error must say]
const refused: Array<[string, string, RegExp]> = [
  // workflows/ imports only workflows/ (and activity types).
  ...[...LIBRARIES, 'worker', 'platform', 'cli'].map((to): [string, string, RegExp] => [
    'workflows/example.ts',
    importing(`../${to}/module`),
    new RegExp(`workflows/ must not import ${to}/: .*do the work in an activity`),
  ]),
  ['workflows/nested/example.ts', importing('../../store'), /workflows\/ must not import store\//],
  ['workflows/example.ts', importing('../activities/journal'), /import their types only \(import type\)/],
  [
    'workflows/example.ts',
    "export { createJournalActivities } from '../activities/journal';\n",
    /import their types only/,
  ],
  // activities/ never imports platform/, worker/ or cli/.
  [
    'activities/example.ts',
    importing('../platform/server'),
    /activities\/ must not import platform\/: .*move the shared code down to store\/, db\/, temporal\/ or runtime\//,
  ],
  [
    'activities/example.ts',
    importing('../worker/worker'),
    /activities\/ must not import worker\/: .*move the shared code to temporal\/ or runtime\//,
  ],
  [
    'activities/example.ts',
    importing('../cli/training'),
    /activities\/ must not import cli\/: move the shared code out of cli\//,
  ],
  ['activities/runners/example.ts', importing('../../platform'), /activities\/ must not import platform\//],
  ['activities/runners/example.ts', "export * from '../../worker/worker';\n", /activities\/ must not import worker\//],
  ['activities/example.ts', importingType('../platform/server'), /activities\/ must not import platform\//],
  // store/, db/, temporal/ and runtime/ are shared libraries below activities/, worker/, platform/ and cli/.
  ...LIBRARIES.flatMap((from) =>
    ['activities', 'worker', 'platform', 'cli'].map((to): [string, string, RegExp] => [
      `${from}/example.ts`,
      importing(`../${to}/module`),
      new RegExp(`${from}/ is a shared library .* must not import ${to}/: move the code it needs down`),
    ]),
  ),
  [
    'store/nested/example.ts',
    importingType('../../activities/checkpoints'),
    /store\/ is a shared library .* must not import activities\//,
  ],
  // platform/ never imports worker/ or cli/.
  [
    'platform/example.ts',
    importing('../worker/worker'),
    /platform\/ must not import worker\/: move the shared code to temporal\/ or runtime\//,
  ],
  [
    'platform/pages/example.ts',
    importing('../../cli/main'),
    /platform\/ must not import cli\/: move the shared code out of cli\//,
  ],
  // Nothing outside cli/ (but bin/ and the tests) imports cli/.
  ['worker/example.ts', importing('../cli/up'), /Only cli\/ .* may import cli\/: move the shared code out of cli\//],
  ['bench/support/example.ts', importing('../../cli/training'), /Only cli\/ .* may import cli\//],
  ['prisma/example.ts', importing('../cli'), /Only cli\/ .* may import cli\//],
  ['example.ts', importing('./cli/main'), /Only cli\/ .* may import cli\//],
];

test.each(refused)('%s: a forbidden import is refused: %s', async (filePath, code, expected) => {
  const found = await problems(filePath, code);
  expect(found).toHaveLength(1);
  expect(found[0]).toMatch(/^@typescript-eslint\/no-restricted-imports: /);
  expect(found[0]).toMatch(expected);
});

const allowed: Array<[string, string]> = [
  ['workflows/example.ts', importing('./money')],
  ['workflows/example.ts', importingType('../activities/journal')],
  ['workflows/example.ts', "export type { JournalActivities } from '../activities/journal';\n"],
  [
    'workflows/example.ts',
    "import { type JournalActivities } from '../activities/journal';\nexport type J = JournalActivities;\n",
  ],
  ['activities/example.ts', importing('../store')],
  ['activities/example.ts', importing('../db/client')],
  ['activities/example.ts', importing('../temporal/germline-client')],
  ['activities/example.ts', importing('../runtime/config')],
  ['activities/example.ts', importing('../workflows/money')],
  // activities/runners/ reaching activities/platform (not the top-level platform/) is inside activities/.
  ['activities/runners/example.ts', importing('../platform')],
  ['activities/runners/example.ts', importing('../checkpoints')],
  ['store/example.ts', importing('../workflows/money')],
  ['db/example.ts', importing('../runtime/config')],
  ['temporal/example.ts', importing('../workflows/germline-api')],
  ['runtime/example.ts', importing('./tools')],
  ['platform/example.ts', importing('../temporal/germline-client')],
  ['platform/pages/example.ts', importing('../../store')],
  ['worker/example.ts', importing('../activities/journal')],
  ['cli/example.ts', importing('./training')],
  ['cli/example.ts', importing('../worker/worker')],
  ['cli/example.ts', importing('../platform/server')],
  ['test/unit/example.ts', importing('../../cli/training')],
  ['test/helpers/example.ts', importing('../../worker/worker')],
  ['bin/example.js', "require('tsx/cjs');\nrequire('../cli/main.ts').main();\n"],
];

test.each(allowed)('%s: an allowed import passes: %s', async (filePath, code) => {
  expect(await problems(filePath, code)).toEqual([]);
});
