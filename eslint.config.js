// Lint for the whole project, plus the rules that keep workflow code deterministic: workflows/
// may not import Node built-ins or activity implementations, nor read clocks, randomness or I/O
// except through the Temporal SDK.
const { builtinModules } = require('node:module');
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

module.exports = tseslint.config(
  { ignores: ['node_modules/', '.computatrum/', 'coverage/'] },
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
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'Node built-ins are not deterministic: do I/O in an activity (activities/) instead.',
          })),
          patterns: [
            {
              group: ['../activities/*', '../activities/**', '**/activities/**'],
              allowTypeImports: true,
              message: 'Workflows call activities through proxyActivities; import their types only (import type).',
            },
            {
              group: ['@temporalio/worker', '@temporalio/client', '@temporalio/activity', 'pino', 'pg', '@prisma/*', 'fastify'],
              message: 'Workflow code may import @temporalio/workflow, @temporalio/common and pure modules only.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['process', 'fetch', 'require', 'setInterval', 'setImmediate', 'performance', 'crypto', 'WeakRef', 'FinalizationRegistry', 'Buffer'].map(
          (name) => ({ name, message: `${name} is not available or not deterministic in workflows; use an activity or the Temporal SDK.` }),
        ),
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']",
          message: 'Randomness in workflows must come from the SDK: use uuid4() from @temporalio/workflow.',
        },
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: 'Read workflow time in one place (see now() in workflows/germline.ts) and pass it to pure code.',
        },
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'Read workflow time in one place (see now() in workflows/germline.ts) and pass it to pure code.',
        },
      ],
    },
  },
);
