// Stripe, the platform's one module for it: Checkout Sessions that fund the germline, and the
// webhook that turns a paid session into a deposit. The webhook verifies Stripe's signature on the
// raw body, and processes each event once: the deposit's reference is the event id (the germline
// books a reference once) and the event is stored after it is processed, so Stripe's redeliveries
// and concurrent duplicates credit nothing twice. Every call to Stripe carries an idempotency key
// derived from our own ids.
import { Prisma } from '@prisma/client';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import type { Database } from '../activities/db/prisma';
import { germlineHandle, updateGermline } from '../worker/germline-client';
import { depositUpdate } from '../workflows/germline-api';
import { formatMoney } from '../workflows/money';

export interface StripeSettings {
  client: Stripe;
  /** The webhook endpoint's signing secret (`whsec_…`). */
  webhookSecret: string;
  /** Where people come back to after Checkout, e.g. https://computatrum.io */
  publicUrl: string;
}

/** A Stripe client; `apiBase` points it elsewhere (stripe-mock in tests: http://127.0.0.1:12111). */
export function stripeClient(secretKey: string, apiBase?: string): Stripe {
  const base = apiBase ? new URL(apiBase) : undefined;
  return new Stripe(secretKey, {
    maxNetworkRetries: 2,
    telemetry: false,
    ...(base ? { host: base.hostname, port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)), protocol: base.protocol === 'https:' ? 'https' : 'http' } : {}),
  });
}

export const FUNDING_KIND = 'fund-germline';

/** Stripe's largest amount for one Checkout line in minor units (eight digits). */
const MAX_CHECKOUT_AMOUNT = 99_999_999n;

export class StripeInputError extends Error {
  override name = 'StripeInputError';
}

/** A Checkout Session that, once paid, becomes a deposit in the germline; `requestId` makes a retried request the same session. */
export async function createFundingCheckout(
  settings: StripeSettings,
  input: { germline: string; amount: bigint; currency: string; requestId: string },
): Promise<{ id: string; url: string | null }> {
  if (input.amount <= 0n || input.amount > MAX_CHECKOUT_AMOUNT) {
    throw new StripeInputError(`a Checkout payment is from ${formatMoney(1n, input.currency)} to ${formatMoney(MAX_CHECKOUT_AMOUNT, input.currency)}`);
  }
  const session = await settings.client.checkout.sessions.create(
    {
      mode: 'payment',
      line_items: [{ quantity: 1, price_data: { currency: input.currency, unit_amount: Number(input.amount), product_data: { name: `Funding for germline/${input.germline}` } } }],
      metadata: { kind: FUNDING_KIND, germline: input.germline },
      success_url: `${settings.publicUrl}/zookeeper?funded={CHECKOUT_SESSION_ID}`,
      cancel_url: `${settings.publicUrl}/zookeeper`,
    },
    { idempotencyKey: `${FUNDING_KIND}/${input.germline}/${input.requestId}` },
  );
  return { id: session.id, url: session.url };
}

export function registerStripeWebhook(app: FastifyInstance, settings: StripeSettings, deps: { db: Database; client?: Client; germline: string }): void {
  void app.register(async (scope) => {
    // The signature covers the exact bytes Stripe sent: keep them, unparsed, on this route only.
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.post('/stripe/webhook', async (request, reply) => {
      let event: Stripe.Event;
      try {
        event = settings.client.webhooks.constructEvent(request.body as Buffer, String(request.headers['stripe-signature'] ?? ''), settings.webhookSecret);
      } catch (error) {
        request.log.warn({ error: (error as Error).message }, 'a Stripe webhook with a bad signature was refused');
        return reply.code(400).send({ code: 'BAD_SIGNATURE', error: 'the Stripe-Signature header does not match this body and the endpoint secret' });
      }
      if (await deps.db.stripeEvent.findUnique({ where: { id: event.id } })) return { received: true, duplicate: true };

      const outcome = await process(event);
      try {
        await deps.db.stripeEvent.create({ data: { id: event.id, type: event.type, outcome } });
      } catch (error) {
        // The same event processed at the same moment by another delivery: its deposit was the same one.
        if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')) throw error;
      }
      request.log.info({ event: event.id, type: event.type, outcome }, 'Stripe event processed');
      return { received: true };
    });
  });

  /** What the event does; a failure to reach the germline throws, so Stripe delivers the event again later. */
  async function process(event: Stripe.Event): Promise<string> {
    if (event.type !== 'checkout.session.completed') return `ignored: ${event.type} is not handled`;
    const session = event.data.object;
    if (session.metadata?.kind !== FUNDING_KIND || session.metadata.germline !== deps.germline) return 'ignored: not a funding of this germline';
    if (session.payment_status !== 'paid') return `ignored: the session is ${session.payment_status}`;
    if (!deps.client) throw new Error('the germline is not reachable from this platform process');
    const amount = String(session.amount_total ?? 0);
    const currency = session.currency ?? '';
    try {
      await updateGermline(germlineHandle(deps.client, deps.germline), depositUpdate, { amount, currency, reference: event.id });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause;
      if (error instanceof Error && error.name === 'WorkflowUpdateFailedError' && cause?.message) {
        // Paid money the books refuse (another currency, say) needs a person: it is recorded, not retried.
        app.log.error({ event: event.id, reason: cause.message }, 'a paid Stripe funding was refused by the germline');
        return `refused by the germline: ${cause.message}`;
      }
      throw error;
    }
    return `deposited ${formatMoney(amount, currency)} into germline/${deps.germline}`;
  }
}
