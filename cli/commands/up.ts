// `computatrum up`: the whole stack in one process tree. Embedded parts start only where no
// production address is configured: the Temporal dev server (unless TEMPORAL_ADDRESS) and PGlite
// (unless DATABASE_URL). Then migrations, the worker, the platform, and germline/<name>.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { migrateDatabase } from '../../db/migrate';
import { openDatabase } from '../../db/prisma';
import { openStore } from '../../store';
import { LayoutStore } from '../../store/layout';
import type { CheckpointStore } from '../../store/types';
import { removeLeftovers } from '../../store/layout-maintenance';
import { buildPlatform } from '../../platform/server';
import { workerHealthServer } from '../../platform/health';
import { UserError } from '../common';
import { stripeClient } from '../../platform/stripe';
import { type Config, databaseUrl, probeSettings, trainingDefaults } from '../../runtime/config';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../runtime/embedded/postgres';
import { type DevServer, startTemporalDevServer } from '../../runtime/embedded/temporal-dev-server';
import {
  assertJournalBooks,
  ensureGenesis,
  ensureGermline,
  ensureOpeningBalance,
  germlineStatus,
  OPENING_BALANCE_REFERENCE,
} from '../../temporal/germline-client';
import { installTemporalRuntime, shutdownTemporalRuntime, type Logger } from '../../runtime/logging';
import { connectTemporal, ensureSearchAttributes, temporalClient } from '../../temporal/connection';
import { installTool, TEMPORAL_CLI } from '../../runtime/tools';
import { createInstanceRunners, createRunners, startInstanceSweeper } from '../../worker/runners';
import { startMetricsCollector } from '../../worker/metrics-collector';
import { connectWorker, createWorker } from '../../worker/worker';
import { verifiedWorkflowBundle } from '../../worker/workflow-bundle';
import { dailyScheduleId, ensureDailySchedule, ensureUpkeepSchedules } from '../../temporal/schedules';
import { PROJECT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { genesisWorkflowId, germlineRepository, germlineWorkflowId } from '../../workflows/names';
import { type GermlineInstanceSettings, moveGermlineInstance } from '../../activities/instances';
import { HEAD_BRANCH } from '../../activities/checkpoints';
import { formatMoney } from '../../workflows/money';
import { trainingRequest } from '../../workflows/training-api';

export interface RunningStack {
  urls: { temporalUi?: string; platform?: string; temporal: string; database: string; store: string };
  /** Stops everything, in the reverse order of starting. */
  stop(): Promise<void>;
  /** Settles when the worker stops on its own (a fatal error) or after stop(). */
  done: Promise<void>;
}

/** What one process runs: everything (`up`), or one part of a deployment that splits them. */
export type StackParts = 'all' | 'platform' | 'worker';

export async function startStack(config: Config, logger: Logger, parts: StackParts = 'all'): Promise<RunningStack> {
  // One part alone is a deployment's process: the others reach the same Temporal and PostgreSQL.
  if (parts !== 'all' && (!config.temporal.address || !config.database.url)) {
    throw new UserError(
      `up --only ${parts} runs beside the other part, so it needs the shared services: set TEMPORAL_ADDRESS and DATABASE_URL (plain \`up\` embeds both)`,
      2,
    );
  }
  const runsWorker = parts !== 'platform';
  const runsPlatform = parts !== 'worker';
  const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];
  const stopAll = async () => {
    for (const { name, stop } of stops.reverse()) {
      try {
        await stop();
        logger.debug({ part: name }, 'stopped');
      } catch (error) {
        logger.error({ part: name, err: error }, 'failed to stop cleanly');
      }
    }
    stops.length = 0;
  };

  try {
    mkdirSync(config.dataDir, { recursive: true });
    // Core's logs into pino, and with COMPUTATRUM_METRICS_PORT its Prometheus endpoint (this process's metrics).
    installTemporalRuntime(logger, config.metrics);
    stops.push({ name: 'temporal runtime', stop: shutdownTemporalRuntime });
    if (config.metrics)
      logger.info({ url: `http://${config.metrics.host}:${config.metrics.port}/metrics` }, 'serving metrics');

    let devServer: DevServer | undefined;
    if (!config.temporal.address) {
      const cliPath =
        config.temporal.cliPath ?? (await installTool(TEMPORAL_CLI, config.toolsDir, (line) => logger.info(line)));
      logger.info({ db: path.join(config.dataDir, 'temporal.db') }, 'starting the Temporal dev server');
      devServer = await startTemporalDevServer({
        cliPath,
        dbFile: path.join(config.dataDir, 'temporal.db'),
        port: config.temporal.devPort,
        uiPort: config.temporal.uiPort,
        namespace: config.temporal.namespace,
        searchAttributes: PROJECT_SEARCH_ATTRIBUTES,
        logFile: path.join(config.dataDir, 'temporal.log'),
      });
      stops.push({ name: 'temporal dev server', stop: devServer.stop });
    }

    let embeddedPostgres: EmbeddedPostgres | undefined;
    if (!config.database.url) {
      logger.info({ dir: path.join(config.dataDir, 'pg') }, 'starting embedded PostgreSQL (PGlite)');
      embeddedPostgres = await startEmbeddedPostgres({
        dataDir: path.join(config.dataDir, 'pg'),
        port: config.database.pglitePort,
      });
      stops.push({ name: 'embedded postgres', stop: embeddedPostgres.stop });
    }
    const dbUrl = databaseUrl(config);
    const applied = await migrateDatabase(dbUrl);
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    const db = openDatabase(dbUrl);
    stops.push({ name: 'database client', stop: () => db.$disconnect() });
    const store = await openStore(config.store, { logger });
    // What an interrupted push left behind goes at start; a push still running keeps its files.
    if (store instanceof LayoutStore) {
      const removed = await removeLeftovers(store.location);
      if (removed.length > 0)
        logger.info(
          { files: removed.length, bytes: removed.reduce((sum, l) => sum + l.bytes, 0) },
          'removed the half-written files of interrupted writes from the store',
        );
    }

    const connection = await connectTemporal(config);
    stops.push({ name: 'temporal client', stop: () => connection.close() });
    const added = await ensureSearchAttributes(connection, config.temporal.namespace, PROJECT_SEARCH_ATTRIBUTES);
    if (added.length > 0) logger.info({ searchAttributes: added }, 'registered search attributes');
    const client = temporalClient(connection, config);

    // Settles when the worker stops on its own (a fatal error), or when a platform-only process is stopped.
    let germlineInstance: GermlineInstanceSettings | undefined;
    let done: Promise<void> = new Promise<void>((resolve) =>
      stops.push({ name: 'process', stop: async () => resolve() }),
    );
    if (runsWorker) {
      const workerConnection = await connectWorker(config);
      stops.push({ name: 'worker connection', stop: () => workerConnection.close() });
      // The zookeeper's computatrum: the germline's public instance of its newest gpc tag.
      germlineInstance =
        config.training.publicInstanceMaxCost > 0n
          ? {
              taskQueue: config.taskQueue,
              currency: config.currency,
              ratePerGpuHour: config.training.ratePerGpuHour,
              maxCost: config.training.publicInstanceMaxCost,
              idleTimeoutSeconds: 600,
              runner: 'local',
            }
          : undefined;
      const instanceRunners = createInstanceRunners(config, logger.child({ component: 'instance' }));
      // New gpc tags and breed versions are probed for malicious behaviour (COMPUTATRUM_PROBE_MAX_COST).
      const probes = probeSettings(config);
      const worker: Worker = await createWorker({
        connection: workerConnection,
        namespace: config.temporal.namespace,
        taskQueue: config.taskQueue,
        shutdownGraceSeconds: config.shutdownGraceSeconds,
        // The image's prebuilt bundle, refused when the code it was built from has changed since.
        ...(config.workflowBundle
          ? {
              workflowBundlePath: await verifiedWorkflowBundle(config.workflowBundle).catch((error: Error) => {
                throw new UserError(error.message, 2);
              }),
            }
          : {}),
        activities: {
          db,
          store,
          dataDir: config.dataDir,
          client,
          runners: await createRunners(config, store),
          instanceRunners,
          ...(germlineInstance ? { germlineInstance } : {}),
          training: trainingDefaults(config),
          ...(probes ? { probes } : {}),
          ...(config.agentToken ? { agentToken: config.agentToken } : {}),
          logger: logger.child({ component: 'trainer' }),
        },
      });
      const workerRun = worker.run();
      done = workerRun;
      stops.push({
        name: 'worker',
        stop: async () => {
          if (worker.getState() === 'RUNNING') worker.shutdown();
          await workerRun;
        },
      });
      // Instance processes whose instance ended while no worker ran are stopped now and every few minutes.
      const sweeper = startInstanceSweeper(instanceRunners, {
        db,
        client,
        logger: logger.child({ component: 'instance' }),
      });
      stops.push({ name: 'instance sweeper', stop: () => sweeper.stop() });
      if (config.metrics) {
        const collector = startMetricsCollector(
          db,
          { germline: config.germline, currency: config.currency },
          logger.child({ component: 'metrics' }),
          config.metrics.refreshSeconds * 1000,
        );
        stops.push({ name: 'metrics collector', stop: () => collector.stop() });
      }
      // A worker-only process answers its orchestrator's probes on the platform's address.
      if (!runsPlatform) {
        const health = await workerHealthServer(logger, [
          { name: 'temporal', check: async () => void (await connection.workflowService.getSystemInfo({})) },
          { name: 'database', check: async () => void (await db.$queryRaw`SELECT 1`) },
          {
            name: 'worker',
            check: async () => {
              if (worker.getState() !== 'RUNNING') throw new Error(`the worker is ${worker.getState()}`);
            },
          },
        ]);
        await health.listen({ host: config.platform.host, port: config.platform.port });
        stops.push({ name: 'health', stop: () => health.close() });
      }
    }

    if (runsPlatform) {
      const platform = await buildPlatform({
        logger,
        store,
        db,
        databaseUrl: dbUrl,
        germline: config.germline,
        currency: config.currency,
        client,
        ...(config.stripe
          ? {
              stripe: {
                client: stripeClient(config.stripe.secretKey, config.stripe.apiBase),
                webhookSecret: config.stripe.webhookSecret,
                publicUrl: config.platform.publicUrl,
                feePercent: config.stripe.feePercent,
              },
            }
          : {}),
        payoutsCron: config.schedules.payouts,
        training: { ...trainingDefaults(config), taskQueue: config.taskQueue, maxGpus: config.training.trainerMaxGpus },
        visitorSalt: config.platform.visitorSalt ?? dataFolderSecret(config.dataDir, 'visitor-salt'),
        gatewayLimits: config.platform.gatewayLimits,
        feePercent: config.platform.feePercent,
        trustProxy: config.platform.trustProxy,
        temporalUiUrl: devServer?.uiUrl ?? config.temporal.uiUrl,
        checks: [
          { name: 'temporal', check: async () => void (await connection.workflowService.getSystemInfo({})) },
          { name: 'database', check: async () => void (await db.$queryRaw`SELECT 1`) },
          { name: 'journal', check: () => assertJournalBooks(client, config.germline) },
        ],
      });
      await platform.listen({ host: config.platform.host, port: config.platform.port });
      stops.push({ name: 'platform', stop: () => platform.close() });
    }

    // The worker's side owns the germline and its schedule: both are started once, idempotently.
    if (runsWorker) {
      const { started } = await ensureGermline(client, {
        name: config.germline,
        currency: config.currency,
        taskQueue: config.taskQueue,
      });
      logger.info(
        { workflowId: germlineWorkflowId(config.germline), started },
        started ? 'germline started' : 'germline already running',
      );
      const opening = await ensureOpeningBalance(client, {
        name: config.germline,
        currency: config.currency,
        amount: config.genesis.openingBalance,
      });
      if (opening) {
        logger.info(
          { amount: formatMoney(config.genesis.openingBalance, config.currency), reference: OPENING_BALANCE_REFERENCE },
          "deposited the germline's opening balance (COMPUTATRUM_OPENING_BALANCE)",
        );
      }
      const schedule = await ensureDailySchedule(client, {
        germline: config.germline,
        taskQueue: config.taskQueue,
        cron: config.schedules.dailyTag,
      });
      logger.info({ scheduleId: dailyScheduleId(config.germline), schedule }, 'daily gpc schedule ready');
      const upkeep = await ensureUpkeepSchedules(client, {
        germline: config.germline,
        taskQueue: config.taskQueue,
        crons: { probeSweep: config.schedules.probeSweep, datasetBuilds: config.schedules.datasetBuilds },
      });
      logger.info({ schedules: upkeep }, 'upkeep schedules ready');
      await beginGenesis(config, logger, client, store);
      if (germlineInstance) {
        const newest = await db.checkpoint.findFirst({
          where: { repository: germlineRepository(config.germline), status: 'published', day: { not: null } },
          orderBy: { day: 'desc' },
        });
        // Later days move it with their tag (the daily workflow); a germline with no gpc tag yet has none.
        if (newest) {
          const moved = await moveGermlineInstance(
            { db, client, settings: germlineInstance },
            config.germline,
            newest.tag,
          );
          logger.info(moved, 'the germline serves its newest gpc tag publicly');
        }
      }
    }

    return {
      urls: {
        temporalUi: devServer?.uiUrl ?? config.temporal.uiUrl,
        temporal: devServer?.address ?? config.temporal.address!,
        ...(runsPlatform ? { platform: `http://${config.platform.host}:${config.platform.port}` } : {}),
        database: embeddedPostgres ? embeddedPostgres.url : '(DATABASE_URL)',
        store: store.location,
      },
      stop: stopAll,
      done,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * A germline with no head gets its first checkpoint from genesis/<germline> (workflows/genesis.ts):
 * a first training run from scratch, then today's gpc tag, which the zookeeper serves. Only when the
 * budget can pay for the run: otherwise the log says what would make it happen.
 */
async function beginGenesis(config: Config, logger: Logger, client: Client, store: CheckpointStore): Promise<void> {
  const repository = germlineRepository(config.germline);
  if (config.genesis.maxCost <= 0n || (await store.getManifest(repository, HEAD_BRANCH))) return;
  const available = BigInt((await germlineStatus(client, config.germline)).available);
  if (available < config.genesis.maxCost) {
    logger.warn(
      {
        needs: formatMoney(config.genesis.maxCost, config.currency),
        available: formatMoney(available, config.currency),
      },
      `the germline has no checkpoint yet and cannot pay for its first training run: deposit (computatrum deposit) and start again, or push a checkpoint to ${repository}:${HEAD_BRANCH}`,
    );
    return;
  }
  const training = trainingRequest(trainingDefaults(config), {
    // A genesis started again after a failure is a new run.
    id: `genesis-${randomBytes(3).toString('hex')}`,
    payer: germlineWorkflowId(config.germline),
    currency: config.currency,
    output: { repo: repository, branch: HEAD_BRANCH },
    maxCost: config.genesis.maxCost,
  });
  const genesis = await ensureGenesis(client, { germline: config.germline, taskQueue: config.taskQueue, training });
  if (genesis === 'started') {
    logger.info(
      { workflowId: genesisWorkflowId(config.germline), run: training.id },
      "the germline has no checkpoint yet: training its first one, which becomes today's gpc tag",
    );
  }
}

/** A secret kept in the data folder, made once: one machine's platform keeps it across restarts. */
function dataFolderSecret(dataDir: string, name: string): string {
  const file = path.join(dataDir, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32).toString('hex');
  // wx: a racing start that wrote it first wins, and both read the one that is there.
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return readFileSync(file, 'utf8').trim();
}
