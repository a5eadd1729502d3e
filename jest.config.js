// Two projects. `unit` (test/unit) is pure code and needs no server: it runs without the global
// setup, so `npx jest test/unit` starts nothing. `server` (every other folder of test/) shares one
// Temporal dev server, one PostgreSQL and one workflow bundle, started by its globalSetup; Jest runs a
// project's globalSetup only when that project has tests to run.
const shared = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest'],
    // ESM-only dependencies (content-disposition 3 and quick-lru 7 under mercurius, cookie 2 under inject): Node 20 loads
    // them with require(esm) or import(), Jest's module system does neither without
    // --experimental-vm-modules, so they, and mercurius' import() of quick-lru, are compiled to CommonJS.
    '/node_modules/(content-disposition|quick-lru|cookie|mercurius)/.+\\.js$': [
      '@swc/jest',
      { module: { type: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!(content-disposition|quick-lru|cookie|mercurius)/)'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 60_000,
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      ...shared,
      displayName: 'unit',
      // Nothing here may call testGlobals() (test/setup/globals.ts): a test that needs the server belongs in test/integration.
      roots: ['<rootDir>/test/unit'],
    },
    {
      ...shared,
      displayName: 'server',
      roots: ['<rootDir>/test'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/'],
      // One Temporal dev server, one PostgreSQL and one workflow bundle for the whole run.
      globalSetup: '<rootDir>/test/setup/global-setup.ts',
      globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
    },
  ],
  testTimeout: 60_000,
  maxWorkers: 2,
};
