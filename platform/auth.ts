// /auth/*: sign up, sign in, sign out, personal API tokens; and the hook that says who is asking on
// every request: a bearer API token (the CLI), a session cookie (the browser), or the public.
// Cookie-authenticated changes must come as JSON: a cross-site form cannot send that without a
// CORS preflight, which this server never grants, so a session cannot be ridden from another site.
// The one exception is our own pages' forms (sign up, sign in, sign out), which carry the CSRF token
// (csrf.ts) that another site cannot know: they are answered with a redirect or the form again.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../db/prisma';
import { cookieName, readCookie, secureAttribute } from './cookies';
import { CSRF_FIELD } from './csrf';
import {
  type Caller,
  createApiToken,
  createSession,
  endSession,
  PUBLIC,
  SESSION_DAYS,
  sessionCaller,
  signIn,
  signUp,
  tokenCaller,
  TOKEN_PREFIX,
} from './accounts';
import { sendSignIn, sendSignUp } from './pages/account';
import { formFields, redirect, refuseForgedForm, safeNext, viewOf } from './pages/view';
import { AccountError, toRefusal } from './errors';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
    /** True when the caller was recognised by its session cookie (the browser), not a token. */
    viaCookie: boolean;
  }
}

export const SESSION_COOKIE = 'computatrum_session';
/** Sign-ins and sign-ups per address per minute: password guessing is slow by design. */
export const ACCOUNT_RATE_LIMIT = 20;

/** The session cookie for this request (`__Host-` and Secure over HTTPS: see cookies.ts). */
function sessionCookie(request: FastifyRequest, value: string, maxAgeSeconds: number): string {
  return `${cookieName(request, SESSION_COOKIE)}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secureAttribute(request)}`;
}

const contentType = (request: FastifyRequest) =>
  (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

function isJson(request: FastifyRequest): boolean {
  return contentType(request) === 'application/json';
}

/** A form from one of our pages: urlencoded and carrying a CSRF token field (checked before anything is done). */
function isPageForm(request: FastifyRequest): boolean {
  return (
    contentType(request) === 'application/x-www-form-urlencoded' &&
    typeof (request.body as Record<string, unknown> | undefined)?.[CSRF_FIELD] === 'string'
  );
}

export async function registerAuth(app: FastifyInstance, db: Database): Promise<void> {
  app.decorateRequest('caller', null as unknown as Caller);
  app.decorateRequest('viaCookie', false);

  app.addHook('onRequest', async (request, reply) => {
    request.caller = PUBLIC;
    const authorization = request.headers.authorization;
    if (authorization) {
      const [scheme, token] = authorization.split(' ');
      const caller = scheme === 'Bearer' && token ? await tokenCaller(db, token) : undefined;
      // OpenAI clients must send some key: on the gateway (/v1), one that is not shaped like ours is the public.
      const gateway = request.url === '/v1' || request.url.startsWith('/v1/');
      if (!caller && gateway && !(scheme === 'Bearer' && token?.startsWith(TOKEN_PREFIX))) return;
      // A wrong token is an error, not an anonymous request: the CLI should say so, not act as the public.
      if (!caller) {
        const message =
          'the API token is unknown or revoked: create one (POST /auth/tokens, or the createApiToken mutation) and set COMPUTATRUM_TOKEN';
        return reply
          .code(401)
          .send(
            gateway
              ? { error: { message, type: 'authentication_error', param: null, code: 'invalid_api_key' } }
              : { error: message, code: 'UNAUTHENTICATED' },
          );
      }
      request.caller = caller;
      return;
    }
    const session = readCookie(request, cookieName(request, SESSION_COOKIE));
    if (session) {
      const caller = await sessionCaller(db, session);
      if (caller) {
        request.caller = caller;
        request.viaCookie = true;
      }
    }
  });

  const setSession = async (request: FastifyRequest, reply: FastifyReply, accountId: string) => {
    const { secret } = await createSession(db, accountId);
    reply.header('set-cookie', sessionCookie(request, secret, SESSION_DAYS * 86_400));
  };
  const failed = (reply: FastifyReply, error: unknown) => {
    const refusal = toRefusal(error);
    if (refusal)
      return reply.code(refusal.status).send({ error: refusal.message, code: refusal.reason ?? refusal.code });
    throw error;
  };
  const jsonOnly = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isJson(request))
      return reply
        .code(415)
        .send({ error: 'send JSON (content-type: application/json)', code: 'UNSUPPORTED_MEDIA_TYPE' });
  };
  /** JSON, or a form from our pages with this browser's CSRF token (a wrong token is a 403 page; any other form, a 415). */
  const jsonOrPageForm = async (request: FastifyRequest, reply: FastifyReply) => {
    if (isPageForm(request)) {
      if (refuseForgedForm(request, reply)) return reply;
      return;
    }
    return jsonOnly(request, reply);
  };
  const accountLimit = { rateLimit: { max: ACCOUNT_RATE_LIMIT, timeWindow: 60_000 } };

  app.post<{ Body: { handle: string; email: string; password: string } }>(
    '/auth/signup',
    { preHandler: jsonOrPageForm, config: accountLimit },
    async (request, reply) => {
      const form = isPageForm(request) ? formFields(request) : undefined;
      try {
        const account = await signUp(
          db,
          form
            ? { handle: form.handle ?? '', email: form.email ?? '', password: form.password ?? '' }
            : (request.body ?? {}),
        );
        await setSession(request, reply, account.id);
        if (form) return redirect(reply, safeNext(form.next));
        return reply.code(201).send({ account });
      } catch (error) {
        if (form && error instanceof AccountError) {
          return sendSignUp(
            reply,
            viewOf(request, reply),
            { handle: form.handle ?? '', email: form.email ?? '', next: form.next ?? '' },
            toRefusal(error)!,
          );
        }
        return failed(reply, error);
      }
    },
  );

  app.post<{ Body: { login: string; password: string } }>(
    '/auth/signin',
    { preHandler: jsonOrPageForm, config: accountLimit },
    async (request, reply) => {
      const form = isPageForm(request) ? formFields(request) : undefined;
      try {
        const account = await signIn(
          db,
          form ? { login: form.login ?? '', password: form.password ?? '' } : (request.body ?? {}),
        );
        await setSession(request, reply, account.id);
        if (form) return redirect(reply, safeNext(form.next));
        return reply.send({ account });
      } catch (error) {
        if (form && error instanceof AccountError) {
          return sendSignIn(
            reply,
            viewOf(request, reply),
            { login: form.login ?? '', next: form.next ?? '' },
            toRefusal(error)!,
          );
        }
        return failed(reply, error);
      }
    },
  );

  // The pages' Sign out button is a form (with the CSRF token) and goes home; the API's signout answers 204.
  app.post('/auth/signout', async (request, reply) => {
    const form = contentType(request) === 'application/x-www-form-urlencoded';
    if (form && refuseForgedForm(request, reply)) return reply;
    const session = readCookie(request, cookieName(request, SESSION_COOKIE));
    if (session) await endSession(db, session);
    reply.header('set-cookie', sessionCookie(request, '', 0));
    return form ? redirect(reply, '/') : reply.code(204).send();
  });

  app.get('/auth/me', async (request) => ({ role: request.caller.role, account: request.caller.account ?? null }));

  app.post<{ Body: { name: string } }>('/auth/tokens', { preHandler: jsonOnly }, async (request, reply) => {
    const account = request.caller.account;
    if (!account) return reply.code(401).send({ error: 'sign in to create an API token', code: 'UNAUTHENTICATED' });
    try {
      const created = await createApiToken(db, account.id, request.body?.name);
      return reply
        .code(201)
        .send({ ...created, note: 'shown once: store it now; the computatrum CLI reads it from COMPUTATRUM_TOKEN' });
    } catch (error) {
      return failed(reply, error);
    }
  });
}
