// Stripe, the platform's one module for it: Checkout Sessions that fund the germline or buy a breed
// (a destination charge to the trainer's connected account, the platform fee kept), trainers'
// payouts onboarding (Account Links), and the webhook that turns a paid session into a deposit
// and, for a purchase, an entitlement. The webhook verifies Stripe's signature on the
// raw body, and processes each event once: the deposit's reference is the event id (the germline
// books a reference once) and the event is stored after it is processed, so Stripe's redeliveries
// and concurrent duplicates credit nothing twice. Every call to Stripe carries an idempotency key
// derived from our own ids.
import { Prisma } from '@prisma/client';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import type { Database } from '../db/prisma';
import { germlineHandle } from '../temporal/germline-client';
import { formatMoney, MoneyError, toMinor } from '../workflows/money';
import { type AccountView } from './accounts';
import { creditHandle } from './credit';
import { entitlementId } from './read-access';
import { depositUpdate } from '../workflows/budget-api';
import { sponsorHandle } from './sponsors';
import { ACCOUNT_HANDLE } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';
import { toRefusal, StripeInputError } from './errors';
import { assertNotFlagged } from './probes';

export interface StripeSettings {
  client: Stripe;
  /** The webhook endpoint's signing secret (`whsec_…`). */
  webhookSecret: string;
  /** Where people come back to after Checkout, e.g. https://computatrum.io */
  publicUrl: string;
  /** The platform's share of a breed sale, in percent (it funds the germline). */
  feePercent: number;
}

/** A Stripe client; `apiBase` points it elsewhere (stripe-mock in tests: http://127.0.0.1:12111). */
export function stripeClient(secretKey: string, apiBase?: string): Stripe {
  const base = apiBase ? new URL(apiBase) : undefined;
  return new Stripe(secretKey, {
    maxNetworkRetries: 2,
    telemetry: false,
    ...(base
      ? {
          host: base.hostname,
          port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
          protocol: base.protocol === 'https:' ? 'https' : 'http',
        }
      : {}),
  });
}

export const FUNDING_KIND = 'fund-germline';

/** Stripe's largest amount for one Checkout line in minor units (eight digits). */
const MAX_CHECKOUT_AMOUNT = 99_999_999n;

/** A Checkout Session that, once paid, becomes a deposit in the germline; `requestId` makes a retried request the same session. */
export function createFundingCheckout(
  settings: StripeSettings,
  input: { germline: string; amount: bigint; currency: string; requestId: string },
): Promise<{ id: string; url: string | null }> {
  return fundingSession(settings, {
    ...input,
    product: `Funding for germline/${input.germline}`,
    metadata: { kind: FUNDING_KIND, germline: input.germline },
    idempotencyKey: `${FUNDING_KIND}/${input.germline}/${input.requestId}`,
    returnPath: '/operator',
  });
}

export const CREDIT_KIND = 'fund-credit';

/** A trainer's Checkout Session that, once paid, becomes credit for their training runs. */
export function createCreditCheckout(
  settings: StripeSettings,
  trainer: AccountView,
  input: { amount: bigint; currency: string; requestId: string },
): Promise<{ id: string; url: string | null }> {
  return fundingSession(settings, {
    ...input,
    product: `Training credit for ${trainer.handle}`,
    metadata: { kind: CREDIT_KIND, handle: trainer.handle },
    idempotencyKey: `${CREDIT_KIND}/${trainer.id}/${input.requestId}`,
    returnPath: '/auth/account',
  });
}

export const SPONSOR_KIND = 'fund-sponsor';

/** A sponsor's Checkout Session that, once paid, funds its grants (sponsor/<name>). */
export function createSponsorCheckout(
  settings: StripeSettings,
  manager: AccountView,
  input: { sponsor: string; title: string; amount: bigint; currency: string; requestId: string },
): Promise<{ id: string; url: string | null }> {
  return fundingSession(settings, {
    ...input,
    product: `Free use sponsored by ${input.title}`,
    metadata: { kind: SPONSOR_KIND, sponsor: input.sponsor },
    idempotencyKey: `${SPONSOR_KIND}/${input.sponsor}/${manager.id}/${input.requestId}`,
    returnPath: '/sponsors',
  });
}

async function fundingSession(
  settings: StripeSettings,
  input: {
    amount: bigint;
    currency: string;
    product: string;
    metadata: Record<string, string>;
    idempotencyKey: string;
    returnPath: string;
  },
): Promise<{ id: string; url: string | null }> {
  if (input.amount <= 0n || input.amount > MAX_CHECKOUT_AMOUNT) {
    throw new StripeInputError(
      `a Checkout payment is from ${formatMoney(1n, input.currency)} to ${formatMoney(MAX_CHECKOUT_AMOUNT, input.currency)}`,
    );
  }
  const session = await settings.client.checkout.sessions.create(
    {
      mode: 'payment',
      line_items: [
        {
          quantity: 1,
          price_data: {
            currency: input.currency,
            unit_amount: Number(input.amount),
            product_data: { name: input.product },
          },
        },
      ],
      metadata: input.metadata,
      success_url: `${settings.publicUrl}${input.returnPath}?funded={CHECKOUT_SESSION_ID}`,
      cancel_url: `${settings.publicUrl}${input.returnPath}`,
    },
    { idempotencyKey: input.idempotencyKey },
  );
  return { id: session.id, url: session.url };
}

export const PURCHASE_KIND = 'buy-breed';

/** The sessions whose payment the webhook books somewhere. */
const PAID_KINDS: ReadonlySet<string | undefined> = new Set([FUNDING_KIND, CREDIT_KIND, PURCHASE_KIND, SPONSOR_KIND]);

/**
 * Why the money a paid session names cannot be booked (not whole minor units, or above the most one
 * amount may be), or undefined when it can: checked before anything is deposited, granted or started.
 */
export function unbookablePayment(session: Stripe.Checkout.Session): string | undefined {
  const currency = session.currency ?? undefined;
  try {
    toMinor(String(session.amount_total ?? 0), 'amount_total', currency);
    if (session.metadata?.fee !== undefined) toMinor(session.metadata.fee, 'the fee', currency);
  } catch (error) {
    if (error instanceof MoneyError) return error.message;
    throw error;
  }
  return undefined;
}

/** The platform's fee on a sale: a whole percentage, rounded down to the minor unit. */
export function platformFee(amount: bigint, feePercent: number): bigint {
  return (amount * BigInt(feePercent)) / 100n;
}

/**
 * A trainer's payouts: a Stripe connected account (Express) made once and remembered, and an
 * Account Link to Stripe's onboarding pages, where the trainer gives Stripe their details.
 */
export async function createPayoutsOnboarding(
  settings: StripeSettings,
  db: Database,
  account: AccountView,
  requestId: string,
): Promise<{ url: string; stripeAccountId: string }> {
  const row = await db.account.findUniqueOrThrow({ where: { id: account.id } });
  let stripeAccountId = row.stripeAccountId;
  if (!stripeAccountId) {
    const created = await settings.client.accounts.create(
      { type: 'express', email: account.email, metadata: { computatrum_account: account.id, handle: account.handle } },
      { idempotencyKey: `connect-account/${account.id}` },
    );
    stripeAccountId = created.id;
    await db.account.update({ where: { id: account.id }, data: { stripeAccountId } });
  }
  const link = await settings.client.accountLinks.create(
    {
      account: stripeAccountId,
      type: 'account_onboarding',
      refresh_url: `${settings.publicUrl}/marketplace/payouts`,
      return_url: `${settings.publicUrl}/marketplace/payouts?done=1`,
    },
    { idempotencyKey: `account-link/${account.id}/${requestId}` },
  );
  return { url: link.url, stripeAccountId };
}

/** A buyer's Checkout Session for a paid breed: a destination charge to the trainer, the fee kept for the germline. */
export async function createBreedCheckout(
  settings: StripeSettings,
  db: Database,
  buyer: AccountView,
  input: { repository: string; requestId: string },
): Promise<{ id: string; url: string | null; amount: bigint; fee: bigint }> {
  const breed = await db.breed.findUnique({ where: { repository: input.repository }, include: { owner: true } });
  if (!breed) throw new StripeInputError(`${input.repository} is not listed on the marketplace`);
  // An image a probe flagged is not sold until an operator clears it.
  await assertNotFlagged(db, breed.repository, undefined, `${breed.repository} cannot be bought now`);
  if (breed.price === null) throw new StripeInputError(`${input.repository} is free: download it, no purchase needed`);
  if (breed.ownerId === buyer.id) throw new StripeInputError('this breed is yours already');
  if (!breed.owner.stripeAccountId)
    throw new StripeInputError(
      `${breed.owner.handle} has not set up payouts yet, so ${input.repository} cannot be sold`,
    );
  const fee = platformFee(breed.price, settings.feePercent);
  const session = await settings.client.checkout.sessions.create(
    {
      mode: 'payment',
      line_items: [
        {
          quantity: 1,
          price_data: {
            currency: breed.currency,
            unit_amount: Number(breed.price),
            product_data: { name: `${breed.title} (${breed.repository})` },
          },
        },
      ],
      payment_intent_data: {
        application_fee_amount: Number(fee),
        transfer_data: { destination: breed.owner.stripeAccountId },
      },
      metadata: { kind: PURCHASE_KIND, repository: breed.repository, buyer: buyer.id, fee: fee.toString() },
      success_url: `${settings.publicUrl}/hub/${breed.repository}?bought={CHECKOUT_SESSION_ID}`,
      cancel_url: `${settings.publicUrl}/hub/${breed.repository}`,
    },
    { idempotencyKey: `${PURCHASE_KIND}/${buyer.id}/${breed.repository}/${input.requestId}` },
  );
  return { id: session.id, url: session.url, amount: breed.price, fee };
}

export function registerStripeWebhook(
  app: FastifyInstance,
  settings: StripeSettings,
  deps: { db: Database; client?: Client; germline: string; taskQueue?: string },
): void {
  void app.register(async (scope) => {
    // The signature covers the exact bytes Stripe sent: keep them, unparsed, on this route only.
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.post('/stripe/webhook', async (request, reply) => {
      let event: Stripe.Event;
      try {
        event = settings.client.webhooks.constructEvent(
          request.body as Buffer,
          String(request.headers['stripe-signature'] ?? ''),
          settings.webhookSecret,
        );
      } catch (error) {
        request.log.warn({ error: (error as Error).message }, 'a Stripe webhook with a bad signature was refused');
        return reply.code(400).send({
          code: 'BAD_SIGNATURE',
          error: 'the Stripe-Signature header does not match this body and the endpoint secret',
        });
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
    // A delayed payment method (a bank debit) completes the session unpaid and succeeds later, as its own event.
    if (event.type !== 'checkout.session.completed' && event.type !== 'checkout.session.async_payment_succeeded')
      return `ignored: ${event.type} is not handled`;
    const session = event.data.object;
    if (session.payment_status !== 'paid') return `ignored: the session is ${session.payment_status}`;
    // Answered 200 and recorded, never thrown: Stripe redelivers any non-2xx for days, and no redelivery makes this amount bookable.
    const unbookable = PAID_KINDS.has(session.metadata?.kind) ? unbookablePayment(session) : undefined;
    if (unbookable) return refusedPayment(event, `checkout session ${session.id}`, unbookable);
    if (session.metadata?.kind === PURCHASE_KIND) return purchased(event, session);
    if (session.metadata?.kind === CREDIT_KIND) return credited(event, session);
    if (session.metadata?.kind === SPONSOR_KIND) return sponsored(event, session);
    if (session.metadata?.kind !== FUNDING_KIND || session.metadata.germline !== deps.germline)
      return 'ignored: not a funding of this germline';
    const amount = String(session.amount_total ?? 0);
    return deposit(
      event,
      germlineHandle(temporal(), deps.germline),
      amount,
      session.currency ?? '',
      `deposited ${formatMoney(amount, session.currency ?? '')} into germline/${deps.germline}`,
    );
  }

  function temporal(): Client {
    if (!deps.client) throw new Error('the germline is not reachable from this platform process');
    return deps.client;
  }

  /** A trainer's credit paid in: deposited in credit/<handle>, started if this is its first money. */
  async function credited(event: Stripe.Event, session: Stripe.Checkout.Session): Promise<string> {
    const handle = session.metadata?.handle;
    if (!handle || !ACCOUNT_HANDLE.test(handle)) return 'ignored: a credit without its trainer';
    if (!deps.taskQueue) throw new Error('training credit needs the worker task queue');
    const amount = String(session.amount_total ?? 0);
    const currency = session.currency ?? '';
    const credit = await creditHandle(temporal(), deps.taskQueue, handle, currency);
    return deposit(event, credit, amount, currency, `deposited ${formatMoney(amount, currency)} into credit/${handle}`);
  }

  /** A sponsor's fund paid in: deposited in sponsor/<name>, whose grants pay for personal users' calls. */
  async function sponsored(event: Stripe.Event, session: Stripe.Checkout.Session): Promise<string> {
    const name = session.metadata?.sponsor;
    if (!name || !(await deps.db.sponsor.findUnique({ where: { name } }))) return 'ignored: a funding of no sponsor';
    if (!deps.taskQueue) throw new Error('sponsors need the worker task queue');
    const amount = String(session.amount_total ?? 0);
    const currency = session.currency ?? '';
    const fund = await sponsorHandle(temporal(), deps.taskQueue, name, currency);
    return deposit(event, fund, amount, currency, `deposited ${formatMoney(amount, currency)} into sponsor/${name}`);
  }

  /** A breed bought: the buyer may download it from now on, and the platform's fee funds the germline. */
  async function purchased(event: Stripe.Event, session: Stripe.Checkout.Session): Promise<string> {
    const { repository, buyer, fee } = session.metadata as { repository?: string; buyer?: string; fee?: string };
    if (!repository || !buyer || !fee || !/^\d+$/.test(fee))
      return 'ignored: a purchase without its repository, buyer and fee';
    const breed = await deps.db.breed.findUnique({ where: { repository } });
    if (!breed) return `ignored: ${repository} is not listed`;
    const amount = BigInt(session.amount_total ?? 0);
    await deps.db.entitlement.upsert({
      where: { id: entitlementId(buyer, repository) },
      create: {
        id: entitlementId(buyer, repository),
        accountId: buyer,
        repository,
        checkoutSessionId: session.id,
        amount,
        fee: BigInt(fee),
      },
      update: {},
    });
    const currency = session.currency ?? breed.currency;
    if (fee === '0') return `granted ${repository} to ${buyer}; no fee`;
    return deposit(
      event,
      germlineHandle(temporal(), deps.germline),
      fee,
      currency,
      `granted ${repository} to ${buyer}; fee ${formatMoney(fee, currency)} deposited into germline/${deps.germline}`,
    );
  }

  async function deposit(
    event: Stripe.Event,
    books: WorkflowHandle,
    amount: string,
    currency: string,
    done: string,
  ): Promise<string> {
    try {
      await updateBudget(books, depositUpdate, { amount, currency, reference: event.id });
    } catch (error) {
      const refusal = toRefusal(error);
      // A journal that cannot book right now is a failure to retry: Stripe delivers the event again later.
      if (!refusal || refusal.code === 'UNAVAILABLE') throw error;
      return refusedPayment(event, books.workflowId, refusal.message);
    }
    return done;
  }

  /** Paid money that cannot be booked (another currency, an amount above the maximum) needs a person: it is logged and recorded, not retried. */
  function refusedPayment(event: Stripe.Event, by: string, reason: string): string {
    app.log.error(
      { event: event.id, by, reason },
      'a payment was refused: a person must look at it (refund it, or book it by hand)',
    );
    return `refused by ${by}: ${reason}`;
  }
}
