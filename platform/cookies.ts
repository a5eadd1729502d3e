// Our cookies: their names, and reading them from requests (our values are base64url, so there is
// nothing to decode). Over HTTPS each name has the __Host- prefix, which browsers accept only on a
// Secure cookie of this very host for every path: no subdomain and no plain-HTTP page can set or
// shadow it. Behind a proxy, HTTPS is what the proxy says (X-Forwarded-Proto, with trustProxy).
import type { FastifyRequest } from 'fastify';

/** The name of our cookie `base` on this request: `__Host-<base>` over HTTPS. */
export const cookieName = (request: FastifyRequest, base: string): string =>
  request.protocol === 'https' ? `__Host-${base}` : base;

/** `; Secure` over HTTPS. */
export const secureAttribute = (request: FastifyRequest): string => (request.protocol === 'https' ? '; Secure' : '');

/** The value of one cookie from the Cookie header. */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const pair of (request.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim();
  }
  return undefined;
}
