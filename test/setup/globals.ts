/** What global-setup started, handed to every test file through the environment. */
export interface TestGlobals {
  dir: string;
  temporalCli: string;
  temporalAddress: string;
  databaseUrl: string;
  workflowBundlePath: string;
}

/** The test server's `limit.historyCount.suggestContinueAsNew`: low, so germlines continue as new often. */
export const TEST_CONTINUE_AS_NEW_AFTER = 400;

export function testGlobals(): TestGlobals {
  const raw = process.env.COMPUTATRUM_TEST_GLOBALS;
  if (!raw) {
    throw new Error(
      'test globals missing: run the tests through jest (npm test), whose server project runs global-setup; ' +
        'test/unit runs without it, so a test that needs the Temporal server or PostgreSQL belongs in test/integration',
    );
  }
  return JSON.parse(raw) as TestGlobals;
}
