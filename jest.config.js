/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest'],
    // ESM-only dependencies (content-disposition 3 and quick-lru 7 under mercurius, cookie 2 under inject): Node 20 loads
    // them with require(esm) or import(), Jest's module system does neither without
    // --experimental-vm-modules, so they, and mercurius' import() of quick-lru, are compiled to CommonJS.
    '/node_modules/(content-disposition|quick-lru|cookie|mercurius)/.+\\.js$': ['@swc/jest', { module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(content-disposition|quick-lru|cookie|mercurius)/)'],
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // One Temporal dev server, one PostgreSQL and one workflow bundle for the whole run.
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  testTimeout: 60_000,
  maxWorkers: 2,
};
