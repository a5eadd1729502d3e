// Every answer the platform gives is counted by method, route and status, and timed: the route is
// Fastify's pattern (`/v2/*`, `/hub/:repo`), never the raw URL, so the labels stay bounded whatever
// callers ask for; a request no route matched counts as `unmatched`.
import type { FastifyInstance } from 'fastify';
import { metrics } from '../runtime/metrics';

export function registerHttpMetrics(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const { httpRequests, httpDuration } = metrics();
    httpRequests.add(1, { method: request.method, route, status: String(reply.statusCode) });
    httpDuration.record(reply.elapsedTime, { method: request.method, route });
  });
}
