// CSRF protection for what a browser can send from another site without asking first: HTML form
// posts (urlencoded, multipart, text/plain). The JSON API is safe by its content type (a cross-site
// page cannot send JSON without a CORS preflight, which this server never grants); forms and other
// simple requests must carry a token that only our own pages know: the double-submit pattern, with
// the token in an HttpOnly, SameSite=Strict cookie and repeated in a hidden field or a header.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { cookieName, readCookie, secureAttribute } from './cookies';

export const CSRF_COOKIE = 'computatrum_csrf';
/** The hidden form field that repeats the cookie's token. */
export const CSRF_FIELD = '_csrf';
/** The header that repeats it for scripts and uploads. */
export const CSRF_HEADER = 'x-csrf-token';

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The caller's token, set as a cookie on `reply` when the caller has none yet. Put it in every form. */
export function csrfToken(request: FastifyRequest, reply: FastifyReply): string {
  const existing = readCookie(request, cookieName(request, CSRF_COOKIE));
  if (existing && TOKEN.test(existing)) return existing;
  const token = randomBytes(32).toString('base64url');
  reply.header(
    'set-cookie',
    `${cookieName(request, CSRF_COOKIE)}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000${secureAttribute(request)}`,
  );
  return token;
}

/** True when the request repeats its cookie's token in the form field or the header. */
export function hasValidCsrf(request: FastifyRequest): boolean {
  const cookie = readCookie(request, cookieName(request, CSRF_COOKIE));
  const field = (request.body as Record<string, unknown> | undefined)?.[CSRF_FIELD];
  const presented = typeof field === 'string' ? field : request.headers[CSRF_HEADER];
  if (!cookie || typeof presented !== 'string' || !TOKEN.test(cookie) || presented.length !== cookie.length)
    return false;
  return timingSafeEqual(Buffer.from(presented), Buffer.from(cookie));
}
