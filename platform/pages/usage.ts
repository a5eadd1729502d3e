// Paying for use, as pages: /usage (what your priced calls cost and were refused, what your breeds
// earned) and /sponsors (who pays for free use; a sponsor's managers make one, set its grant, fund it
// through Stripe Checkout and read what it paid for: totals, never transcripts).
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { formatMicros, formatMoney, parseAmount } from '../../workflows/money';
import { toRefusal } from '../errors';
import { createSponsor, openGrants, setSponsorGrant, sponsorReport, type SponsorView } from '../sponsors';
import { createSponsorCheckout } from '../stripe';
import { usageReport } from '../usage';
import type { PagesDeps } from './deps';
import { html, type SafeHtml } from './html';
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

/** "0.50 USD a day for each person at example.org, until 2027-01-01" */
export function grantInWords(sponsor: SponsorView): string {
  if (sponsor.dailyAllowance === 0n) return 'no grant yet';
  const domain = sponsor.eligibleDomain ? ` at ${sponsor.eligibleDomain}` : '';
  const until = sponsor.expiresAt ? `, until ${sponsor.expiresAt.toISOString().slice(0, 10)}` : '';
  return `${formatMoney(sponsor.dailyAllowance, sponsor.currency)} a day for each person${domain}${until}`;
}

export function registerUsagePages(app: FastifyInstance, deps: PagesDeps): void {
  app.get('/usage', async (request, reply) => {
    const view = viewOf(request, reply);
    const account = view.caller.account;
    if (!account) return redirect(reply, signInPath('/usage'));
    const usage = await usageReport(deps.db, account.handle, deps.currency, { limit: 100 });
    return sendPage(reply, view, {
      title: 'Your usage',
      body: html`<h1>Your usage</h1>
        <p>Since ${usage.since.toISOString().slice(0, 10)}: ${usage.calls} priced calls charged
        <strong>${formatMicros(usage.charged, usage.currency)}</strong>, ${usage.refusals} refused.
        Calls to free images are not listed. <a href="/sponsors">Sponsors</a> pay for some personal use.</p>
        <p>Your breeds earned ${formatMoney(usage.earned, usage.currency)} from others’ use
        (${formatMoney(usage.earnedUnpaid, usage.currency)} not yet paid out).</p>
        ${
          usage.entries.length
            ? html`<table>
              <tr><th>Time</th><th>Image</th><th>Instance</th><th>State</th><th class="num">Tokens in/out</th><th class="num">Amount</th><th>Paid by, or why</th></tr>
              ${usage.entries.map(
                (e) => html`<tr>
                  <td>${e.at.toISOString().slice(0, 19).replace('T', ' ')}</td>
                  <td>${e.repository}</td>
                  <td><code>${e.instanceId}</code></td>
                  <td>${e.state}</td>
                  <td class="num">${e.inputTokens === null ? '' : `${e.inputTokens}/${e.outputTokens}`}</td>
                  <td class="num">${formatMicros(e.amount, usage.currency)}</td>
                  <td>${e.reason ?? (e.sponsor ? `${e.sponsor}’s grant` : e.caller.startsWith('visitor:') ? 'a visitor of your public instance' : 'your credit')}</td>
                </tr>`,
              )}
            </table>`
            : html`<p class="muted">No priced calls yet.</p>`
        }`,
    });
  });

  const sendSponsors = async (
    request: FastifyRequest,
    reply: FastifyReply,
    message?: { error?: string; notice?: string },
  ) => {
    const view = viewOf(request, reply);
    const account = view.caller.account;
    const grants = await openGrants(deps.db);
    const mine = account
      ? await deps.db.sponsor.findMany({ where: { ownerId: account.id }, orderBy: { createdAt: 'asc' } })
      : [];
    const reports =
      deps.training && deps.client
        ? await Promise.all(
            mine.map((s) =>
              sponsorReport(
                { db: deps.db, client: deps.client!, taskQueue: deps.training!.taskQueue },
                account!,
                s.name,
              ),
            ),
          )
        : [];
    return sendPage(reply, view, {
      title: 'Sponsors',
      ...(message?.error ? { status: 400, error: message.error } : {}),
      ...(message?.notice ? { notice: message.notice } : {}),
      body: html`<h1>Sponsors</h1>
        <p>Sponsors pay for personal users’ use of priced images: each grant gives every eligible person an
        allowance a day, spent before their own credit.</p>
        ${
          grants.length
            ? html`<table><tr><th>Sponsor</th><th>Grant</th></tr>${grants.map(
                (g) => html`<tr><td>${g.title}</td><td>${grantInWords(g)}</td></tr>`,
              )}</table>`
            : html`<p class="muted">No grants are open now.</p>`
        }
        ${account ? yourSponsors(view, reports) : html`<p><a href="${signInPath('/sponsors')}">Sign in</a> to sponsor free use.</p>`}`,
    });
  };

  function yourSponsors(view: View, reports: Awaited<ReturnType<typeof sponsorReport>>[]): SafeHtml {
    return html`<h2>Your sponsors</h2>
      ${reports.map(
        (r) => html`<section>
          <h3>${r.sponsor.title} <code>${r.sponsor.name}</code></h3>
          <p>${grantInWords(r.sponsor)}. Fund: ${formatMoney(r.fund.available, r.sponsor.currency)} available of
          ${formatMoney(r.fund.deposited, r.sponsor.currency)} paid in. In the last 30 days the grant paid
          ${formatMicros(r.paid, r.sponsor.currency)} for ${r.calls} calls of ${r.people} people.</p>
          <form method="post" action="/sponsors/grant">${csrfField(view)}
            <input type="hidden" name="name" value="${r.sponsor.name}">
            <label>A day per person <input name="dailyAllowance" value="${formatMoney(r.sponsor.dailyAllowance, r.sponsor.currency).split(' ')[0]!}"></label>
            <label>Email domain (empty: everyone) <input name="eligibleDomain" value="${r.sponsor.eligibleDomain ?? ''}"></label>
            <label>Until (empty: no end) <input name="expiresAt" type="date" value="${r.sponsor.expiresAt?.toISOString().slice(0, 10) ?? ''}"></label>
            <button type="submit">Set the grant</button>
          </form>
          <form method="post" action="/sponsors/fund">${csrfField(view)}
            <input type="hidden" name="name" value="${r.sponsor.name}">
            <label>Amount <input name="amount" placeholder="100.00" required></label>
            <button type="submit">Fund with Stripe</button>
          </form>
        </section>`,
      )}
      <form method="post" action="/sponsors/new">${csrfField(view)}
        <label>Name <input name="name" placeholder="acme" required></label>
        <label>Shown as <input name="title" placeholder="Acme Corp" required></label>
        <button type="submit">Make a sponsor</button>
      </form>`;
  }

  app.get('/sponsors', (request, reply) => sendSponsors(request, reply));

  /** A form of a signed-in person, done or refused on the page itself. */
  const act = (
    path: string,
    done: (fields: Record<string, string>, request: FastifyRequest) => Promise<string | { redirect: string }>,
  ) =>
    app.post(path, async (request, reply) => {
      if (refuseForgedForm(request, reply)) return reply;
      if (!request.caller.account) return redirect(reply, signInPath('/sponsors'));
      if (!deps.client || !deps.training)
        return sendProblem(
          reply,
          viewOf(request, reply),
          503,
          'Sponsors are not available',
          'This platform process cannot reach the worker.',
        );
      try {
        const outcome = await done(formFields(request), request);
        if (typeof outcome === 'object') return redirect(reply, outcome.redirect);
        return sendSponsors(request, reply, { notice: outcome });
      } catch (error) {
        const refusal = toRefusal(error);
        if (!refusal) throw error;
        return sendSponsors(request, reply, { error: refusal.message });
      }
    });

  act('/sponsors/new', async (fields, request) => {
    const made = await createSponsor(
      { db: deps.db, client: deps.client!, taskQueue: deps.training!.taskQueue, currency: deps.currency },
      request.caller.account!,
      { name: fields.name ?? '', title: fields.title ?? '' },
    );
    return `${made.title} is made: fund it, then set its grant.`;
  });

  act('/sponsors/grant', async (fields, request) => {
    const set = await setSponsorGrant(deps.db, request.caller.account!, fields.name ?? '', {
      dailyAllowance: fields.dailyAllowance ?? null,
      eligibleDomain: fields.eligibleDomain ?? null,
      expiresAt: fields.expiresAt ?? null,
    });
    return `${set.title}: ${grantInWords(set)}.`;
  });

  act('/sponsors/fund', async (fields, request) => {
    if (!deps.stripe) return 'Payments are not configured on this platform (STRIPE_SECRET_KEY is not set).';
    const report = await sponsorReport(
      { db: deps.db, client: deps.client!, taskQueue: deps.training!.taskQueue },
      request.caller.account!,
      fields.name ?? '',
    );
    const session = await createSponsorCheckout(deps.stripe, request.caller.account!, {
      sponsor: report.sponsor.name,
      title: report.sponsor.title,
      amount: parseAmount(fields.amount ?? '', deps.currency),
      currency: deps.currency,
      requestId: randomUUID(),
    });
    return session.url ? { redirect: session.url } : 'Stripe gave no page to pay on: try again in a moment.';
  });
}
