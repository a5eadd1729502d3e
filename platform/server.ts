// The platform's HTTP server: health, accounts (/auth/*), the GraphQL API (/api/graphql), downloads
// (/v2/, the read side of the OCI Distribution API) and the checkpoint listing.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Database } from '../activities/db/prisma';
import type { CheckpointStore } from '../activities/store/types';
import type { Client } from '@temporalio/client';
import { registerAuth } from './auth';
import { registerCheckpointListing } from './checkpoint-listing';
import { registerGraphQL } from './graphql';
import { registerOciDistribution } from './oci-distribution';

/** A named dependency the platform needs; it throws when that dependency is down. */
export type HealthCheck = { name: string; check: () => Promise<void> };

export interface PlatformOptions {
  logger: Logger;
  checks: HealthCheck[];
  germline: string;
  temporalUiUrl?: string;
  store: CheckpointStore;
  db: Database;
  /** The germline's currency, for amounts given to the API. */
  currency?: string;
  /** Temporal, for the germline's fields and the operators' mutations. */
  client?: Client;
}

export async function buildPlatform(options: PlatformOptions): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: options.logger.child({ component: 'platform' }) as FastifyBaseLogger });

  app.get('/healthz', async (_request, reply) => {
    const results = await Promise.all(
      options.checks.map(async ({ name, check }) => {
        try {
          await check();
          return [name, 'ok'] as const;
        } catch (error) {
          return [name, `down: ${(error as Error).message}`] as const;
        }
      }),
    );
    const healthy = results.every(([, state]) => state === 'ok');
    return reply.code(healthy ? 200 : 503).send({
      status: healthy ? 'ok' : 'degraded',
      germline: options.germline,
      checks: Object.fromEntries(results),
      temporalUi: options.temporalUiUrl,
    });
  });

  await registerAuth(app, options.db);
  await registerGraphQL(app, { db: options.db, store: options.store, germline: options.germline, currency: options.currency ?? 'usd', ...(options.client ? { client: options.client } : {}) });
  registerOciDistribution(app, options.store);
  registerCheckpointListing(app, options.store, options.db);
  return app;
}
