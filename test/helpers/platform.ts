// The platform as the workflow tests build it: on the test environment's store, database and
// Temporal client, logging nothing; each test adds what it needs (Stripe, training, another store).
import type { FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import pino from 'pino';
import { buildPlatform, type PlatformOptions } from '../../platform/server';
import type { StripeSettings } from '../../platform/stripe';
import type { TestEnvironment } from './temporal';

export function testPlatform(
  env: TestEnvironment,
  germline: string,
  options: Partial<PlatformOptions> = {},
): Promise<FastifyInstance> {
  return buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    currency: 'usd',
    store: env.store,
    db: env.db,
    client: env.client,
    ...options,
  });
}

/** Stripe through stripe-mock (or a proxy in front of it), signing webhooks with `webhookSecret`. */
export function testStripe(client: Stripe, webhookSecret: string, feePercent = 10): StripeSettings {
  return { client, webhookSecret, publicUrl: 'http://127.0.0.1:8080', feePercent };
}
