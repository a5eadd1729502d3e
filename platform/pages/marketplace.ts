// /marketplace: the breeds trainers list, free or for a price, with Buy (a Stripe Checkout Session,
// then a 303 to Stripe's page) and, for trainers, payouts onboarding (a 303 to Stripe's Account Link).
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Stripe from 'stripe';
import { formatMoney, formatUsePrice } from '../../workflows/money';
import { listBreeds } from '../marketplace';
import { createBreedCheckout, createPayoutsOnboarding, type StripeSettings } from '../stripe';
import type { PagesDeps } from './deps';
import { html, pathOf, type SafeHtml } from './html';
import {
  csrfField,
  formFields,
  redirect,
  refuseForgedForm,
  sendPage,
  sendProblem,
  signInPath,
  type View,
  viewOf,
} from './view';
import { toRefusal } from '../errors';

export const price = (amount: bigint | null, currency: string) =>
  amount === null ? 'free' : formatMoney(amount, currency);

/** "0.01 USD in, 0.03 USD out" per 1,000 tokens, or "free" (buyers' terms in brackets). */
export function usePrices(breed: {
  price: bigint | null;
  currency: string;
  inputPricePerMillion: bigint | null;
  outputPricePerMillion: bigint | null;
  licenceIncludesUse: boolean;
}): string {
  if (!breed.inputPricePerMillion && !breed.outputPricePerMillion) return 'free';
  const prices = `${formatUsePrice(breed.inputPricePerMillion ?? 0n, breed.currency)} in, ${formatUsePrice(breed.outputPricePerMillion ?? 0n, breed.currency)} out`;
  return breed.price === null ? prices : `${prices}${breed.licenceIncludesUse ? ' (free for buyers)' : ''}`;
}

/** The Buy button for a priced breed, as this caller may use it. */
export function buyButton(
  view: View,
  breed: { repository: string; price: bigint | null; ownerHandle: string },
  bought: boolean,
): SafeHtml {
  if (breed.price === null) return html`<a href="${pathOf('hub', breed.repository)}">Free: download</a>`;
  const account = view.caller.account;
  if (!account) return html`<a href="${signInPath(view.path)}">Sign in to buy</a>`;
  if (account.handle === breed.ownerHandle) return html`<span class="muted">Yours</span>`;
  if (bought) return html`<span class="badge">Bought</span> <a href="${pathOf('hub', breed.repository)}">download</a>`;
  return html`<form class="inline" method="post" action="/marketplace/buy">${csrfField(view)}<input type="hidden" name="repository" value="${breed.repository}"><button type="submit">Buy</button></form>`;
}

function payoutsForm(view: View): SafeHtml {
  return html`<form method="post" action="/marketplace/payouts">${csrfField(view)}<button type="submit" class="secondary">Onboard payouts with Stripe</button></form>`;
}

const stripeUnavailable =
  'Payments are not configured on this platform (STRIPE_SECRET_KEY is not set), so breeds cannot be bought or paid out here. Free breeds download as usual.';

export function registerMarketplacePages(app: FastifyInstance, deps: PagesDeps): void {
  const sendMarketplace = async (
    request: FastifyRequest,
    reply: FastifyReply,
    problem?: { status: number; message: string },
  ) => {
    const view = viewOf(request, reply);
    const account = view.caller.account;
    const [breeds, owned] = await Promise.all([
      listBreeds(deps.db, 200),
      account
        ? deps.db.entitlement.findMany({ where: { accountId: account.id }, select: { repository: true } })
        : Promise.resolve([]),
    ]);
    const bought = new Set(owned.map((e) => e.repository));
    return sendPage(reply, view, {
      title: 'Marketplace',
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      body: html`<h1>Marketplace</h1>
        <p>Breeds are checkpoints trainers made for one task, listed free or for a price. A paid breed downloads
        once you bought it. A breed may also be priced per use: calls to its instances are paid from your credit
        (or a <a href="/sponsors">sponsor’s</a> grant), and <a href="/usage">your usage</a> lists each one; ${deps.stripe ? `the platform keeps ${deps.stripe.feePercent}% of each sale, which funds the germline` : 'part of each sale funds the germline'}.</p>
        ${deps.stripe ? '' : html`<p class="notice">${stripeUnavailable}</p>`}
        ${
          breeds.length
            ? html`<table>
              <tr><th>Breed</th><th>Repository</th><th>Trainer</th><th class="num">Price</th><th>Use, per 1,000 tokens</th><th></th></tr>
              ${breeds.map(
                (b) => html`<tr>
                  <td>${b.title}</td>
                  <td><a href="${pathOf('hub', b.repository)}">${b.repository}</a></td>
                  <td>${b.owner}</td>
                  <td class="num">${price(b.price, b.currency)}</td>
                  <td class="use">${usePrices(b)}</td>
                  <td>${buyButton(view, { repository: b.repository, price: b.price, ownerHandle: b.owner }, bought.has(b.repository))}</td>
                </tr>`,
              )}
            </table>`
            : html`<p class="muted">No breeds are listed yet. Trainers list one from their repository’s hub page (“Publish as a breed”).</p>`
        }
        <h2>For trainers</h2>
        ${
          account
            ? html`<p>To sell a breed, Stripe needs your payout details once: it pays you each sale, less the platform’s share.</p>${payoutsForm(view)}`
            : html`<p><a href="${signInPath('/marketplace')}">Sign in</a> to list a breed and get paid for it.</p>`
        }`,
    });
  };

  app.get('/marketplace', (request, reply) => sendMarketplace(request, reply));

  app.get<{ Querystring: { done?: string } }>('/marketplace/payouts', async (request, reply) => {
    const view = viewOf(request, reply);
    const account = view.caller.account;
    if (!account) return redirect(reply, signInPath('/marketplace/payouts'));
    const row = await deps.db.account.findUnique({ where: { id: account.id }, select: { stripeAccountId: true } });
    return sendPage(reply, view, {
      title: 'Payouts',
      ...(request.query.done
        ? { notice: 'Back from Stripe. Once Stripe has checked your details, your paid breeds can be bought.' }
        : {}),
      body: html`<h1>Payouts</h1>
        <p>${row?.stripeAccountId ? html`Your Stripe account is <code>${row.stripeAccountId}</code>. Open Stripe’s onboarding again to finish or change your details.` : 'You have no Stripe account for payouts yet: onboarding makes one.'}</p>
        ${deps.stripe ? payoutsForm(view) : html`<p class="notice">${stripeUnavailable}</p>`}
        <p><a href="/marketplace">Back to the marketplace</a></p>`,
    });
  });

  /** Stripe itself failing (unreachable, refusing) is not the buyer's mistake, and not a crash either. */
  const withStripe = async (
    request: FastifyRequest,
    reply: FastifyReply,
    act: (stripe: StripeSettings) => Promise<string | null>,
  ) => {
    const view = viewOf(request, reply);
    if (!deps.stripe)
      return sendProblem(
        reply,
        view,
        503,
        'Payments are not available',
        stripeUnavailable,
        html`<p><a href="/marketplace">Back to the marketplace</a></p>`,
      );
    try {
      const url = await act(deps.stripe);
      if (!url)
        return sendProblem(
          reply,
          view,
          502,
          'Stripe gave no page to go to',
          'Stripe answered without a page for this payment. Try again in a moment.',
        );
      return redirect(reply, url);
    } catch (error) {
      const refusal = toRefusal(error);
      if (refusal) return sendMarketplace(request, reply, refusal);
      if (error instanceof Stripe.errors.StripeError) {
        request.log.warn({ error: error.message, type: error.type }, 'a Stripe request failed');
        return sendProblem(
          reply,
          view,
          502,
          'Stripe could not be reached',
          `Stripe did not accept the request (${error.message}). Nothing was charged; try again in a moment.`,
        );
      }
      throw error;
    }
  };

  app.post('/marketplace/buy', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    const account = request.caller.account;
    if (!account) return redirect(reply, signInPath('/marketplace'));
    const repository = formFields(request).repository ?? '';
    // A fresh request id per press: a second press is a second Checkout Session, never a replayed one.
    return withStripe(
      request,
      reply,
      async (stripe) =>
        (await createBreedCheckout(stripe, deps.db, account, { repository, requestId: randomUUID() })).url,
    );
  });

  app.post('/marketplace/payouts', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    const account = request.caller.account;
    if (!account) return redirect(reply, signInPath('/marketplace/payouts'));
    return withStripe(
      request,
      reply,
      async (stripe) => (await createPayoutsOnboarding(stripe, deps.db, account, randomUUID())).url,
    );
  });
}
