// /auth/*: sign up, sign in, sign out, personal API tokens; and the hook that says who is asking on
// every request: a bearer API token (the CLI), a session cookie (the browser), or the public.
// Cookie-authenticated changes must come as JSON: a cross-site form cannot send that without a
// CORS preflight, which this server never grants, so a session cannot be ridden from another site.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../activities/db/prisma';
import { AccountError, type Caller, createApiToken, createSession, endSession, PUBLIC, SESSION_DAYS, sessionCaller, signIn, signUp, tokenCaller } from './accounts';

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

/** The value of one cookie from the Cookie header (our values are base64url: nothing to decode). */
function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const pair of (request.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim();
  }
  return undefined;
}

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAgeSeconds}`, ...(secure ? ['Secure'] : [])].join('; ');
}

const STATUS: Record<AccountError['code'], number> = { INVALID_INPUT: 400, HANDLE_TAKEN: 409, EMAIL_TAKEN: 409, BAD_CREDENTIALS: 401 };

function isJson(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim() === 'application/json';
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
      // A wrong token is an error, not an anonymous request: the CLI should say so, not act as the public.
      if (!caller) return reply.code(401).send({ error: 'the API token is unknown or revoked: create one (POST /auth/tokens, or the createApiToken mutation) and set COMPUTATRUM_TOKEN', code: 'UNAUTHENTICATED' });
      request.caller = caller;
      return;
    }
    const session = readCookie(request, SESSION_COOKIE);
    if (session) {
      const caller = await sessionCaller(db, session);
      if (caller) {
        request.caller = caller;
        request.viaCookie = true;
      }
    }
  });

  const setSession = async (reply: FastifyReply, accountId: string, secure: boolean) => {
    const { secret } = await createSession(db, accountId);
    reply.header('set-cookie', sessionCookie(secret, SESSION_DAYS * 86_400, secure));
  };
  const failed = (reply: FastifyReply, error: unknown) => {
    if (error instanceof AccountError) return reply.code(STATUS[error.code]).send({ error: error.message, code: error.code });
    throw error;
  };
  const jsonOnly = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isJson(request)) return reply.code(415).send({ error: 'send JSON (content-type: application/json)', code: 'UNSUPPORTED_MEDIA_TYPE' });
  };

  app.post<{ Body: { handle: string; email: string; password: string } }>('/auth/signup', { preHandler: jsonOnly, config: { rateLimit: { max: ACCOUNT_RATE_LIMIT, timeWindow: 60_000 } } }, async (request, reply) => {
    try {
      const account = await signUp(db, request.body ?? {});
      await setSession(reply, account.id, request.protocol === 'https');
      return reply.code(201).send({ account });
    } catch (error) {
      return failed(reply, error);
    }
  });

  app.post<{ Body: { login: string; password: string } }>('/auth/signin', { preHandler: jsonOnly, config: { rateLimit: { max: ACCOUNT_RATE_LIMIT, timeWindow: 60_000 } } }, async (request, reply) => {
    try {
      const account = await signIn(db, request.body ?? {});
      await setSession(reply, account.id, request.protocol === 'https');
      return reply.send({ account });
    } catch (error) {
      return failed(reply, error);
    }
  });

  app.post('/auth/signout', async (request, reply) => {
    const session = readCookie(request, SESSION_COOKIE);
    if (session) await endSession(db, session);
    return reply.header('set-cookie', sessionCookie('', 0, request.protocol === 'https')).code(204).send();
  });

  app.get('/auth/me', async (request) => ({ role: request.caller.role, account: request.caller.account ?? null }));

  app.post<{ Body: { name: string } }>('/auth/tokens', { preHandler: jsonOnly }, async (request, reply) => {
    const account = request.caller.account;
    if (!account) return reply.code(401).send({ error: 'sign in to create an API token', code: 'UNAUTHENTICATED' });
    try {
      const created = await createApiToken(db, account.id, request.body?.name);
      return reply.code(201).send({ ...created, note: 'shown once: store it now; the computatrum CLI reads it from COMPUTATRUM_TOKEN' });
    } catch (error) {
      return failed(reply, error);
    }
  });
}
