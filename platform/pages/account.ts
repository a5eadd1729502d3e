// /auth/signup, /auth/signin (the forms; auth.ts takes their POSTs) and /auth/account (who you are,
// your API tokens, a new one shown once).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { createApiToken, MAX_PASSWORD, MIN_PASSWORD } from '../accounts';
import type { PagesDeps } from './deps';
import { html } from './html';
import {
  csrfField,
  formFields,
  redirect,
  refuseForgedForm,
  safeNext,
  sendPage,
  signInPath,
  type View,
  viewOf,
} from './view';
import { toRefusal } from '../errors';

export interface AccountFormValues {
  handle?: string;
  email?: string;
  login?: string;
  next?: string;
}

export function sendSignUp(
  reply: FastifyReply,
  view: View,
  values: AccountFormValues = {},
  problem?: { status: number; message: string },
): FastifyReply {
  const next = safeNext(values.next);
  return sendPage(reply, view, {
    title: 'Sign up',
    ...(problem ? { status: problem.status, error: problem.message } : {}),
    body: html`<h1>Sign up</h1>
      ${view.caller.account ? html`<p class="muted">You are signed in as ${view.caller.account.handle}.</p>` : ''}
      <form class="card" method="post" action="/auth/signup">
        ${csrfField(view)}<input type="hidden" name="next" value="${next}">
        <label for="handle">Handle</label>
        <input type="text" id="handle" name="handle" value="${values.handle ?? ''}" required minlength="2" maxlength="39" pattern="[a-z0-9][a-z0-9\\-]+" autocomplete="username">
        <p class="muted">Lowercase letters, digits and dashes; you publish under <code>trainers/&lt;handle&gt;/</code>.</p>
        <label for="email">Email</label>
        <input type="email" id="email" name="email" value="${values.email ?? ''}" required autocomplete="email">
        <label for="password">Password</label>
        <input type="password" id="password" name="password" required minlength="${MIN_PASSWORD}" autocomplete="new-password">
        <p class="muted">${MIN_PASSWORD} to ${MAX_PASSWORD} characters.</p>
        <button type="submit">Sign up</button>
      </form>
      <p>Have an account? <a href="/auth/signin?next=${encodeURIComponent(next)}">Sign in</a>.</p>`,
  });
}

export function sendSignIn(
  reply: FastifyReply,
  view: View,
  values: AccountFormValues = {},
  problem?: { status: number; message: string },
): FastifyReply {
  const next = safeNext(values.next);
  return sendPage(reply, view, {
    title: 'Sign in',
    ...(problem ? { status: problem.status, error: problem.message } : {}),
    body: html`<h1>Sign in</h1>
      ${view.caller.account ? html`<p class="muted">You are signed in as ${view.caller.account.handle}.</p>` : ''}
      <form class="card" method="post" action="/auth/signin">
        ${csrfField(view)}<input type="hidden" name="next" value="${next}">
        <label for="login">Handle or email</label>
        <input type="text" id="login" name="login" value="${values.login ?? ''}" required autocomplete="username">
        <label for="password">Password</label>
        <input type="password" id="password" name="password" required autocomplete="current-password">
        <button type="submit">Sign in</button>
      </form>
      <p>New here? <a href="/auth/signup?next=${encodeURIComponent(next)}">Sign up</a>.</p>`,
  });
}

export function registerAccountPages(app: FastifyInstance, deps: PagesDeps): void {
  app.get<{ Querystring: { next?: string } }>('/auth/signup', async (request, reply) =>
    sendSignUp(reply, viewOf(request, reply), { next: request.query.next ?? '/hub' }),
  );
  app.get<{ Querystring: { next?: string } }>('/auth/signin', async (request, reply) =>
    sendSignIn(reply, viewOf(request, reply), { next: request.query.next ?? '/hub' }),
  );

  const sendAccount = async (
    reply: FastifyReply,
    view: View,
    created?: { name: string; token: string },
    problem?: { status: number; message: string },
  ) => {
    const account = view.caller.account!;
    const tokens = await deps.db.apiToken.findMany({
      where: { accountId: account.id },
      orderBy: { createdAt: 'desc' },
      take: 50,
    });
    return sendPage(reply, view, {
      title: 'Your account',
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      ...(created
        ? { status: 201, notice: `API token “${created.name}” created. It is shown this once: copy it now.` }
        : {}),
      body: html`<h1>${account.handle}</h1>
        <table>
          <tr><th>Handle</th><td>${account.handle}</td></tr>
          <tr><th>Email</th><td>${account.email}</td></tr>
          <tr><th>Role</th><td>${account.role}</td></tr>
          <tr><th>Publishes under</th><td><code>trainers/${account.handle}/</code></td></tr>
        </table>
        ${created ? html`<h2>Your new API token</h2><pre id="new-token">${created.token}</pre><pre>export COMPUTATRUM_TOKEN=${created.token}</pre>` : ''}
        <h2>API tokens</h2>
        <p>For the CLI (<code>COMPUTATRUM_TOKEN</code>) and the GraphQL API (<code>Authorization: Bearer ctr_…</code>). Only a hash is kept.</p>
        ${
          tokens.length
            ? html`<table><tr><th>Name</th><th>Created</th><th>Last used</th></tr>
              ${tokens.map((t) => html`<tr><td>${t.name}</td><td>${t.createdAt.toISOString().slice(0, 16).replace('T', ' ')}</td><td>${t.lastUsedAt ? t.lastUsedAt.toISOString().slice(0, 16).replace('T', ' ') : 'never'}</td></tr>`)}
            </table>`
            : html`<p class="muted">None yet.</p>`
        }
        <form class="card" method="post" action="/auth/account/tokens">
          ${csrfField(view)}
          <label for="token-name">Name</label>
          <input type="text" id="token-name" name="name" required maxlength="100" placeholder="laptop cli">
          <button type="submit">Create an API token</button>
        </form>`,
    });
  };

  app.get('/auth/account', async (request, reply) => {
    if (!request.caller.account) return redirect(reply, signInPath('/auth/account'));
    return sendAccount(reply, viewOf(request, reply));
  });

  app.post('/auth/account/tokens', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    const account = request.caller.account;
    if (!account) return redirect(reply, signInPath('/auth/account'));
    const view = viewOf(request, reply);
    try {
      const created = await createApiToken(deps.db, account.id, formFields(request).name ?? '');
      return await sendAccount(reply, view, created);
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendAccount(reply, view, undefined, refusal);
    }
  });
}
