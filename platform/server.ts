// The platform's HTTP server: health, accounts (/auth/*), the GraphQL API (/api/graphql), downloads
// (/v2/, the read side of the OCI Distribution API), the checkpoint listing and the pages (pages/).
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Database } from '../db/prisma';
import type { CheckpointStore } from '../store/types';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { Client } from '@temporalio/client';
import { registerAuth } from './auth';
import { HEALTH_PATHS, type HealthCheck, registerHealth } from './health';
import { registerCheckpointListing } from './checkpoint-listing';
import { registerGateway } from './gateway';
import type { GatewayLimits } from './gateway-limits';
import { Metering, type MeteringSettings } from './metering';
import { registerHttpMetrics } from './http-metrics';
import { payOutEarnings, schedulePayouts } from './payouts';
import { registerFeedbackRoute } from './gateway-feedback';
import { visitorIds } from './visitors';
import { registerGraphQL } from './graphql';
import type { TrainingSettings } from './credit';
import { registerStripeWebhook, type StripeSettings } from './stripe';
import { registerOciDistribution } from './oci-distribution';
import { registerPages } from './pages';
import { listReferrers } from './hub';
import { isPublicAttachment, readRefusal } from './read-access';
import { registerRecordings } from './recordings';

export type { HealthCheck } from './health';

export interface PlatformOptions {
  logger: Logger;
  checks: HealthCheck[];
  germline: string;
  temporalUiUrl?: string;
  store: CheckpointStore;
  db: Database;
  /** Where the public cache LISTENs for changes (PostgreSQL); without it, it reads their generation each second. */
  databaseUrl?: string;
  /** The germline's currency, for amounts given to the API. */
  currency?: string;
  /** Temporal, for the germline's fields and the operators' mutations. */
  client?: Client;
  /** Stripe, when configured: Checkout for funding and the webhook at /stripe/webhook. */
  stripe?: StripeSettings;
  /** When trainers are paid out through Stripe (COMPUTATRUM_PAYOUTS_CRON); without it, only when operators ask. */
  payoutsCron?: string;
  /** How trainers' runs are made (with a Temporal client): without it, trainers cannot train through the API. */
  training?: TrainingSettings;
  /** Requests per client address per minute on the API and accounts (downloads and health are not limited). */
  rateLimitPerMinute?: number;
  /** Requests per anonymous address per minute on the gateway (/v1); default 60, never more than the above. */
  anonymousChatsPerMinute?: number;
  /** Salt of anonymous visitors' ids on the gateway: the same on every replica and across restarts. */
  visitorSalt?: string;
  /** Chats per caller and image on the gateway, a minute and a day (COMPUTATRUM_GATEWAY_*); without it, none. */
  gatewayLimits?: GatewayLimits;
  /** Which proxies' X-Forwarded-For and -Proto are believed (PLATFORM_TRUST_PROXY); default none. */
  trustProxy?: boolean | number | string[];
  /** The platform's share of sales and of per-use charges, a whole percentage; default 10 (or Stripe's). */
  feePercent?: number;
  /** How priced calls are metered (allotments' size and life); the rest comes from the options above. */
  usage?: Pick<MeteringSettings, 'allotmentMinor' | 'allotmentSeconds' | 'defaultMaxTokens' | 'cacheMs' | 'clock'>;
}

/** Request bodies (GraphQL operations, sign-ups) are small; a bigger one is a 413, not work. */
export const BODY_LIMIT = 256 * 1024;
export const DEFAULT_RATE_LIMIT = 600;
const DEFAULT_FEE_PERCENT = 10;

export async function buildPlatform(options: PlatformOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'platform' }) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // Behind an Ingress, the client is who the trusted proxy says (rate limits, visitors' ids) and
    // HTTPS is what it says (Secure, __Host- cookies); an untrusted X-Forwarded-For changes nothing.
    trustProxy:
      typeof options.trustProxy === 'number'
        ? (_address: string, hop: number) => hop < (options.trustProxy as number)
        : (options.trustProxy ?? false),
  });
  registerHttpMetrics(app);
  // Security headers on every answer; the pages set a stricter Content-Security-Policy of their own.
  await app.register(helmet);
  await app.register(rateLimit, {
    max: options.rateLimitPerMinute ?? DEFAULT_RATE_LIMIT,
    timeWindow: 60_000,
    // Pulls of big checkpoints make few, long requests; load balancers poll health.
    // Stripe's webhook deliveries come in bursts from few addresses, and are verified by signature.
    allowList: (request) =>
      request.url.startsWith('/v2/') || HEALTH_PATHS.includes(request.url) || request.url === '/stripe/webhook',
    // An Error, so that both Fastify's JSON errors and the GraphQL endpoint's error format carry the message.
    errorResponseBuilder: (_request, context) =>
      Object.assign(new Error(`too many requests: at most ${context.max} per minute; try again in ${context.after}`), {
        statusCode: 429,
        code: 'RATE_LIMITED',
      }),
  });

  registerHealth(app, options.checks, { germline: options.germline, temporalUi: options.temporalUiUrl });

  // The pages' forms are urlencoded; each route that takes one checks its CSRF token (csrf.ts).
  await app.register(formbody);
  await registerAuth(app, options.db);
  await registerGraphQL(
    app,
    {
      db: options.db,
      store: options.store,
      germline: options.germline,
      currency: options.currency ?? 'usd',
      ...(options.client ? { client: options.client } : {}),
      ...(options.stripe ? { stripe: options.stripe } : {}),
      ...(options.training ? { training: options.training } : {}),
    },
    { publicCache: { ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}) } },
  );
  if (options.stripe) {
    // Trainers' earnings from their breeds' use are paid out on a schedule (and by operators at will).
    const stripe = options.stripe;
    if (options.payoutsCron) {
      const stopPayouts = schedulePayouts(
        () => payOutEarnings(stripe, options.db, options.currency ?? 'usd'),
        app.log,
        options.payoutsCron,
      );
      app.addHook('onClose', async () => stopPayouts());
    }
    registerStripeWebhook(app, options.stripe, {
      db: options.db,
      germline: options.germline,
      ...(options.client ? { client: options.client } : {}),
      ...(options.training ? { taskQueue: options.training.taskQueue } : {}),
    });
  }
  const { resolve } = registerOciDistribution(
    app,
    options.store,
    async (request, repo, digest) => {
      const refusal = await readRefusal(options.db, request.caller, repo);
      return refusal && !(await isPublicAttachment(options.db, repo, digest)) ? refusal : undefined;
    },
    (repo, digest, artifactType) => listReferrers(options.db, repo, digest, artifactType),
  );
  registerCheckpointListing(app, options.store, options.db);
  registerRecordings(app, options.db, options.store);
  // One salt for every part that knows anonymous visitors, so their ids agree.
  const visitorSalt = options.visitorSalt ?? randomBytes(32).toString('hex');
  await registerGateway(app, {
    db: options.db,
    perMinute: options.rateLimitPerMinute ?? DEFAULT_RATE_LIMIT,
    ...(options.anonymousChatsPerMinute ? { anonymousPerMinute: options.anonymousChatsPerMinute } : {}),
    visitorSalt,
    ...(options.gatewayLimits ? { limits: options.gatewayLimits } : {}),
    currency: options.currency ?? 'usd',
    ...(options.client ? { client: options.client } : {}),
    // Per-use prices need credit workflows to reserve from: a platform without Temporal serves every call free.
    ...(options.client && options.training
      ? {
          metering: new Metering(options.db, {
            client: options.client,
            taskQueue: options.training.taskQueue,
            germline: options.germline,
            currency: options.currency ?? 'usd',
            feePercent: options.feePercent ?? options.stripe?.feePercent ?? DEFAULT_FEE_PERCENT,
            ...options.usage,
          }),
        }
      : {}),
  });
  await registerFeedbackRoute(app, {
    db: options.db,
    visitorId: visitorIds(visitorSalt),
    perMinute: options.rateLimitPerMinute ?? DEFAULT_RATE_LIMIT,
  });
  await registerPages(app, {
    db: options.db,
    store: options.store,
    germline: options.germline,
    currency: options.currency ?? 'usd',
    resolve,
    ...(options.client ? { client: options.client } : {}),
    ...(options.stripe ? { stripe: options.stripe } : {}),
    ...(options.temporalUiUrl ? { temporalUiUrl: options.temporalUiUrl } : {}),
    ...(options.training ? { training: options.training } : {}),
  });
  return app;
}
