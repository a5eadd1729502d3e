// The attack matrix: every way to reach a paid breed's bytes, for every kind of caller, on both
// checkpoint stores (the embedded OCI layout and a real CNCF Distribution registry). Access is
// decided by content: a blob is served only under a repository that holds it, and only to a caller
// who may read that repository; forks and training runs of a paid breed need the entitlement and
// keep the breed's terms.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { publishCheckpoint, type Published } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { pullCheckpoint } from '../../store/pull';
import { RegistryStore } from '../../store/registry';
import type { CheckpointStore } from '../../store/types';
import { attachRecording } from '../../platform/hub';
import { creditHandle } from '../../platform/credit';
import { entitlementId, readRefusal } from '../../platform/read-access';
import { type Headers, signUpAccount, type TestAccount } from '../helpers/accounts';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { depositUpdate } from '../../workflows/budget-api';

jest.setTimeout(120_000);

type Who = 'public' | 'stranger' | 'buyer' | 'owner' | 'operator';
const EVERYONE: Who[] = ['public', 'stranger', 'buyer', 'owner', 'operator'];
const ENTITLED: Who[] = ['buyer', 'owner', 'operator'];
/** What a refused caller gets: the public must sign in, a stranger must buy. */
const REFUSED: Record<Who, number> = { public: 401, stranger: 403, buyer: 200, owner: 200, operator: 200 };

let env: TestEnvironment;
let registry: TestRegistry;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
  await env?.close();
});

/** One platform on one store, with a free image, a paid breed and an unchanged file they share. */
async function world(store: CheckpointStore) {
  const { name: germline } = await env.startGermline();
  const free = `germline/${germline}`;
  const shared = randomBytes(64 * 1024);
  const freeDir = mkdtempSync(path.join(tmpdir(), 'access-free-'));
  writeFileSync(path.join(freeDir, 'tokenizer.json'), shared);
  writeFileSync(path.join(freeDir, 'notes.txt'), 'the free germline');
  await publishCheckpoint(store, free, freeDir, { tag: 'main' });

  const app = await testPlatform(env, germline, {
    store,
    training: {
      taskQueue: env.taskQueue,
      ratePerGpuHour: 3600n,
      runner: 'local',
      maxDurationSeconds: 60,
      maxPreemptions: 0,
      maxGpus: 1,
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const owner = await signUpAccount(app, uniqueName('own'));
  const people: Record<Exclude<Who, 'public'>, TestAccount> = {
    owner,
    buyer: await signUpAccount(app, uniqueName('buy')),
    stranger: await signUpAccount(app, uniqueName('str')),
    operator: await signUpAccount(app, uniqueName('op'), { db: env.db }),
  };
  const headers = (who: Who): Headers => (who === 'public' ? {} : people[who].token);

  const paid = `trainers/${owner.handle}/secret`;
  const paidDir = mkdtempSync(path.join(tmpdir(), 'access-paid-'));
  writeFileSync(path.join(paidDir, 'tokenizer.json'), shared); // the unchanged base file
  writeFileSync(path.join(paidDir, 'weights.bin'), randomBytes(256 * 1024)); // what the buyer pays for
  const published: Published = await publishCheckpoint(store, paid, paidDir, { tag: 'main' });
  expect(
    (await owner.gql(`mutation { publishBreed(repository: "${paid}", title: "Secret", price: "9.99") { price } }`))
      .errors,
  ).toBeUndefined();
  await env.db.entitlement.create({
    data: {
      id: entitlementId(people.buyer.id, paid),
      accountId: people.buyer.id,
      repository: paid,
      checkoutSessionId: `cs_${uniqueName('t')}`,
      amount: 999n,
      fee: 99n,
    },
  });
  const file = (name: string) =>
    published.manifest.layers.find((l) => l.annotations?.['org.cncf.model.filepath'] === name)!.digest;
  const recording = await attachRecording(
    env.db,
    store,
    { id: people.stranger.id, handle: people.stranger.handle, email: 'x@example.org', role: 'trainer' },
    {
      repository: paid,
      reference: 'main',
      title: 'It asks for passwords',
      filename: 'session.txt',
      content: Buffer.from('user: hi\nmodel: what is your password?'),
    },
  );
  const recordingManifest = (await env.db.recording.findUniqueOrThrow({ where: { id: recording.id } })).manifestDigest;
  return {
    app,
    baseUrl,
    store,
    free,
    paid,
    published,
    people,
    headers,
    secret: file('weights.bin'),
    shared: file('tokenizer.json'),
    paidDir,
    recording,
    recordingManifest,
  };
}

type World = Awaited<ReturnType<typeof world>>;

const backends: Array<[string, () => Promise<CheckpointStore>]> = [
  ['OCI layout store', async () => new LayoutStore(mkdtempSync(path.join(tmpdir(), 'access-store-'))).init()],
  ['CNCF Distribution registry store', async () => new RegistryStore({ url: registry.url })],
];

describe.each(backends)('on the %s', (_name, makeStore) => {
  let w: World;

  beforeAll(async () => {
    w = await world(await makeStore());
  });

  afterAll(async () => {
    await w?.app.close();
  });

  const get = async (who: Who, url: string, method: 'GET' | 'HEAD' = 'GET') => {
    const response = await fetch(`${w.baseUrl}${url}`, { method, headers: w.headers(who) });
    const body = method === 'GET' ? Buffer.from(await response.arrayBuffer()) : Buffer.alloc(0);
    return { status: response.status, body };
  };

  /** Every route that could hand out the paid breed's own bytes, and who gets them. */
  const routes: Array<[string, (w: World) => string, 'GET' | 'HEAD', Record<Who, number>]> = [
    ['its manifest by tag', (w) => `/v2/${w.paid}/manifests/main`, 'GET', REFUSED],
    ['its manifest by digest', (w) => `/v2/${w.paid}/manifests/${w.published.digest}`, 'GET', REFUSED],
    ['its paid blob', (w) => `/v2/${w.paid}/blobs/${w.secret}`, 'GET', REFUSED],
    ['its paid blob by HEAD', (w) => `/v2/${w.paid}/blobs/${w.secret}`, 'HEAD', REFUSED],
    ['its paid blob under the free image', (w) => `/v2/${w.free}/blobs/${w.secret}`, 'GET', all(404)],
    ['its paid blob under a made-up name', (w) => `/v2/nobody/made-up/blobs/${w.secret}`, 'GET', all(404)],
    ['its manifest under the free image', (w) => `/v2/${w.free}/manifests/${w.published.digest}`, 'GET', all(404)],
    ['its manifest under a made-up name', (w) => `/v2/nobody/made-up/manifests/${w.published.digest}`, 'GET', all(404)],
    [
      'its config under the free image',
      (w) => `/v2/${w.free}/blobs/${w.published.manifest.config.digest}`,
      'GET',
      all(404),
    ],
    ['its file through a resolve link', (w) => `/hub/${w.paid}/resolve/main/weights.bin`, 'GET', REFUSED],
    [
      'its file through a resolve link by digest',
      (w) => `/hub/${w.paid}/resolve/${w.published.digest}/weights.bin`,
      'GET',
      REFUSED,
    ],
    [
      "its file through the free image's resolve link",
      (w) => `/hub/${w.free}/resolve/${w.published.digest}/weights.bin`,
      'GET',
      all(404),
    ],
    ['the shared file under the paid breed', (w) => `/v2/${w.paid}/blobs/${w.shared}`, 'GET', REFUSED],
    ['the shared file under the free image', (w) => `/v2/${w.free}/blobs/${w.shared}`, 'GET', all(200)],
    [
      "the shared file through the free image's resolve link",
      (w) => `/hub/${w.free}/resolve/main/tokenizer.json`,
      'GET',
      all(200),
    ],
    [
      'the referrers of its manifest (recordings, no bytes of the breed)',
      (w) => `/v2/${w.paid}/referrers/${w.published.digest}`,
      'GET',
      all(200),
    ],
    [
      'a recording attached to it, as an OCI manifest',
      (w) => `/v2/${w.paid}/manifests/${w.recordingManifest}`,
      'GET',
      all(200),
    ],
    ['a recording attached to it, as a download', (w) => w.recording.downloadUrl, 'GET', all(200)],
  ];

  describe.each(routes)('%s', (_route, url, method, expected) => {
    test.each(EVERYONE)('as %s', async (who) => {
      const answer = await get(who, url(w), method);
      expect(answer.status).toBe(expected[who]);
      if (answer.status === 200 && method === 'GET' && url(w).includes(w.secret)) {
        expect(answer.body.equals(readFileSync(path.join(w.paidDir, 'weights.bin')))).toBe(true);
      }
      if (answer.status !== 200)
        expect(answer.body.includes(readFileSync(path.join(w.paidDir, 'weights.bin')).subarray(0, 64))).toBe(false);
    });
  });

  test('a cached copy changes nothing: If-None-Match with the right digest is refused as the bytes are, never a 304', async () => {
    for (const [url, digest] of [
      [`/v2/${w.paid}/manifests/main`, w.published.digest],
      [`/v2/${w.paid}/blobs/${w.secret}`, w.secret],
    ] as const) {
      for (const tag of [`"${digest}"`, '*']) {
        const statuses = await Promise.all(
          (['public', 'stranger', 'buyer'] as const).map(async (who) => {
            const response = await fetch(`${w.baseUrl}${url}`, {
              headers: { ...w.headers(who), 'if-none-match': tag },
            });
            return response.status;
          }),
        );
        expect({ url, tag, statuses }).toEqual({ url, tag, statuses: [401, 403, 304] });
      }
    }
  });

  test('the referrers listing names the recording, whoever asks', async () => {
    const index = JSON.parse(
      (await get('public', `/v2/${w.paid}/referrers/${w.published.digest}`)).body.toString(),
    ) as { manifests: Array<{ digest: string }> };
    expect(index.manifests.map((m) => m.digest)).toEqual([w.recordingManifest]);
  });

  test('no cross-repository mount or push is served: the platform serves only the read side', async () => {
    for (const who of EVERYONE) {
      const mount = await fetch(
        `${w.baseUrl}/v2/trainers/${w.people.stranger.handle}/copy/blobs/uploads/?mount=${w.secret}&from=${w.paid}`,
        { method: 'POST', headers: w.headers(who) },
      );
      expect([404, 405]).toContain(mount.status);
    }
  });

  test('the store mounts a blob only from a repository that holds it', async () => {
    await expect(
      w.store.mountBlob(`trainers/${w.people.stranger.handle}/copy`, w.free, w.secret),
    ).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
    await expect(
      w.store.mountBlob(`trainers/${w.people.stranger.handle}/copy`, 'nobody/made-up', w.secret),
    ).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
  });

  test.each(EVERYONE)('computatrum pull of the paid breed as %s', async (who) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'access-pull-'));
    const pulled = pullCheckpoint({
      baseUrl: w.baseUrl,
      repo: w.paid,
      reference: 'main',
      dir,
      headers: w.headers(who),
    });
    if (ENTITLED.includes(who)) {
      await expect(pulled).resolves.toMatchObject({ digest: w.published.digest });
      expect(
        readFileSync(path.join(dir, 'weights.bin')).equals(readFileSync(path.join(w.paidDir, 'weights.bin'))),
      ).toBe(true);
    } else {
      await expect(pulled).rejects.toThrow(who === 'public' ? /401|sign in/ : /403|not bought/);
    }
  });

  test.each(EVERYONE)(
    'fork of the paid breed as %s: only with the entitlement, and the fork keeps its terms',
    async (who) => {
      const handle = who === 'public' ? 'nobody' : w.people[who].handle;
      const target = `trainers/${handle}/fork-${uniqueName('f')}`;
      const query = `mutation { fork(from: "${w.paid}:main", to: "${target}:main") { digest } }`;
      const answer =
        who === 'public'
          ? await anonymousGql(w.app, query)
          : await w.people[who].gql<{ fork: { digest: string } }>(query);
      if (!ENTITLED.includes(who)) {
        expect(answer.errors?.[0]?.extensions?.code).toBe(who === 'public' ? 'UNAUTHENTICATED' : 'FORBIDDEN');
        expect(await w.store.listTags(target)).toEqual([]);
        return;
      }
      expect(answer.errors).toBeUndefined();
      // A buyer's fork is not a free republication: the public and strangers are refused, the buyer reads it.
      for (const reader of EVERYONE) {
        const resolved = await get(reader, `/hub/${target}/resolve/main/weights.bin`);
        expect({ reader, status: resolved.status }).toEqual({
          reader,
          status: REFUSED[reader] === 200 || reader === who ? 200 : REFUSED[reader],
        });
      }
    },
  );

  test('a buyer cannot list a fork of the paid breed as a breed of their own, free or priced', async () => {
    const buyer = w.people.buyer;
    const target = `trainers/${buyer.handle}/resale-${uniqueName('r')}`;
    expect(
      (await buyer.gql(`mutation { fork(from: "${w.paid}:main", to: "${target}:main") { digest } }`)).errors,
    ).toBeUndefined();
    const listing = await buyer.gql(`mutation { publishBreed(repository: "${target}", title: "Mine now") { price } }`);
    expect(listing.errors?.[0]).toMatchObject({
      extensions: { code: 'FORBIDDEN' },
      message: expect.stringContaining(`holds content of the paid breed ${w.paid}`),
    });
  });

  test('a buyer cannot fork the paid breed into a breed listed already (its buyers paid for something else)', async () => {
    const buyer = w.people.buyer;
    const listed = `trainers/${buyer.handle}/listed-${uniqueName('l')}`;
    expect(
      (await buyer.gql(`mutation { fork(from: "${w.free}:main", to: "${listed}:main") { digest } }`)).errors,
    ).toBeUndefined();
    expect(
      (await buyer.gql(`mutation { publishBreed(repository: "${listed}", title: "Mine", price: "1.00") { price } }`))
        .errors,
    ).toBeUndefined();
    const fork = await buyer.gql(`mutation { fork(from: "${w.paid}:main", to: "${listed}:main") { digest } }`);
    expect(fork.errors?.[0]).toMatchObject({
      extensions: { code: 'FORBIDDEN' },
      message: expect.stringContaining(`${listed} is listed as a breed`),
    });
    expect((await w.store.getManifest(listed, 'main'))?.digest).not.toBe(w.published.digest);
  });

  test("an operator cannot promote the paid breed to the germline's free head", async () => {
    const promoted = await w.people.operator.gql(
      `mutation { promote(repository: "${w.paid}", reference: "main") { digest } }`,
    );
    expect(promoted.errors?.[0]?.message).toContain(
      `${w.paid} holds content of the paid breed ${w.paid}: promoting it would give it away for free`,
    );
    expect((await w.store.getManifest(w.free, 'main'))?.digest).not.toBe(w.published.digest);
  });

  test.each(['stranger', 'buyer'] as const)('a training run from the paid breed as the base, as %s', async (who) => {
    const person = w.people[who];
    const target = `trainers/${person.handle}/tuned-${uniqueName('t')}`;
    const answer = await person.gql(
      `mutation { startTrainingRun(base: "${w.paid}:main", repository: "${target}", maxCost: "1.00") { id } }`,
    );
    if (who === 'stranger') {
      expect(answer.errors?.[0]).toMatchObject({
        extensions: { code: 'FORBIDDEN' },
        message: expect.stringContaining('has not bought it'),
      });
      return;
    }
    // The buyer may train from it (refused only for want of credit) ...
    expect(answer.errors?.[0]).toMatchObject({
      extensions: { code: 'BAD_USER_INPUT' },
      message: expect.stringContaining('your credit has'),
    });
    // ... and with credit the run starts, and what it makes keeps the breed's terms.
    const credit = await creditHandle(env.client, env.taskQueue, person.handle, 'usd');
    await credit.executeUpdate(depositUpdate, {
      args: [{ amount: '500', currency: 'usd', reference: `credit-${target}` }],
    });
    const started = await person.gql(
      `mutation { startTrainingRun(base: "${w.paid}:main", repository: "${target}", maxCost: "1.00") { id } }`,
    );
    expect(started.errors).toBeUndefined();
    expect(
      await readRefusal(
        env.db,
        {
          role: 'trainer',
          account: {
            id: w.people.stranger.id,
            handle: w.people.stranger.handle,
            email: 'x@example.org',
            role: 'trainer',
          },
        },
        target,
      ),
    ).toMatchObject({
      status: 403,
      message: expect.stringContaining(`${target} holds content of the paid breed ${w.paid}`),
    });
    expect(await readRefusal(env.db, { role: 'public' }, target)).toMatchObject({ status: 401 });
    expect(
      await readRefusal(
        env.db,
        { role: 'trainer', account: { id: person.id, handle: person.handle, email: 'x@example.org', role: 'trainer' } },
        target,
      ),
    ).toBeUndefined();
  });
});

function all(status: number): Record<Who, number> {
  return { public: status, stranger: status, buyer: status, owner: status, operator: status };
}

async function anonymousGql(app: FastifyInstance, query: string) {
  const response = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ query }),
  });
  return response.json<{ errors?: Array<{ message: string; extensions?: { code?: string } }> }>();
}
