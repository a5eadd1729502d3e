// Health for orchestrators, on the platform and on a worker-only process alike: /livez says the
// process serves (restart it when not), /readyz that its dependencies answer (send it traffic only
// then). They are apart so that a Temporal or PostgreSQL blip takes pods out of rotation instead of
// restarting every one of them. /healthz is /readyz under its older name.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';

/** A named dependency; it throws when that dependency is down. */
export type HealthCheck = { name: string; check: () => Promise<void> };

export const HEALTH_PATHS = ['/livez', '/readyz', '/healthz'];

export function registerHealth(app: FastifyInstance, checks: HealthCheck[], about: Record<string, unknown> = {}): void {
  app.get('/livez', async () => ({ status: 'ok' }));
  const ready = async (_request: unknown, reply: FastifyReply) => {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await check();
          return [name, 'ok'] as const;
        } catch (error) {
          return [name, `down: ${(error as Error).message}`] as const;
        }
      }),
    );
    const healthy = results.every(([, state]) => state === 'ok');
    return reply
      .code(healthy ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: healthy ? 'ok' : 'degraded', ...about, checks: Object.fromEntries(results) });
  };
  app.get('/readyz', ready);
  app.get('/healthz', ready);
}

/** The health endpoints alone, for a process that runs no platform (`up --only worker`). */
export async function workerHealthServer(logger: Logger, checks: HealthCheck[]): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger.child({ component: 'health' }) as FastifyBaseLogger,
    disableRequestLogging: true,
  });
  registerHealth(app, checks, { part: 'worker' });
  return app;
}
