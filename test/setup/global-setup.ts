// One real Temporal dev server, one PostgreSQL (the machine's, through DATABASE_URL, or embedded
// PGlite) and one workflow bundle, shared by every test file of the run.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { migrateDatabase } from '../../db/migrate';
import { startEmbeddedPostgres } from '../../runtime/embedded/postgres';
import { freePort, startTemporalDevServer } from '../../runtime/embedded/temporal-dev-server';
import { requireTool, TEMPORAL_CLI } from '../../runtime/tools';
import { loadConfig } from '../../runtime/config';
import { PROJECT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { WORKFLOWS_PATH } from '../../worker/worker';
import { TEST_CONTINUE_AS_NEW_AFTER, type TestGlobals } from './globals';

export default async function globalSetup(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-test-'));
  const temporalCli = requireTool(TEMPORAL_CLI, loadConfig().toolsDir);

  const server = await startTemporalDevServer({
    cliPath: temporalCli,
    dbFile: path.join(dir, 'temporal.db'),
    port: await freePort(),
    uiPort: await freePort(),
    namespace: 'default',
    searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
    // Germlines continue as new every hundred-odd updates in every test: the carry-over is always exercised.
    dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': TEST_CONTINUE_AS_NEW_AFTER },
    logFile: path.join(dir, 'temporal.log'),
  });

  const embedded = process.env.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort() });
  const databaseUrl = process.env.DATABASE_URL ?? embedded!.url;
  await migrateDatabase(databaseUrl);

  const bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);

  const globals: TestGlobals = {
    dir,
    temporalCli,
    temporalAddress: server.address,
    databaseUrl,
    workflowBundlePath: bundlePath,
  };
  process.env.COMPUTATRUM_TEST_GLOBALS = JSON.stringify(globals);
  process.env.DATABASE_URL = databaseUrl;
  (globalThis as any).__computatrumTeardown = async () => {
    await embedded?.stop();
    await server.stop();
  };
}
