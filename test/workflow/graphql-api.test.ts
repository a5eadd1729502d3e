// The platform's accounts and GraphQL API against the real parts: PostgreSQL for accounts, the
// Temporal dev server for the germline, an OCI layout store for forks. Requests go through Fastify's
// inject (the whole HTTP stack of the app, without a socket).
import crypto from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { publishCheckpoint } from '../../store/checkpoint';
import { buildPlatform } from '../../platform/server';
import { graphqlAs, type Headers, signUpAccount, type TestAccount } from '../helpers/accounts';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { depositUpdate, statusQuery } from '../../workflows/budget-api';
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;
let app: FastifyInstance;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount: '5000', currency: 'usd', reference: 'seed' });
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: germline.name,
    currency: 'usd',
    store: env.store,
    db: env.db,
    client: env.client,
  });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
});

async function signUp(handle: string, role: 'trainer' | 'operator' = 'trainer'): Promise<TestAccount> {
  return signUpAccount(app, handle, role === 'operator' ? { db: env.db } : undefined);
}

async function graphql(query: string, variables: Record<string, unknown> = {}, headers: Headers = {}) {
  const { status, ...body } = await graphqlAs(app, headers, query, variables);
  return { status, body };
}

describe('accounts', () => {
  test('sign up gives a session; the handle and email are taken once; bad input says what is wrong', async () => {
    const handle = uniqueName('ann');
    const first = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle, email: `${handle}@example.org`, password: 'long enough password' },
    });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toEqual({ account: expect.objectContaining({ handle, role: 'trainer' }) });
    const cookie = first.cookies.find((c) => c.name === 'computatrum_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    const me = await app.inject({
      method: 'GET',
      url: '/auth/me',
      headers: { cookie: `computatrum_session=${cookie.value}` },
    });
    expect(me.json()).toMatchObject({ role: 'trainer', account: { handle } });

    const again = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle, email: `other-${handle}@example.org`, password: 'long enough password' },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ code: 'HANDLE_TAKEN', error: `the handle ${handle} is taken: choose another` });
    const short = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle: uniqueName('b'), email: 'b@example.org', password: 'short' },
    });
    expect(short.json()).toEqual({ code: 'INVALID_INPUT', error: 'a password is at least 10 characters' });
    const long = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle: uniqueName('b'), email: 'b@example.org', password: 'x'.repeat(200_000) },
    });
    expect(long.statusCode).toBe(400);
    expect(long.json()).toEqual({ code: 'INVALID_INPUT', error: 'a password is at most 200 characters' });
    const longest = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle: uniqueName('b'), email: `${uniqueName('b')}@example.org`, password: 'x'.repeat(200) },
    });
    expect(longest.statusCode).toBe(201);
    // A form post (what another site could make a browser send) is not accepted.
    const form = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'handle=x&email=x@example.org&password=xxxxxxxxxxxx',
    });
    expect(form.statusCode).toBe(415);
  });

  test('sign in answers the same for an unknown login and a wrong password; sign out ends the session', async () => {
    const handle = uniqueName('cid');
    await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { handle, email: `${handle}@example.org`, password: 'a fine password' },
    });
    const wrong = await app.inject({
      method: 'POST',
      url: '/auth/signin',
      payload: { login: handle, password: 'not the password' },
    });
    const unknown = await app.inject({
      method: 'POST',
      url: '/auth/signin',
      payload: { login: 'nobody-at-all', password: 'not the password' },
    });
    expect([wrong.statusCode, unknown.statusCode]).toEqual([401, 401]);
    expect(wrong.json()).toEqual(unknown.json());
    const ok = await app.inject({
      method: 'POST',
      url: '/auth/signin',
      payload: { login: `${handle}@EXAMPLE.org`, password: 'a fine password' },
    });
    expect(ok.statusCode).toBe(200);
    const cookie = { cookie: `computatrum_session=${ok.cookies.find((c) => c.name === 'computatrum_session')!.value}` };
    expect((await app.inject({ method: 'GET', url: '/auth/me', headers: cookie })).json()).toMatchObject({
      role: 'trainer',
    });
    expect((await app.inject({ method: 'POST', url: '/auth/signout', headers: cookie })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/auth/me', headers: cookie })).json()).toEqual({
      role: 'public',
      account: null,
    });
  });

  test('sign in with an over-long password is refused at once, before any hashing, whoever the login names', async () => {
    const handle = uniqueName('eve');
    const remoteAddress = '203.0.113.7'; // an address of its own: sign-ins are rate limited per address
    await app.inject({
      method: 'POST',
      url: '/auth/signup',
      remoteAddress,
      payload: { handle, email: `${handle}@example.org`, password: 'a fine password' },
    });
    const hashing = jest.spyOn(crypto, 'scrypt');
    const answers = await Promise.all(
      [handle, 'nobody-at-all'].map((login) =>
        app.inject({
          method: 'POST',
          url: '/auth/signin',
          remoteAddress,
          payload: { login, password: 'x'.repeat(200_000) },
        }),
      ),
    );
    expect(hashing).not.toHaveBeenCalled();
    // The spy sees a real check: a wrong password of a fair length is hashed.
    await app.inject({
      method: 'POST',
      url: '/auth/signin',
      remoteAddress,
      payload: { login: handle, password: 'not the password' },
    });
    expect(hashing).toHaveBeenCalled();
    hashing.mockRestore();
    for (const answer of answers) {
      expect(answer.statusCode).toBe(400);
      expect(answer.json()).toEqual({ code: 'INVALID_INPUT', error: 'a password is at most 200 characters' });
    }
  });

  test('an API token is shown once and stored only as a hash; an unknown token is refused, not treated as the public', async () => {
    const handle = uniqueName('dee');
    const { token } = await signUp(handle);
    expect((await app.inject({ method: 'GET', url: '/auth/me', headers: token })).json()).toMatchObject({
      role: 'trainer',
      account: { handle },
    });
    const secret = token.authorization!.slice('Bearer '.length);
    const rows = await env.db.apiToken.findMany({ where: { account: { handle } } });
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(secret);
    const bad = await app.inject({
      method: 'GET',
      url: '/auth/me',
      headers: { authorization: 'Bearer ctr_not-a-real-token' },
    });
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});

describe('GraphQL', () => {
  let alice: TestAccount;
  let bob: TestAccount;
  let operator: TestAccount;
  let aliceHandle: string;
  let threadId: string;

  beforeAll(async () => {
    aliceHandle = uniqueName('alice');
    alice = await signUp(aliceHandle);
    bob = await signUp(uniqueName('bob'));
    operator = await signUp(uniqueName('op'), 'operator');
    const dir = mkdtempSync(path.join(tmpdir(), 'gql-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('weights'));
    await publishCheckpoint(env.store, `germline/${germline.name}`, dir, { tag: 'main' });
    const opened = await graphql(
      `mutation { startThread(repository: "germline/${germline.name}", title: "Matrix", body: "a thread to reply to") { id } }`,
      {},
      alice.token,
    );
    threadId = (opened.body.data as { startThread: { id: string } }).startThread.id;
  });

  // Every mutation, as each kind of caller: allowed ones reach their resolver, the others are refused by role.
  const mutations: Array<{
    name: string;
    query: () => string;
    allowed: Array<'public' | 'owner' | 'other trainer' | 'operator'>;
  }> = [
    {
      name: 'createApiToken',
      query: () => 'mutation { createApiToken(name: "matrix") { id } }',
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'fork',
      query: () =>
        `mutation { fork(from: "germline/${germline.name}:main", to: "trainers/${aliceHandle}/coder:${uniqueName('b')}") { digest } }`,
      allowed: ['owner', 'operator'],
    },
    {
      name: 'publishBreed',
      query: () =>
        `mutation { publishBreed(repository: "trainers/${aliceHandle}/coder", title: "Coder", price: "9.99") { repository } }`,
      allowed: ['owner'],
    },
    {
      name: 'onboardPayouts',
      query: () => 'mutation { onboardPayouts(requestId: "r1") }',
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'buyBreed',
      query: () => `mutation { buyBreed(repository: "trainers/${aliceHandle}/coder", requestId: "r1") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'startThread',
      query: () =>
        `mutation { startThread(repository: "germline/${germline.name}", reference: "main", title: "How it codes", body: "It wrote a parser.") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'comment',
      query: () => `mutation { comment(threadId: "${threadId}", body: "Same here.") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'attachRecording',
      query: () =>
        `mutation { attachRecording(repository: "germline/${germline.name}", reference: "main", title: "A session", transcript: "> hi\\nhello") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'reportImage',
      query: () => `mutation { reportImage(repository: "germline/${germline.name}", reason: "matrix") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'fundCredit',
      query: () => 'mutation { fundCredit(amount: "5.00", requestId: "r1") { id } }',
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'startTrainingRun',
      query: () => `mutation { startTrainingRun(repository: "trainers/${aliceHandle}/coder", maxCost: "1.00") { id } }`,
      allowed: ['owner', 'other trainer', 'operator'],
    },
    {
      name: 'setPolicy',
      query: () => 'mutation { setPolicy(perReservationCap: "none") { perReservationCap } }',
      allowed: ['operator'],
    },
    {
      name: 'promote',
      query: () => `mutation { promote(repository: "germline/${germline.name}", reference: "main") { digest } }`,
      allowed: ['operator'],
    },
    {
      name: 'deposit',
      query: () => `mutation { deposit(amount: "1.00", reference: "${uniqueName('m')}") { available } }`,
      allowed: ['operator'],
    },
    {
      name: 'fundGermline',
      query: () => `mutation { fundGermline(amount: "5.00", requestId: "${uniqueName('r')}") { id } }`,
      allowed: ['operator'],
    },
    {
      name: 'pauseGermline',
      query: () => 'mutation { pauseGermline(reason: "matrix") { paused } }',
      allowed: ['operator'],
    },
    { name: 'resumeGermline', query: () => 'mutation { resumeGermline { paused } }', allowed: ['operator'] },
    {
      name: 'approveDecision',
      query: () => 'mutation { approveDecision(id: "none/1/0") { outcome } }',
      allowed: ['operator'],
    },
    {
      name: 'rejectDecision',
      query: () => 'mutation { rejectDecision(id: "none/1/0", reason: "no") { outcome } }',
      allowed: ['operator'],
    },
  ];
  const callers = ['public', 'owner', 'other trainer', 'operator'] as const;

  test.each(mutations.flatMap((m) => callers.map((caller) => [m.name, caller, m.allowed.includes(caller)] as const)))(
    'authorization: %s as %s → allowed %s',
    async (name, caller, allowed) => {
      const mutation = mutations.find((m) => m.name === name)!;
      const headers =
        caller === 'public'
          ? {}
          : caller === 'owner'
            ? alice.token
            : caller === 'other trainer'
              ? bob.token
              : operator.token;
      const { body } = await graphql(mutation.query(), {}, headers);
      const code = body.errors?.[0]?.extensions?.code;
      if (allowed) {
        expect(['UNAUTHENTICATED', 'FORBIDDEN']).not.toContain(code);
        // Approving a decision that does not exist reaches the germline, which says so.
        if (name.endsWith('Decision'))
          expect(body.errors?.[0]).toMatchObject({
            extensions: { code: 'NOT_FOUND' },
            message: expect.stringContaining('no decision none/1/0 awaits approval'),
          });
        // This platform has neither Stripe nor trainers' training configured (stripe.test.ts and trainer-credit.test.ts have): the resolver says so.
        else if (['fundGermline', 'onboardPayouts', 'buyBreed', 'fundCredit', 'startTrainingRun'].includes(name))
          expect(body.errors?.[0]).toMatchObject({ extensions: { code: 'UNAVAILABLE' } });
        // The germline's main has no training metrics: the eval gate, if any, says so; without one it is promoted.
        else if (name === 'promote' && body.errors)
          expect(body.errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
        else expect(body.errors).toBeUndefined();
      } else {
        expect(code).toBe(caller === 'public' ? 'UNAUTHENTICATED' : 'FORBIDDEN');
        expect(body.data?.[name] ?? null).toBeNull();
      }
    },
  );

  test('a deposit through the API reaches the germline books; amounts in the wrong form are refused with what is wrong', async () => {
    const before = BigInt((await germline.handle.query(statusQuery)).available);
    const { body } = await graphql(
      'mutation($ref: String!) { deposit(amount: "12.50", reference: $ref) { available } }',
      { ref: uniqueName('api') },
      operator.token,
    );
    expect(body.data).toEqual({ deposit: { available: (before + 1250n).toString() } });
    const bad = await graphql(
      'mutation { deposit(amount: "12.505", reference: "x") { available } }',
      {},
      operator.token,
    );
    expect(bad.body.errors?.[0]).toMatchObject({
      extensions: { code: 'BAD_USER_INPUT' },
      message: expect.stringContaining('12.505'),
    });
  });

  test('the public sees the germline and its daily checkpoints but not its books', async () => {
    await env.db.checkpoint.create({
      data: {
        id: `germline/${germline.name}:gpc-2026-11-25`,
        repository: `germline/${germline.name}`,
        tag: 'gpc-2026-11-25',
        day: '2026-11-25',
        status: 'published',
        nickname: 'Quiet Otter',
        digest: `sha256:${'c'.repeat(64)}`,
        size: 7n,
      },
    });
    const { body } = await graphql(
      '{ germline { name state paused books { available } } dailyCheckpoints { tag nickname size pull } }',
    );
    expect(body.data).toEqual({
      germline: { name: germline.name, state: 'funded', paused: false, books: null },
      dailyCheckpoints: [
        {
          tag: 'gpc-2026-11-25',
          nickname: 'Quiet Otter',
          size: '7',
          pull: `computatrum pull germline/${germline.name}:gpc-2026-11-25 <dir>`,
        },
      ],
    });
    expect(body.errors?.[0]).toMatchObject({ path: ['germline', 'books'], extensions: { code: 'UNAUTHENTICATED' } });
    const open = await graphql('{ germline { name paused activeChildren } }');
    expect(open.body).toEqual({ data: { germline: { name: germline.name, paused: false, activeChildren: 0 } } });
    const books = await graphql('{ germline { books { deposited } } }', {}, operator.token);
    expect(books.body.data).toEqual({ germline: { books: { deposited: expect.stringMatching(/^\d+$/) } } });
  });

  test('a daily checkpoint lists its files with download links that serve them, and its parent', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gql-daily-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('weights of the 26th'));
    const repository = `germline/${germline.name}`;
    const parent = `sha256:${'d'.repeat(64)}`;
    const published = await publishCheckpoint(env.store, repository, dir, { tag: 'gpc-2026-11-26', parent });
    await env.db.checkpoint.create({
      data: {
        id: `${repository}:gpc-2026-11-26`,
        repository,
        tag: 'gpc-2026-11-26',
        day: '2026-11-26',
        status: 'published',
        nickname: 'Brave Heron',
        digest: published.digest,
        size: 19n,
        parentDigest: parent,
      },
    });
    const { body } = await graphql(
      '{ dailyCheckpoints(limit: 1) { tag parentDigest files { path size downloadUrl } } }',
    );
    expect(body.data).toEqual({
      dailyCheckpoints: [
        {
          tag: 'gpc-2026-11-26',
          parentDigest: parent,
          files: [
            {
              path: 'model.safetensors',
              size: String(safetensorsOf('weights of the 26th').length),
              downloadUrl: `/hub/${repository}/resolve/gpc-2026-11-26/model.safetensors`,
            },
          ],
        },
      ],
    });
    const download = await app.inject({
      method: 'GET',
      url: `/hub/${repository}/resolve/gpc-2026-11-26/model.safetensors`,
    });
    expect(download.rawPayload.equals(safetensorsOf('weights of the 26th'))).toBe(true);
  });

  test('graphql over HTTP: GET for queries, never for mutations; malformed requests answer 400 with errors', async () => {
    const get = await app.inject({
      method: 'GET',
      url: `/api/graphql?query=${encodeURIComponent('{ me { handle } }')}`,
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers['content-type']).toMatch(/^application\/json/);
    expect(get.json()).toEqual({ data: { me: null } });
    const mutationByGet = await app.inject({
      method: 'GET',
      url: `/api/graphql?query=${encodeURIComponent('mutation { resumeGermline { paused } }')}`,
      headers: operator.token,
    });
    expect(mutationByGet.statusCode).toBe(405);
    const syntax = await graphql('{ me { handle ');
    expect(syntax.status).toBe(400);
    expect(syntax.body.errors?.[0]?.message).toContain('Syntax Error');
    const unknownField = await graphql('{ germline { secrets } }');
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.errors?.[0]?.message).toContain('Cannot query field "secrets"');
  });

  test('a session cookie changes things only through JSON', async () => {
    const form = await app.inject({
      method: 'POST',
      url: '/api/graphql',
      headers: { ...operator.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'query=mutation%20%7B%20resumeGermline%20%7B%20paused%20%7D%20%7D',
    });
    expect(form.statusCode).toBe(415);
    const json = await graphql('{ me { role } }', {}, operator.cookie);
    expect(json.body).toEqual({ data: { me: { role: 'operator' } } });
  });

  describe('limits: each is refused with QUERY_TOO_COMPLEX and the limit in the message', () => {
    const nested = (levels: number) =>
      `${'__schema { types { fields { type '}${'{ ofType '.repeat(levels - 5)}{ name }${' }'.repeat(levels - 5)} } } }`;
    const tooComplex = (message: string) => ({
      status: 400,
      body: { data: null, errors: [expect.objectContaining({ message, extensions: { code: 'QUERY_TOO_COMPLEX' } })] },
    });

    test('depth: 8 levels of fields answer; 9 are refused, also when fragments hide them', async () => {
      expect((await graphql(`{ ${nested(8)} }`)).body.errors).toBeUndefined();
      const refused =
        'too deep: at most 8 levels of fields per operation; ask for less, or split it into several operations';
      expect(await graphql(`{ ${nested(9)} }`)).toEqual(tooComplex(refused));
      const throughFragments =
        '{ __schema { ...T } } fragment T on __Schema { types { fields { type { ...O } } } } fragment O on __Type { ofType { ofType { ... on __Type { ofType { ofType { name } } } } } }';
      expect(await graphql(throughFragments)).toEqual(tooComplex(refused));
    });

    test('aliases: 15 answer; 16 are refused', async () => {
      const aliased = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { handle }`).join(' ')} }`;
      expect((await graphql(aliased(15))).body.errors).toBeUndefined();
      expect(await graphql(aliased(16))).toEqual(
        tooComplex('too many aliases: at most 15 per operation; ask for less, or split it into several operations'),
      );
    });

    test('fields: 200 answer; 201 are refused', async () => {
      const twoHundred = Array.from({ length: 100 }, () => 'me { handle }').join(' ');
      expect((await graphql(`{ ${twoHundred} }`)).body.errors).toBeUndefined();
      expect(await graphql(`{ ${twoHundred} __typename }`)).toEqual(
        tooComplex('too many fields: at most 200 per operation; ask for less, or split it into several operations'),
      );
    });
  });
});
