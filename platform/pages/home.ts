// / and /learn: what computatrum is, today's checkpoint, and how to download, fork, train and sell.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type PagesDeps, latestDaily } from './deps';
import { html, pathOf } from './html';
import { sendPage, viewOf } from './view';
import { germlineRepository } from '../../workflows/names';

/** host:port as the caller reached us, for commands people paste (escaped where shown). */
export const hostOf = (request: FastifyRequest) => request.host || '127.0.0.1:8080';

export function registerHomePages(app: FastifyInstance, deps: PagesDeps): void {
  app.get('/', async (request, reply) => {
    const view = viewOf(request, reply);
    const daily = await latestDaily(deps);
    const repository = germlineRepository(deps.germline);
    const today = new Date().toISOString().slice(0, 10);
    const latest = daily
      ? html`<section class="today">
          <h2>${daily.day === today ? 'Today’s checkpoint' : `The latest daily checkpoint (${daily.day})`}</h2>
          <p><a href="${pathOf('hub', repository)}#tag-${daily.tag}"><strong>${repository}:${daily.tag}</strong></a>
            ${daily.nickname ? html` — “${daily.nickname}”` : ''}</p>
          <pre>computatrum pull ${repository}:${daily.tag} ./${daily.tag}</pre>
        </section>`
      : html`<section class="today"><p>No daily checkpoint is published yet: the first <code>gpc-YYYY-MM-DD</code> tag is made at the next 00:00 UTC once the germline has a head checkpoint.</p></section>`;
    return sendPage(reply, view, {
      title: 'Home',
      body: html`<h1>computatrum</h1>
        <p>computatrum is a family of AI models, <em>computatra</em>, grown by an independent germline: a
        company that manages its own money, spawns and funds child computatra, trains them on GPUs, and
        publishes a general-purpose checkpoint every day, tagged <code>gpc-YYYY-MM-DD</code> with a
        human-style nickname.</p>
        <p>Anyone may download every free image without an account. Trainers fork a checkpoint, train a
        <em>breed</em> for one task (animation, programming, web automation…), and share it free or sell it;
        part of every sale funds the germline. People who used an image post comments, recordings and
        reports on its hub page, so a malicious image is hard to pass around unnoticed.</p>
        ${latest}
        <ul>
          <li><a href="/learn">Learn</a>: download, fork and train; how the germline’s money and daily tags work.</li>
          <li><a href="/hub">Hub</a>: every image, its tags, files, lineage and discussion.</li>
          <li><a href="/marketplace">Marketplace</a>: breeds from trainers, free or paid.</li>
        </ul>`,
    });
  });

  app.get('/learn', async (request, reply) => {
    const view = viewOf(request, reply);
    const daily = await latestDaily(deps);
    const repository = germlineRepository(deps.germline);
    const tag = daily?.tag ?? 'gpc-YYYY-MM-DD';
    const host = hostOf(request);
    const insecure = request.protocol === 'http';
    const me = view.caller.account?.handle ?? '<you>';
    return sendPage(reply, view, {
      title: 'Learn',
      body: html`<h1>Learn</h1>
        <h2 id="download">Download a checkpoint</h2>
        <p>Checkpoints are OCI artifacts (CNCF ModelPack: one layer per file, sha256 digests, lineage in
        annotations), so the computatrum CLI and any OCI client download them from this platform’s <code>/v2/</code>.</p>
        <pre>computatrum pull ${repository}:${tag} ./out     # parallel, resumable, every file verified</pre>
        <pre>skopeo copy ${insecure ? '--src-tls-verify=false ' : ''}docker://${host}/${repository}:${tag} oci:./copy:${tag}
oras pull ${insecure ? '--plain-http ' : ''}${host}/${repository}:${tag}</pre>
        <p>Single files have links of their own, <code>/hub/&lt;repository&gt;/resolve/&lt;tag&gt;/&lt;file&gt;</code>, on each
        image’s <a href="/hub">hub</a> page; <code>/api/checkpoints/&lt;repository&gt;</code> lists the tags as JSON.
        A paid breed downloads once you bought it: the CLI sends your API token (<a href="/auth/account">create one</a>) from <code>COMPUTATRUM_TOKEN</code>.</p>

        <h2 id="train">Fork and train</h2>
        <p>A fork is a new branch that points at an existing checkpoint: no bytes are copied. Sign in and use
        the Fork form on an image’s hub page, or the CLI where computatrum runs:</p>
        <pre>computatrum fork ${repository}:${tag} trainers/${me}/coder:main</pre>
        <p>Any program can be a trainer: it reads the base checkpoint from <code>COMPUTATRUM_BASE_DIR</code>,
        saves <code>checkpoint-&lt;step&gt;/</code> folders with a <code>metrics.json</code> into
        <code>COMPUTATRUM_OUTPUT_DIR</code>, and resumes from the newest one. A training run reserves its
        maximum cost before it starts, publishes its output with the base as its parent, and is charged per
        GPU-second:</p>
        <pre>computatrum train --base ${repository}:${tag} --branch fine --max-cost 12.50 -- python train.py</pre>
        <p>To sell what you trained, open your repository’s hub page and “Publish as a breed” with a title and
        an optional price, then set up payouts on the <a href="/marketplace">marketplace</a>. Buyers pay through
        Stripe Checkout; the platform keeps a share (10% unless configured otherwise), which is deposited in the germline.</p>

        <h2 id="money">The germline’s money</h2>
        <p>The germline <code>${deps.germline}</code> is a Temporal workflow that holds its budget; every change
        is booked, double-entry, in PostgreSQL. Money is counted in whole cents, never floats. Deposits come from
        operators, Stripe fundings and the marketplace’s fees. Training runs and children’s allowances are
        <em>reservations</em>: refused when funds, the daily cap or the per-reservation cap do not allow them, settled
        at the real cost, the rest released. On every tick (hourly) the germline observes its books, burn and
        revenue, proposes to spawn, fund, train or retire children, judges each proposal against its guardrails,
        and acts; a move above the approval threshold waits for an operator.</p>

        <h2 id="daily">Daily tags</h2>
        <p>At 00:00 UTC a Temporal Schedule tags the germline’s head (<code>main</code>) as
        <code>gpc-YYYY-MM-DD</code> with a nickname derived from the day and the digest. A day is tagged once,
        and a <code>gpc-*</code> tag never moves; branches do. A day without a head is recorded as skipped, with the
        reason. A child’s or trainer’s checkpoint becomes the germline’s head only through <code>promote</code>,
        when its training metrics pass the germline’s eval gate.</p>`,
    });
  });
}
