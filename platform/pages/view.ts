// What every page needs: who is asking, the CSRF token for its forms, the layout around its body,
// and the answers a form POST gives (303 on success, the page again with the error on a refusal).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Caller, PUBLIC } from '../accounts';
import { CSRF_FIELD, csrfToken, hasValidCsrf } from '../csrf';
import { html, type Renderable, SafeHtml } from './html';
import { STYLESHEET_URL } from './stylesheet';

/** Where forms may send the browser: here, and Stripe's Checkout and onboarding pages (after a 303). */
const FORM_TARGETS = "'self' https://checkout.stripe.com https://connect.stripe.com";

/**
 * The pages' Content-Security-Policy: no script at all, except on a page that names its own (the
 * zookeeper's chat page), which may then run scripts served from here and nothing else.
 */
export function contentSecurityPolicy(https: boolean, options: { ownScripts?: boolean } = {}): string {
  return [
    "default-src 'self'",
    options.ownScripts ? "script-src 'self'" : "script-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    `form-action ${FORM_TARGETS}`,
    ...(https ? ['upgrade-insecure-requests'] : []),
  ].join('; ');
}

export interface View {
  caller: Caller;
  /** The CSRF token: repeat it in every form (`csrfField`). */
  csrf: string;
  /** The path asked for, for "sign in and come back" links. */
  path: string;
}

// One token per request: a caller without the cookie gets a new one, which must be the same in every form.
const tokens = new WeakMap<FastifyRequest, string>();

export function viewOf(request: FastifyRequest, reply: FastifyReply): View {
  let csrf = tokens.get(request);
  if (!csrf) tokens.set(request, (csrf = csrfToken(request, reply)));
  // The caller is unknown when a hook before the account's (the rate limit) refused the request.
  return { caller: request.caller ?? PUBLIC, csrf, path: request.url };
}

export const csrfField = (view: View) => html`<input type="hidden" name="${CSRF_FIELD}" value="${view.csrf}">`;

function header(view: View): SafeHtml {
  const account = view.caller.account;
  const nav = [
    ['/', 'Home'],
    ['/learn', 'Learn'],
    ['/hub', 'Hub'],
    ['/marketplace', 'Marketplace'],
    ['/zookeeper', 'Zookeeper'],
    ...(view.caller.role === 'operator' ? [['/operator', 'Operator']] : []),
  ];
  const here = view.path.split('?')[0]!;
  const links = nav.map(([href, label]) => {
    const current = href === '/' ? here === '/' : here === href || here.startsWith(`${href}/`);
    return html`<a href="${href}"${current ? html` aria-current="page"` : ''}>${label}</a>`;
  });
  const who = account
    ? html`<a href="/auth/account">${account.handle}</a> ·
        <form class="inline" method="post" action="/auth/signout">${csrfField(view)}<button class="link" type="submit">Sign out</button></form>`
    : html`<a href="/auth/signin?next=${encodeURIComponent(here)}">Sign in</a> / <a href="/auth/signup?next=${encodeURIComponent(here)}">Sign up</a>`;
  return html`<header><nav><a class="brand" href="/">computatrum</a>${links}</nav><div class="who">${who}</div></header>`;
}

export interface PageOptions {
  title: string;
  body: Renderable;
  status?: number;
  /** A refusal or a mistake, shown above the body. */
  error?: string;
  /** A confirmation, shown above the body. */
  notice?: string;
  /** A script of our own (under /assets/) that improves the page; the page must work without it. */
  script?: string;
}

export function sendPage(reply: FastifyReply, view: View, page: PageOptions): FastifyReply {
  const document = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${page.title} · computatrum</title>
<link rel="stylesheet" href="${STYLESHEET_URL}">
</head>
<body>
${header(view)}
<main>
${page.error ? html`<p class="error" role="alert">${page.error}</p>` : ''}
${page.notice ? html`<p class="notice" role="status">${page.notice}</p>` : ''}
${page.body}
</main>
<footer>computatrum: an independent germline of AI models, published daily · <a href="/learn">how to download and train</a></footer>
${page.script ? html`<script src="${page.script}" defer></script>` : ''}
</body>
</html>
`;
  // Only a page with a script of its own may run one: from here, never inline.
  if (page.script)
    reply.header(
      'content-security-policy',
      contentSecurityPolicy(reply.request.protocol === 'https', { ownScripts: true }),
    );
  return reply
    .code(page.status ?? 200)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(document.value);
}

/** A page that only says what went wrong and where to go next. */
export function sendProblem(
  reply: FastifyReply,
  view: View,
  status: number,
  title: string,
  message: string,
  next?: SafeHtml,
): FastifyReply {
  return sendPage(reply, view, {
    title,
    status,
    body: html`<h1>${title}</h1><p>${message}</p>${next ?? html`<p><a href="/">Back to the home page</a></p>`}`,
  });
}

/** Answers 403 and returns true when a form POST does not carry this browser's CSRF token. */
export function refuseForgedForm(request: FastifyRequest, reply: FastifyReply): boolean {
  if (hasValidCsrf(request)) return false;
  sendProblem(
    reply,
    viewOf(request, reply),
    403,
    'This form could not be accepted',
    'The form did not carry this browser’s security token (it may be from another site, or from a page opened before your cookies were cleared). Nothing was changed: go back, reload the page and send it again.',
  );
  return true;
}

/** Only same-site paths: one leading slash, never `//host` or `/\host`; printable ASCII only (a Location header). */
export function safeNext(next: unknown, fallback = '/hub'): string {
  if (typeof next !== 'string' || !next.startsWith('/') || next.length > 2000) return fallback;
  for (const char of next) {
    const code = char.charCodeAt(0);
    if (code < 0x21 || code > 0x7e || char === '\\') return fallback;
  }
  return next.startsWith('//') ? fallback : next;
}

export const signInPath = (next: string) => `/auth/signin?next=${encodeURIComponent(next)}`;

/** The fields of a urlencoded form as strings (a repeated field keeps its first value). */
export function formFields(request: FastifyRequest): Record<string, string> {
  const body = (request.body ?? {}) as Record<string, unknown>;
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') fields[key] = first;
  }
  return fields;
}

export function redirect(reply: FastifyReply, location: string): FastifyReply {
  return reply.code(303).header('location', location).header('cache-control', 'no-store').send();
}
