// The embedded Temporal dev server stops and starts again on the same database file, as it does
// across two `npm start`s: the germline and its money are still there.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { openDatabase } from '../../db/prisma';
import { LayoutStore } from '../../store/layout';
import { reconciledBooks } from '../helpers/budget';
import { freePort, startTemporalDevServer } from '../../runtime/embedded/temporal-dev-server';
import { ensureGermline } from '../../temporal/germline-client';
import { createWorker } from '../../worker/worker';
import { PROJECT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { testGlobals } from '../setup/globals';
import { quietTemporalLogs, uniqueName } from '../helpers/temporal';
import { depositUpdate, reserveUpdate, statusQuery } from '../../workflows/budget-api';
import { updateBudget } from '../../temporal/budget-client';

test('a germline outlives a restart of the dev server on the same db file', async () => {
  quietTemporalLogs();
  const globals = testGlobals();
  const dir = mkdtempSync(path.join(tmpdir(), 'dev-server-restart-'));
  const ports = { port: await freePort(), uiPort: await freePort() };
  const db = openDatabase(globals.databaseUrl);
  const name = uniqueName('restart');
  const store = await new LayoutStore(path.join(dir, 'store')).init();

  async function withServer<T>(action: (client: Client) => Promise<T>): Promise<T> {
    const server = await startTemporalDevServer({
      cliPath: globals.temporalCli,
      dbFile: path.join(dir, 'temporal.db'),
      ...ports,
      namespace: 'default',
      searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
      logFile: path.join(dir, 'temporal.log'),
    });
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    const workerConnection = await NativeConnection.connect({ address: server.address });
    const worker = await createWorker({
      connection: workerConnection,
      namespace: 'default',
      taskQueue: 'restart',
      activities: { db, store, dataDir: dir, client, runners: {} },
      workflowBundlePath: globals.workflowBundlePath,
    });
    try {
      return await worker.runUntil(action(client));
    } finally {
      await workerConnection.close();
      await connection.close();
      await server.stop();
    }
  }

  try {
    await withServer(async (client) => {
      const { handle, started } = await ensureGermline(client, { name, currency: 'usd', taskQueue: 'restart' });
      expect(started).toBe(true);
      await updateBudget(handle, depositUpdate, { amount: '25000', currency: 'usd', reference: 'before-restart' });
      await updateBudget(handle, reserveUpdate, { amount: '5000', ref: 'open-job', purpose: 'training' });
    });

    const { status, books } = await withServer(async (client) => {
      const { handle, started } = await ensureGermline(client, { name, currency: 'usd', taskQueue: 'restart' });
      expect(started).toBe(false);
      expect(
        await updateBudget(handle, depositUpdate, { amount: '25000', currency: 'usd', reference: 'before-restart' }),
      ).toMatchObject({ duplicate: true });
      await updateBudget(handle, depositUpdate, { amount: '1000', currency: 'usd', reference: 'after-restart' });
      return { status: await handle.query(statusQuery), books: await reconciledBooks(db, handle, name) };
    });
    expect(status).toMatchObject({ deposited: '26000', reserved: '5000', available: '21000', sequence: 3 });
    expect(books.agrees).toBe(true);
  } finally {
    await db.$disconnect();
  }
});
