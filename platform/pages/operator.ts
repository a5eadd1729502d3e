// /operator: the operators' console: the germline's books and children (asked of the germline
// workflow), recent training runs, decisions awaiting approval (approve / reject, the same updates as
// the GraphQL API), recent reports of images, and links into the Temporal Web UI. (It was /zookeeper,
// which is now the people's client of hosted instances: zookeeper.ts.)
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Stripe from 'stripe';
import { newestChildren } from '../../db/germline-archive';
import { germlineHandle } from '../../temporal/germline-client';
import { approveUpdate, rejectUpdate } from '../../workflows/autonomy-api';
import { childrenQuery, type ChildRecord } from '../../workflows/child-api';
import type { Proposal } from '../../workflows/guardrails';
import { formatMoney, parseAmount } from '../../workflows/money';
import { listReports } from '../hub';
import { listFlags, listRecentProbes, reviewFlag, startProbeByHand } from '../probes';
import { operatorProbes } from './probes';
import { lossCurves } from '../../db/training-loss';
import { germlineMoney } from '../operator-charts';
import { lossCurveChart, moneyCharts } from './charts';
import { createFundingCheckout } from '../stripe';
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
import type { BudgetStatus } from '../../workflows/budget-api';
import { statusQuery } from '../../workflows/budget-api';
import { germlineWorkflowId, childRepository, childWorkflowPrefix, trainingWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';
import { toRefusal } from '../errors';

const DONE: Record<string, string> = {
  approved: 'Approved: the germline judged the proposal again and carried it out (see its outcome below).',
  rejected: 'Rejected: the proposal was recorded as rejected.',
  cleared: 'Cleared: the image is no longer blocked.',
  confirmed: 'Confirmed: the image stays blocked from public instances and purchases.',
  probing: 'The probe is started: its verdict appears under Recent probes within minutes.',
};

function describe(proposal: Proposal, currency: string): string {
  switch (proposal.kind) {
    case 'spawn':
      return `spawn ${proposal.child} (${proposal.purpose}) with an allowance of ${formatMoney(proposal.allowance, currency)}`;
    case 'fund':
      return `fund ${proposal.child} with ${formatMoney(proposal.amount, currency)}`;
    case 'train':
      return `train ${proposal.child} for at most ${formatMoney(proposal.maxCost, currency)}`;
    case 'retire':
      return `retire ${proposal.child}: ${proposal.reason}`;
    default:
      return JSON.stringify(proposal); // a kind this page does not know yet
  }
}

const when = (date: Date | null | undefined) => (date ? date.toISOString().slice(0, 16).replace('T', ' ') : '');

export function registerOperatorPages(app: FastifyInstance, deps: PagesDeps): void {
  const namespace = deps.client?.options.namespace ?? 'default';
  /** A link to a workflow in the Temporal Web UI, or just its id when the UI's address is unknown. */
  const workflowLink = (workflowId: string, label: string = workflowId): SafeHtml =>
    deps.temporalUiUrl
      ? html`<a href="${`${deps.temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`}">${label}</a>`
      : html`<code>${label}</code>`;

  /** Operators only: the public is asked to sign in, a trainer is refused. Returns true when it answered. */
  const refuseNonOperator = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (request.caller.role === 'operator') return false;
    if (!request.caller.account) redirect(reply, signInPath('/operator'));
    else
      sendProblem(
        reply,
        viewOf(request, reply),
        403,
        'Operators only',
        `The operator console is for the germline’s operators; ${request.caller.account.handle} is a ${request.caller.role}.`,
      );
    return true;
  };

  async function germlineState(): Promise<{ status: BudgetStatus; children: ChildRecord[] } | { unavailable: string }> {
    if (!deps.client)
      return {
        unavailable:
          'This platform process is not connected to Temporal, so the germline’s books, children and decisions cannot be shown here.',
      };
    try {
      const handle = germlineHandle(deps.client, deps.germline);
      const [status, live] = await Promise.all([handle.query(statusQuery), handle.query(childrenQuery)]);
      // Ended children are archived in PostgreSQL: the live ones and the newest ended ones.
      const { children } = await newestChildren(deps.db, deps.germline, live, 50);
      return { status, children };
    } catch (error) {
      return { unavailable: `The germline could not be asked: ${(error as Error).message}` };
    }
  }

  function books(status: BudgetStatus, view: View): SafeHtml {
    const money = (minor: string) => formatMoney(minor, status.currency);
    const rows: Array<[string, string]> = [
      ['State', `${status.state}${status.paused ? ' (paused: no new reservations)' : ''}`],
      ['Deposited', money(status.deposited)],
      ['Spent', money(status.spent)],
      ['Balance', money(status.balance)],
      ['Reserved', money(status.reserved)],
      ['Available', money(status.available)],
      [`Committed today (${status.committedToday.day})`, money(status.committedToday.amount)],
      ['Daily cap', status.policy.dailySpendCap === null ? 'none' : money(status.policy.dailySpendCap)],
      [
        'Per-reservation cap',
        status.policy.perReservationCap === null ? 'none' : money(status.policy.perReservationCap),
      ],
      ['Open reservations', String(status.openReservations.length)],
    ];
    return html`<h2>Books</h2>
      <table id="books">${rows.map(([label, value]) => html`<tr><th>${label}</th><td class="num">${value}</td></tr>`)}</table>
      ${
        deps.stripe
          ? html`<form class="card" method="post" action="/operator/fund">${csrfField(view)}
            <label for="fund-amount">Fund the germline through Stripe Checkout (${status.currency.toUpperCase()})</label>
            <input type="text" id="fund-amount" name="amount" required placeholder="100.00" inputmode="decimal">
            <button type="submit">Fund</button></form>`
          : ''
      }`;
  }

  function children(list: ChildRecord[], currency: string): SafeHtml {
    if (list.length === 0) return html`<h2>Children</h2><p class="muted">No children yet.</p>`;
    return html`<h2>Children</h2>
      <table><tr><th>Child</th><th>Purpose</th><th>State</th><th class="num">Allowance</th><th class="num">Spent</th><th>Branch</th></tr>
      ${list.map(
        (
          c,
        ) => html`<tr><td>${workflowLink(c.workflowId, c.name)}</td><td>${c.purpose}</td><td>${c.state}${c.reason ? html` <span class="muted">(${c.reason})</span>` : ''}</td>
          <td class="num">${formatMoney(c.allowance, currency)}</td><td class="num">${c.spent ? formatMoney(c.spent, currency) : ''}</td>
          <td><a href="${pathOf('hub', childRepository(c.name))}">${childRepository(c.name)}</a></td></tr>`,
      )}</table>`;
  }

  const sendConsole = async (
    request: FastifyRequest,
    reply: FastifyReply,
    problem?: { status: number; message: string },
  ) => {
    const view = viewOf(request, reply);
    const germline = deps.germline;
    const [flags, probes] = await Promise.all([listFlags(deps.db, { state: 'pending' }), listRecentProbes(deps.db)]);
    const [state, awaiting, runs, reports] = await Promise.all([
      germlineState(),
      deps.db.decision.findMany({
        where: { germline, outcome: 'awaiting-approval' },
        orderBy: { createdAt: 'desc' },
        take: 50,
      }),
      deps.db.trainingRun.findMany({
        where: {
          OR: [{ payer: germlineWorkflowId(germline) }, { payer: { startsWith: childWorkflowPrefix(germline) } }],
        },
        orderBy: { createdAt: 'desc' },
        take: 20,
      }),
      listReports(deps.db, { limit: 20 }),
    ]);
    const currency = 'status' in state ? state.status.currency : deps.currency;
    const [money, curves] = await Promise.all([
      germlineMoney(deps.db, germline),
      lossCurves(
        deps.db,
        runs.map((r) => r.id),
      ),
    ]);
    const query = request.query as { done?: string; funded?: string };
    const notice = query.funded
      ? 'Thank you: the funding is deposited once Stripe confirms the payment (its webhook), usually within seconds.'
      : query.done
        ? DONE[query.done]
        : undefined;
    return sendPage(reply, view, {
      title: 'Operator',
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      ...(notice ? { notice } : {}),
      body: html`<h1>Operator console</h1>
        <p>The germline ${workflowLink(germlineWorkflowId(germline))}${deps.temporalUiUrl ? html` · <a href="${`${deps.temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(`GermlineId="${germline}"`)}`}">all its workflows in the Temporal UI</a>` : ''}</p>
        ${'status' in state ? [books(state.status, view), children(state.children, currency)] : html`<p class="notice" id="temporal-unavailable">${state.unavailable}</p>`}

        ${moneyCharts({ ...money, currency })}

        <h2>Decisions awaiting approval</h2>
        ${
          awaiting.length
            ? awaiting.map(
                (d) => html`<div class="thread" id="decision-${d.id}">
                <p><strong>${d.proposal ? describe(d.proposal as unknown as Proposal, currency) : 'no proposal'}</strong> <span class="muted">${d.id} · ${d.policy} · ${when(d.createdAt)}</span></p>
                ${d.why ? html`<p>Why: ${d.why}</p>` : ''}<p class="muted">${d.reason}</p>
                <form method="post" action="/operator/decisions">${csrfField(view)}<input type="hidden" name="id" value="${d.id}">
                  <label for="reason-${d.id}">Reason (optional for approval)</label><input type="text" id="reason-${d.id}" name="reason" maxlength="500">
                  <button type="submit" name="action" value="approve">Approve</button> <button type="submit" name="action" value="reject" class="secondary">Reject</button>
                </form></div>`,
              )
            : html`<p class="muted">Nothing awaits approval.</p>`
        }

        ${operatorProbes(flags, probes, view)}

        <h2>Recent training runs</h2>
        ${
          runs.length
            ? html`<table><tr><th>Run</th><th>State</th><th>Paid by</th><th>Output</th><th class="num">GPU-s</th><th class="num">Cost</th><th class="num">Loss</th><th>Started</th></tr>
              ${runs.map(
                (
                  r,
                ) => html`<tr><td>${workflowLink(trainingWorkflowId(r.id), r.id)}</td><td>${r.state}${r.error ? html` <span class="muted">${r.error}</span>` : ''}</td><td>${r.payer}</td>
                  <td><a href="${pathOf('hub', r.outputRepository)}">${r.outputRepository}:${r.outputBranch}</a></td><td class="num">${r.gpuSeconds}</td>
                  <td class="num">${r.cost === null ? html`<span class="muted">≤ ${formatMoney(r.maxCost, r.currency)}</span>` : formatMoney(r.cost, r.currency)}</td>
                  <td class="num">${r.loss === null ? '' : r.loss.toFixed(3)}</td><td>${when(r.createdAt)}</td></tr>`,
              )}</table>`
            : html`<p class="muted">No training runs yet.</p>`
        }
        ${curves.size ? html`<h3 id="loss-curves">Loss curves</h3>${runs.filter((r) => curves.has(r.id)).map((r) => lossCurveChart(r.id, curves.get(r.id)!))}` : ''}

        <h2>Recent reports</h2>
        ${
          reports.length
            ? html`<table><tr><th>Image</th><th>Reason</th><th>By</th><th>When</th></tr>
              ${reports.map((r) => html`<tr><td><a href="${pathOf('hub', r.repository)}">${r.repository}${r.reference ? `:${r.reference}` : ''}</a></td><td>${r.reason}</td><td>${r.reporter}</td><td>${when(r.createdAt)}</td></tr>`)}</table>`
            : html`<p class="muted">No image has been reported.</p>`
        }`,
    });
  };

  app.get('/operator', async (request, reply) => {
    if (refuseNonOperator(request, reply)) return reply;
    return sendConsole(request, reply);
  });

  app.post('/operator/decisions', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (refuseNonOperator(request, reply)) return reply;
    const { id = '', action, reason } = formFields(request);
    if (action !== 'approve' && action !== 'reject')
      return sendConsole(request, reply, { status: 400, message: 'choose Approve or Reject' });
    if (!deps.client)
      return sendConsole(request, reply, {
        status: 503,
        message: 'the germline is not reachable from this platform process',
      });
    try {
      await updateBudget(
        germlineHandle(deps.client, deps.germline),
        action === 'approve' ? approveUpdate : rejectUpdate,
        {
          decisionId: id,
          by: request.caller.account!.handle,
          ...(reason?.trim() ? { reason: reason.trim() } : {}),
        },
      );
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendConsole(request, reply, refusal);
    }
    return redirect(reply, `/operator?done=${action === 'approve' ? 'approved' : 'rejected'}`);
  });

  // An operator's decision on a flagged image (the same rule as GraphQL reviewImageFlag).
  app.post('/operator/flags', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (refuseNonOperator(request, reply)) return reply;
    const { repository = '', digest = '', decision, note } = formFields(request);
    if (decision !== 'clear' && decision !== 'confirm')
      return sendConsole(request, reply, { status: 400, message: 'choose Clear or Confirm malicious' });
    try {
      await reviewFlag(deps.db, request.caller.account!, { repository, digest, decision, note: note ?? null });
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendConsole(request, reply, refusal);
    }
    return redirect(reply, `/operator?done=${decision === 'clear' ? 'cleared' : 'confirmed'}#flags`);
  });

  // A probe of an image now (the same rule as GraphQL startProbe).
  app.post('/operator/probes', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (refuseNonOperator(request, reply)) return reply;
    if (!deps.client || !deps.training)
      return sendConsole(request, reply, {
        status: 503,
        message: 'the worker is not reachable from this platform process',
      });
    try {
      await startProbeByHand(
        {
          client: deps.client,
          db: deps.db,
          store: deps.store,
          germline: deps.germline,
          taskQueue: deps.training.taskQueue,
        },
        request.caller.account!,
        { image: formFields(request).image ?? '' },
      );
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendConsole(request, reply, refusal);
    }
    return redirect(reply, '/operator?done=probing#probes');
  });

  app.post('/operator/fund', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (refuseNonOperator(request, reply)) return reply;
    if (!deps.stripe)
      return sendConsole(request, reply, {
        status: 503,
        message: 'payments are not configured on this platform (STRIPE_SECRET_KEY)',
      });
    try {
      const amount = parseAmount(formFields(request).amount ?? '', deps.currency);
      const session = await createFundingCheckout(deps.stripe, {
        germline: deps.germline,
        amount,
        currency: deps.currency,
        requestId: randomUUID(),
      });
      if (!session.url)
        return sendConsole(request, reply, {
          status: 502,
          message: 'Stripe answered without a Checkout page; try again',
        });
      return redirect(reply, session.url);
    } catch (error) {
      if (error instanceof Stripe.errors.StripeError)
        return sendConsole(request, reply, {
          status: 502,
          message: `Stripe did not accept the request (${error.message}); nothing was charged`,
        });
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendConsole(request, reply, refusal);
    }
  });
}
