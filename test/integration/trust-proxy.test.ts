// The platform behind a proxy, as behind an Ingress: a real HTTP proxy on loopback that terminates
// "TLS" (says X-Forwarded-Proto: https) and names each client in X-Forwarded-For. With the proxy
// trusted (PLATFORM_TRUST_PROXY), every client has its own rate-limit bucket and cookies are Secure
// with the __Host- prefix; without it, the headers change nothing, so nobody can forge a bucket.
import { mkdtempSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { buildPlatform } from '../../platform/server';
import { LayoutStore } from '../../store/layout';
import { testGlobals } from '../setup/globals';
import { uniqueName } from '../helpers/temporal';

let db: Database;
const closing: Array<() => Promise<unknown>> = [];

/** A platform allowing `perMinute` API requests per client, trusting `trustProxy`, on a real port. */
async function platform(trustProxy: string[] | false, perMinute = 3): Promise<string> {
  const store = await new LayoutStore(path.join(mkdtempSync(path.join(tmpdir(), 'proxy-')), 'store')).init();
  const app: FastifyInstance = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: uniqueName('proxied'),
    store,
    db,
    rateLimitPerMinute: perMinute,
    trustProxy,
  });
  closing.push(() => app.close());
  return app.listen({ port: 0, host: '127.0.0.1' });
}

/** A reverse proxy to `target` that says the client (the `x-test-client` header) came over HTTPS. */
async function proxy(target: string): Promise<string> {
  const upstream = new URL(target);
  const server: Server = createServer((incoming, outgoing) => {
    const { 'x-test-client': client, ...headers } = incoming.headers;
    const forwarded = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...headers, 'x-forwarded-for': String(client), 'x-forwarded-proto': 'https' },
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(outgoing);
      },
    );
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closing.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const typename = (base: string, client: string) =>
  fetch(`${base}/api/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { 'x-test-client': client } });

beforeAll(() => {
  db = openDatabase(testGlobals().databaseUrl);
});

afterAll(async () => {
  for (const close of closing.reverse()) await close();
  await db?.$disconnect();
});

test('behind a trusted proxy each client has its own rate-limit bucket; behind an untrusted one they all share the proxy’s', async () => {
  const trusted = await proxy(await platform(['127.0.0.1']));
  for (let i = 0; i < 3; i++) expect((await typename(trusted, '203.0.113.7')).status).toBe(200);
  const limited = await typename(trusted, '203.0.113.7');
  expect(limited.status).toBe(429);
  expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  expect((await typename(trusted, '198.51.100.9')).status).toBe(200);

  // A proxy the platform does not trust (only 10.0.0.1 is): the forwarded addresses are anyone's to
  // write, so they count for nothing and every client is the proxy.
  const untrusted = await proxy(await platform(['10.0.0.1']));
  for (let i = 0; i < 3; i++) expect((await typename(untrusted, `192.0.2.${i + 1}`)).status).toBe(200);
  expect((await typename(untrusted, '192.0.2.99')).status).toBe(429);
});

test('over HTTPS at the proxy the session and CSRF cookies are Secure with the __Host- prefix, and only those names count', async () => {
  const base = await proxy(await platform(['127.0.0.1'], 100));
  const handle = uniqueName('tls');
  const signup = await fetch(`${base}/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-test-client': '203.0.113.20' },
    body: JSON.stringify({ handle, email: `${handle}@example.org`, password: 'correct horse battery' }),
  });
  expect(signup.status).toBe(201);
  const cookie = signup.headers.get('set-cookie')!;
  expect(cookie).toMatch(
    /^__Host-computatrum_session=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/,
  );
  const session = cookie.split(';')[0]!;

  const me = (sent: string) =>
    fetch(`${base}/api/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: sent, 'x-test-client': '203.0.113.20' },
      body: JSON.stringify({ query: '{ me { handle } }' }),
    }).then((r) => r.json() as Promise<{ data?: { me: { handle: string } | null } }>);
  expect((await me(session)).data?.me?.handle).toBe(handle);
  // The same secret under the plain name (as a plain-HTTP page or a subdomain could set it) is no session here.
  expect((await me(session.replace('__Host-', ''))).data?.me ?? null).toBeNull();

  const page = await fetch(`${base}/auth/signin`, { headers: { 'x-test-client': '203.0.113.20' } });
  expect(page.headers.get('set-cookie')).toMatch(
    /^__Host-computatrum_csrf=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/,
  );
});
