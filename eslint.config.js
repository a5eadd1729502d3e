// Lint for the whole project, plus two kinds of rules of its own:
// - workflow code stays deterministic: workflows/ may not import Node built-ins or activity
//   implementations, nor read clocks, randomness or I/O except through the Temporal SDK;
// - the top-level folders stay layered: workflows/ (pure) at the bottom; store/, db/, temporal/ and
//   runtime/ (shared libraries) above it; activities/ above those; then worker/ and platform/; cli/ on
//   top, imported by nothing but bin/ and the tests. test/unit/folder-boundaries.test.ts also checks
//   that no two folders import each other in a circle.
const { builtinModules } = require('node:module');
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

/** The shared libraries: below everything that runs (activities/, worker/, platform/, cli/). */
const LIBRARIES = ['store', 'db', 'temporal', 'runtime'];

/**
 * Each folder's forbidden top-level folders, with what to do instead. Folders not named here (worker/,
 * bench/, prisma/, scripts/, root files) may import anything but cli/. cli/ may import everything;
 * bin/ runs the CLI and test/ exercises every folder, cli/ included (test/unit/training-cost.test.ts
 * imports cli/common), so both are exempt.
 */
const FORBIDDEN = {
  workflows: [
    {
      to: 'activities',
      // Type-only imports are how a workflow names the activities it proxies.
      allowTypeImports: true,
      message: 'Workflows call activities through proxyActivities; import their types only (import type).',
    },
    ...[...LIBRARIES, 'worker', 'platform', 'cli'].map((to) => ({
      to,
      message:
        `workflows/ must not import ${to}/: workflow code is deterministic and imports only workflows/ ` +
        '(and activity types); do the work in an activity (activities/) called through proxyActivities, or move pure code into workflows/.',
    })),
  ],
  activities: [
    {
      to: 'platform',
      message:
        'activities/ must not import platform/: the worker runs activities without the HTTP platform; move the shared code down to store/, db/, temporal/ or runtime/ (or workflows/ if it is pure).',
    },
    {
      to: 'worker',
      message:
        'activities/ must not import worker/: the worker registers activities, not the other way round; move the shared code to temporal/ or runtime/.',
    },
    {
      to: 'cli',
      message:
        'activities/ must not import cli/: move the shared code out of cli/ into runtime/ (or the library it belongs to: store/, db/, temporal/).',
    },
  ],
  ...Object.fromEntries(
    LIBRARIES.map((from) => [
      from,
      ['activities', 'worker', 'platform', 'cli'].map((to) => ({
        to,
        message:
          `${from}/ is a shared library below activities/, worker/, platform/ and cli/, so it must not import ${to}/: ` +
          'move the code it needs down into store/, db/, temporal/ or runtime/ (or workflows/ if it is pure), or have the caller pass it in.',
      })),
    ]),
  ),
  platform: [
    { to: 'worker', message: 'platform/ must not import worker/: move the shared code to temporal/ or runtime/.' },
    {
      to: 'cli',
      message:
        'platform/ must not import cli/: move the shared code out of cli/ into runtime/ (or the library it belongs to).',
    },
  ],
};

const OUTSIDE_CLI = {
  to: 'cli',
  message:
    'Only cli/ (and bin/, tests) may import cli/: move the shared code out of cli/ into runtime/ (or the library it belongs to).',
};

/** How deep below a top-level folder the boundary rules look (the tree is 3 deep today). */
const MAX_DEPTH = 8;

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A relative specifier that reaches top-level folder `to` from a file `depth` folders below its own
 * top-level folder: `../to` from `activities/x.ts`, `../../to/y` from `activities/runners/x.ts`.
 * Exact by depth, so `../platform` in activities/runners/ (that is, activities/platform) is not caught.
 */
const reaching = (to, depth) => `^(?:\\./)?(?:\\.\\./){${depth + 1}}${escapeRegExp(to)}(?:/|$)`;

/** Workflow-only restrictions: the determinism rules' part of no-restricted-imports. */
const WORKFLOW_PATHS = nodeBuiltins.map((name) => ({
  name,
  message: 'Node built-ins are not deterministic: do I/O in an activity (activities/) instead.',
}));
const WORKFLOW_PACKAGES = {
  group: ['@temporalio/worker', '@temporalio/client', '@temporalio/activity', 'pino', 'pg', '@prisma/*', 'fastify'],
  message: 'Workflow code may import @temporalio/workflow, @temporalio/common and pure modules only.',
};

function restrictedImports(folder, forbidden, depth) {
  const patterns = forbidden.map(({ to, message, allowTypeImports }) => ({
    regex: reaching(to, depth),
    caseSensitive: true,
    ...(allowTypeImports ? { allowTypeImports } : {}),
    message,
  }));
  if (folder === 'workflows') return ['error', { paths: WORKFLOW_PATHS, patterns: [...patterns, WORKFLOW_PACKAGES] }];
  return ['error', { patterns }];
}

/**
 * One config block per folder and depth (ESLint's import patterns see the specifier, not where it
 * leads, so the depth is in the file glob): first "nobody imports cli/" for every folder, then each
 * folder of FORBIDDEN with its whole list (a later block's options replace an earlier one's).
 */
function boundaryBlocks() {
  const depths = [...Array(MAX_DEPTH + 1).keys()];
  const everywhere = depths.map((depth) => ({
    files: [`${'*/'.repeat(depth + 1)}*.{ts,js}`],
    ignores: ['cli/**', 'bin/**', 'test/**'],
    rules: { '@typescript-eslint/no-restricted-imports': restrictedImports(undefined, [OUTSIDE_CLI], depth) },
  }));
  const rootFiles = {
    files: ['*.{ts,js}'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^\\./cli(?:/|$)', caseSensitive: true, message: OUTSIDE_CLI.message }] },
      ],
    },
  };
  const perFolder = Object.entries(FORBIDDEN).flatMap(([folder, forbidden]) =>
    depths.map((depth) => ({
      files: [`${folder}/${'*/'.repeat(depth)}*.{ts,js}`],
      rules: { '@typescript-eslint/no-restricted-imports': restrictedImports(folder, forbidden, depth) },
    })),
  );
  return [...everywhere, rootFiles, ...perFolder];
}

module.exports = tseslint.config(
  // dist/ is compiled output (scripts/build.js), not source.
  { ignores: ['node_modules/', '.computatrum/', 'coverage/', 'dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Import boundaries between the top-level folders (generated below: see boundaryBlocks).
  ...boundaryBlocks(),
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        ...[
          'process',
          'fetch',
          'require',
          'setInterval',
          'setImmediate',
          'performance',
          'crypto',
          'WeakRef',
          'FinalizationRegistry',
          'Buffer',
        ].map((name) => ({
          name,
          message: `${name} is not available or not deterministic in workflows; use an activity or the Temporal SDK.`,
        })),
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']",
          message: 'Randomness in workflows must come from the SDK: use uuid4() from @temporalio/workflow.',
        },
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: 'Read workflow time in one place (see now() in workflows/clock.ts) and pass it to pure code.',
        },
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'Read workflow time in one place (see now() in workflows/clock.ts) and pass it to pure code.',
        },
      ],
    },
  },
);
