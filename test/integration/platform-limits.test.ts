// The platform's protections answer with their own status codes, never a 500: too many requests is a
// 429 (per minute, per address; downloads and health are not limited), too big a body a 413, and
// every answer carries the security headers.
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDatabase, type Database } from '../../db/prisma';
import { LayoutStore } from '../../store/layout';
import { BODY_LIMIT, buildPlatform } from '../../platform/server';
import { testGlobals } from '../setup/globals';

let app: FastifyInstance;
let db: Database;

beforeAll(async () => {
  db = openDatabase(testGlobals().databaseUrl);
  const store = await new LayoutStore(path.join(mkdtempSync(path.join(tmpdir(), 'limits-')), 'store')).init();
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: 'limits',
    store,
    db,
    rateLimitPerMinute: 5,
  });
});

afterAll(async () => {
  await app?.close();
  await db?.$disconnect();
});

const query = () =>
  app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json' },
    payload: { query: '{ me { handle } }' },
    remoteAddress: '10.0.0.7',
  });

test('the sixth request in a minute from one address is a 429 that says when to come back; another address and downloads go on', async () => {
  for (let i = 0; i < 5; i++) expect((await query()).statusCode).toBe(200);
  const limited = await query();
  expect(limited.statusCode).toBe(429);
  // The GraphQL endpoint answers in its own error format; other routes in Fastify's.
  expect(limited.json()).toEqual({
    data: null,
    errors: [{ message: expect.stringMatching(/^too many requests: at most 5 per minute; try again in .+/) }],
  });
  expect(limited.headers['retry-after']).toBeDefined();
  const account = await app.inject({ method: 'GET', url: '/auth/me', remoteAddress: '10.0.0.7' });
  expect(account.statusCode).toBe(429);
  expect(account.json()).toMatchObject({ code: 'RATE_LIMITED', message: expect.stringContaining('too many requests') });
  const other = await app.inject({ method: 'GET', url: '/auth/me', remoteAddress: '10.0.0.8' });
  expect(other.statusCode).toBe(200);
  for (let i = 0; i < 7; i++)
    expect((await app.inject({ method: 'GET', url: '/v2/', remoteAddress: '10.0.0.7' })).statusCode).toBe(200);
});

test('a body over the limit is a 413 with a JSON error, before any work', async () => {
  const big = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ handle: 'x'.repeat(BODY_LIMIT) }),
    remoteAddress: '10.0.0.9',
  });
  expect(big.statusCode).toBe(413);
  expect(big.json()).toMatchObject({ statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
  expect(await db.account.count({ where: { handle: 'x'.repeat(BODY_LIMIT) } })).toBe(0);
});

test('answers carry security headers', async () => {
  const response = await app.inject({ method: 'GET', url: '/auth/me', remoteAddress: '10.0.0.10' });
  expect(response.headers).toMatchObject({
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'SAMEORIGIN',
    'strict-transport-security': expect.stringContaining('max-age='),
  });
  expect(response.headers['content-security-policy']).toContain("default-src 'self'");
});
