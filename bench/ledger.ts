// npm run bench:ledger [-- --pairs 400 --concurrency 8]
//
// Sustained reserve+settle pairs per second on one germline (each change validated, applied and
// booked in the PostgreSQL journal before it is answered), beside a baseline of the same number of
// no-op update pairs on a bare workflow, on the same dev server in the same run. Prints the ratio.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { migrateDatabase } from '../activities/db/migrate';
import { openDatabase } from '../activities/db/prisma';
import { LayoutStore } from '../activities/store/layout';
import { loadConfig } from '../worker/config';
import { startEmbeddedPostgres } from '../worker/embedded/postgres';
import { freePort, startTemporalDevServer } from '../worker/embedded/temporal-dev-server';
import { ensureGermline, updateGermline } from '../worker/germline-client';
import { requireTool, TEMPORAL_CLI } from '../worker/tools';
import { createWorker } from '../worker/worker';
import { depositUpdate, reserveUpdate, settleUpdate } from '../workflows/germline-api';
import { PROJECT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { noopUpdate } from './workflows';

const { values } = parseArgs({
  options: { pairs: { type: 'string', default: '400' }, concurrency: { type: 'string', default: '8' } },
});
const PAIRS = Number(values.pairs);
const CONCURRENCY = Number(values.concurrency);

/** Runs `pairs` jobs, `concurrency` at a time; returns pairs per second. */
async function measure(pairs: number, concurrency: number, pair: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < pairs) await pair(next++);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return pairs / seconds;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dir = mkdtempSync(path.join(tmpdir(), 'computatrum-bench-'));
  const server = await startTemporalDevServer({
    cliPath: requireTool(TEMPORAL_CLI, loadConfig().toolsDir),
    dbFile: path.join(dir, 'temporal.db'),
    port: await freePort(),
    uiPort: await freePort(),
    namespace: 'default',
    searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
    logFile: path.join(dir, 'temporal.log'),
  });
  const pg = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort() });
  const databaseUrl = process.env.DATABASE_URL ?? pg!.url;
  await migrateDatabase(databaseUrl);
  const db = openDatabase(databaseUrl);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const workerConnection = await NativeConnection.connect({ address: server.address });
  const worker = await createWorker({
    connection: workerConnection,
    namespace: 'default',
    taskQueue: 'bench',
    activities: { db, store: await new LayoutStore(path.join(dir, 'store')).init(), dataDir: dir, client, runners: {} },
    workflowsPath: path.join(__dirname, 'workflows.ts'),
  });

  await worker.runUntil(async () => {
    const bare = await client.workflow.start('bareUpdateWorkflow', { workflowId: `bench/bare-${Date.now()}`, taskQueue: 'bench' });
    const { handle: germline } = await ensureGermline(client, { name: `bench-${Date.now()}`, currency: 'usd', taskQueue: 'bench' });
    await updateGermline(germline, depositUpdate, { amount: String(PAIRS * 100), currency: 'usd', reference: 'bench' });
    // Warm both paths (workflow cache, connections) before timing.
    await bare.executeUpdate(noopUpdate, { args: [null] });

    const baseline = await measure(PAIRS, CONCURRENCY, async () => {
      await bare.executeUpdate(noopUpdate, { args: [null] });
      await bare.executeUpdate(noopUpdate, { args: [null] });
    });
    const ledger = await measure(PAIRS, CONCURRENCY, async (i) => {
      const { reservationId } = await updateGermline(germline, reserveUpdate, { amount: '100', ref: `pair-${i}`, purpose: 'bench' });
      await updateGermline(germline, settleUpdate, { reservationId, actual: '40' });
    });

    console.log(`pairs ${PAIRS}, concurrency ${CONCURRENCY}, one germline, journal in ${pg ? 'PGlite' : 'PostgreSQL'}`);
    console.log(`baseline  no-op update pairs on a bare workflow: ${baseline.toFixed(1)} pairs/s`);
    console.log(`ledger    reserve+settle pairs on the germline:  ${ledger.toFixed(1)} pairs/s`);
    console.log(`ratio     ledger / baseline: ${(ledger / baseline).toFixed(3)}`);
    await bare.terminate('benchmark done');
    await germline.terminate('benchmark done');
  });
  await workerConnection.close();
  await connection.close();
  await db.$disconnect();
  await pg?.stop();
  await server.stop();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
