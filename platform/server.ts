// The platform's HTTP server. For now: the health endpoint that operators and load balancers poll.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Database } from '../activities/db/prisma';
import type { CheckpointStore } from '../activities/store/types';
import { registerCheckpointListing } from './checkpoint-listing';
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

  registerOciDistribution(app, options.store);
  registerCheckpointListing(app, options.store, options.db);
  return app;
}
