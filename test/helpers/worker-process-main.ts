// The entry of a worker in an OS process of its own (test/helpers/worker-process.ts starts it), so a
// test can kill it with -9 as a host or the OOM killer would: the project's worker on the shared test
// dev server and database, with the local runners, after the instance sweep that `up` runs at start.
// Its options come in COMPUTATRUM_TEST_WORKER (JSON); once it polls it prints one line:
// `ready {"pid":…,"swept":[ids the sweep stopped]}`.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import pino from 'pino';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { openDatabase } from '../../db/prisma';
import { LayoutStore } from '../../store/layout';
import { localRunner, sweepInstances } from '../../worker/runners';
import { createWorker } from '../../worker/worker';
import { testGlobals } from '../setup/globals';
import type { WorkerProcessOptions } from './worker-process';

async function main(): Promise<void> {
  const options = JSON.parse(process.env.COMPUTATRUM_TEST_WORKER ?? '') as WorkerProcessOptions;
  const globals = testGlobals();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  // Its log goes to stderr, which the test shows when this process fails.
  const logger = pino({ level: 'info' }, pino.destination(2));
  const connection = await Connection.connect({ address: globals.temporalAddress });
  const client = new Client({ connection, namespace: 'default' });
  const db = openDatabase(globals.databaseUrl);
  const store = await new LayoutStore(options.storeDir).init();
  const instanceRunners = {
    local: new LocalInstanceRunner({
      dataDir: options.instancesDir,
      defaultCommand: options.instanceCommand,
      logger: logger.child({ component: 'instance' }),
    }),
  };
  const workerConnection = await NativeConnection.connect({ address: globals.temporalAddress });
  const worker = await createWorker({
    connection: workerConnection,
    namespace: 'default',
    taskQueue: options.taskQueue,
    activities: {
      db,
      store,
      dataDir: options.dataDir,
      client,
      runners: { local: localRunner({ dataDir: options.dataDir, store, tickMs: 200 }) },
      instanceRunners,
    },
    workflowBundlePath: globals.workflowBundlePath,
    ...(options.shutdownGraceSeconds ? { shutdownGraceSeconds: options.shutdownGraceSeconds } : {}),
  });
  const swept = await sweepInstances(instanceRunners, { db, client, logger });
  const running = worker.run();
  process.once('SIGTERM', () => worker.getState() === 'RUNNING' && worker.shutdown());
  process.stdout.write(`ready ${JSON.stringify({ pid: process.pid, swept: swept.local ?? [] })}\n`);
  await running;
  await workerConnection.close();
  await db.$disconnect();
  await connection.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
