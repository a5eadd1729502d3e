// Reading request cookies: our values are base64url, so there is nothing to decode.
import type { FastifyRequest } from 'fastify';

/** The value of one cookie from the Cookie header. */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const pair of (request.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim();
  }
  return undefined;
}
