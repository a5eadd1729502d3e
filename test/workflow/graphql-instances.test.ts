// Hosted instances through the GraphQL API on the real engine: a trainer launches an instance of an
// image paid from their credit (the instance workflow, the local instance runner with a real process
// meeting the instance contract, the credit workflow, the OCI layout store, PostgreSQL), who sees
// which instance and its transcripts, who may stop it, and the launches refused before anything starts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { creditHandle } from '../../platform/credit';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { depositUpdate } from '../../workflows/budget-api';
import { graphqlAs, signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { entitlementId } from '../../platform/read-access';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(90_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let image: string;
let digest: string;
let paidBreed: string;
let operator: TestAccount;

interface InstanceView {
  id: string;
  state: string;
  image: string;
  digest: string | null;
  payer: string | null;
  visibility: string;
  owner: string | null;
  cost: string | null;
  billedSeconds: number | null;
  reason: string | null;
}

const INSTANCE_FIELDS = 'id state image digest payer visibility owner cost billedSeconds reason';

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-gql-instances-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const germline = await env.startGermline();
  image = `germline/${germline.name}:main`;
  digest = (await publish(`germline/${germline.name}`, `weights of ${germline.name}`)).digest;
  app = await testPlatform(env, germline.name, {
    // 36.00 an hour: a cent per GPU-second, so every charge is easy to check.
    training: {
      taskQueue: env.taskQueue,
      ratePerGpuHour: 3600n,
      runner: 'local',
      maxDurationSeconds: 600,
      maxPreemptions: 0,
      maxGpus: 2,
    },
  });
  operator = await signUpAccount(app, uniqueName('op'), { db: env.db });
  // Someone's paid breed, which a trainer who did not buy it may not run.
  const seller = await signUpAccount(app, uniqueName('sel'));
  paidBreed = `trainers/${seller.handle}/secret`;
  await publish(paidBreed, 'secret weights');
  const listed = await seller.gql(
    `mutation { publishBreed(repository: "${paidBreed}", title: "Secret", price: "9.99") { price } }`,
  );
  expect(listed.errors).toBeUndefined();
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

async function publish(repository: string, content: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'gql-instance-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(content));
  return publishCheckpoint(env.store, repository, dir, { tag: 'main' });
}

/** A trainer with `amount` minor units of credit, deposited as a paid Checkout Session's webhook does. */
async function trainerWithCredit(amount: string): Promise<TestAccount> {
  const account = await signUpAccount(app, uniqueName('tr'));
  await updateBudget(await creditHandle(env.client, env.taskQueue, account.handle, 'usd'), depositUpdate, {
    amount,
    currency: 'usd',
    reference: uniqueName('paid'),
  });
  return account;
}

const anonymous = <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) =>
  graphqlAs<T>(app, {}, query, variables);

async function launch(account: TestAccount, visibility: 'private' | 'public'): Promise<string> {
  const answer = await account.gql<{ launchInstance: { id: string; workflowId: string } }>(
    'mutation($image: String!, $visibility: String!) { launchInstance(image: $image, visibility: $visibility, maxCost: "5.00") { id workflowId } }',
    { image, visibility },
  );
  expect(answer.errors).toBeUndefined();
  const launched = answer.data!.launchInstance;
  expect(launched.workflowId).toBe(`instance/${launched.id}`);
  expect(launched.id.startsWith(`${account.handle}-`)).toBe(true);
  return launched.id;
}

/** The instance as `account` sees it through `instance(id)`, once it is in `state`. */
const reach = (account: TestAccount, id: string, state: string) =>
  eventually(
    async () => {
      const answer = await account.gql<{ instance: InstanceView | null }>(
        `query($id: String!) { instance(id: $id) { ${INSTANCE_FIELDS} } }`,
        { id },
      );
      return answer.data?.instance?.state === state ? answer.data.instance : undefined;
    },
    `instance ${id} to be ${state}`,
    30_000,
  );

const listed = async (query: (q: string) => Promise<{ data?: { instances: { id: string }[] } | null }>) =>
  ((await query('{ instances { id } }')).data?.instances ?? []).map((i) => i.id);

test('a trainer launches instances paid from their credit; who sees, reads and stops which; the owner stops them and is charged', async () => {
  const tia = await trainerWithCredit('2000');
  const stranger = await signUpAccount(app, uniqueName('str'));
  const mine = await launch(tia, 'private');
  const shown = await launch(tia, 'public');
  // Seen as soon as it is launched, before its workflow prepared it.
  const launched = await tia.gql<{ instance: InstanceView }>(`{ instance(id: "${mine}") { id image owner } }`);
  expect(launched).toEqual({ data: { instance: { id: mine, image, owner: tia.handle } } });

  const ready = await reach(tia, mine, 'ready');
  expect(ready).toEqual({
    id: mine,
    state: 'ready',
    image,
    digest,
    payer: `credit/${tia.handle}`,
    visibility: 'private',
    owner: tia.handle,
    cost: expect.any(String),
    billedSeconds: expect.any(Number),
    reason: null,
  });
  await reach(tia, shown, 'ready');
  expect(await listed((q) => tia.gql(q))).toEqual(expect.arrayContaining([mine, shown]));

  // A stranger and the public see the public instance, not the private one (it is not found), nor its money.
  expect(await listed((q) => stranger.gql(q))).toContain(shown);
  expect(await listed((q) => stranger.gql(q))).not.toContain(mine);
  expect(await listed(anonymous)).toContain(shown);
  expect(await listed(anonymous)).not.toContain(mine);
  const hidden = await stranger.gql(`{ instance(id: "${mine}") { id } }`);
  expect(hidden).toMatchObject({ data: { instance: null }, errors: [{ extensions: { code: 'NOT_FOUND' } }] });
  expect((await anonymous(`{ instance(id: "${mine}") { id } }`)).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const publicView = await anonymous<{ instance: InstanceView }>(`{ instance(id: "${shown}") { ${INSTANCE_FIELDS} } }`);
  expect(publicView.errors).toBeUndefined();
  expect(publicView.data!.instance).toMatchObject({ id: shown, owner: tia.handle, payer: null, cost: null });
  // An operator sees every instance, and its money.
  expect(await listed((q) => operator.gql(q))).toEqual(expect.arrayContaining([mine, shown]));
  expect((await operator.gql(`{ instance(id: "${mine}") { payer } }`)).data).toEqual({
    instance: { payer: `credit/${tia.handle}` },
  });

  // Transcripts are private to the one who pays, public instance or not.
  for (const [n, instanceId] of [
    [1, mine],
    [2, shown],
  ] as const) {
    await env.db.interaction.create({
      data: {
        id: uniqueName('ix'),
        instanceId,
        digest,
        callerHandle: n === 1 ? tia.handle : null,
        visitorId: n === 1 ? null : 'visitor-hash',
        request: { model: image, messages: [{ role: 'user', content: `hello ${n}` }] },
        completion: `hello ${n}`,
        usage: { prompt_tokens: 7, completion_tokens: 7, total_tokens: 14 },
        latencyMs: 12,
      },
    });
  }
  const transcript = await tia.gql<{ interactions: Record<string, unknown>[] }>(
    `{ interactions(instanceId: "${mine}") { instanceId digest caller messages completion promptTokens completionTokens totalTokens latencyMs } }`,
  );
  expect(transcript).toEqual({
    data: {
      interactions: [
        {
          instanceId: mine,
          digest,
          caller: tia.handle,
          messages: JSON.stringify([{ role: 'user', content: 'hello 1' }]),
          completion: 'hello 1',
          promptTokens: 7,
          completionTokens: 7,
          totalTokens: 14,
          latencyMs: 12,
        },
      ],
    },
  });
  const nested = await tia.gql<{ instance: { interactions: { caller: string | null }[] } }>(
    `{ instance(id: "${shown}") { interactions(limit: 5) { caller completion } } }`,
  );
  expect(nested).toEqual({ data: { instance: { interactions: [{ caller: null, completion: 'hello 2' }] } } });
  expect((await operator.gql(`{ interactions(instanceId: "${shown}") { completion } }`)).data).toEqual({
    interactions: [{ completion: 'hello 2' }],
  });
  expect((await stranger.gql(`{ interactions(instanceId: "${shown}") { completion } }`)).errors?.[0]).toMatchObject({
    extensions: { code: 'FORBIDDEN' },
  });
  expect((await stranger.gql(`{ interactions(instanceId: "${mine}") { completion } }`)).errors?.[0]).toMatchObject({
    extensions: { code: 'NOT_FOUND' },
  });
  expect((await anonymous(`{ instance(id: "${shown}") { interactions { completion } } }`)).errors?.[0]).toMatchObject({
    extensions: { code: 'UNAUTHENTICATED' },
  });

  // Stopping: the public must sign in, a stranger may not (a private one is not even found), its owner may.
  const stop = 'mutation($id: String!) { stopInstance(id: $id, reason: "done") { id state } }';
  expect((await anonymous(stop, { id: shown })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect((await stranger.gql(stop, { id: shown })).errors?.[0]).toMatchObject({
    extensions: { code: 'FORBIDDEN' },
    message: `only its owner or an operator may stop instance ${shown}`,
  });
  expect((await stranger.gql(stop, { id: mine })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  expect((await tia.gql<{ instance: InstanceView }>(`{ instance(id: "${shown}") { state } }`)).data).toEqual({
    instance: { state: 'ready' },
  });

  const stopped: InstanceView[] = [];
  for (const [who, id] of [
    [tia, mine],
    [operator, shown],
  ] as const) {
    const answer = await who.gql<{ stopInstance: InstanceView }>(
      `mutation($id: String!) { stopInstance(id: $id, reason: "done") { ${INSTANCE_FIELDS} } }`,
      { id },
    );
    expect(answer.errors).toBeUndefined();
    const view = answer.data!.stopInstance;
    expect(view).toMatchObject({ id, state: 'stopped', reason: `stopped by ${who.handle}: done` });
    // One cent per GPU-second of the one GPU, for each second it was ready.
    expect(view.billedSeconds).toBeGreaterThanOrEqual(1);
    expect(BigInt(view.cost!)).toBe(BigInt(view.billedSeconds!));
    stopped.push(view);
  }
  // Stopping again answers the stopped instance; ended instances are listed only when asked for.
  expect((await tia.gql(stop, { id: mine })).data).toEqual({ stopInstance: { id: mine, state: 'stopped' } });
  expect(await listed((q) => tia.gql(q))).not.toContain(mine);
  const ended = await tia.gql<{ instances: { id: string; cost: string }[] }>(
    '{ instances(includeEnded: true) { id state cost } }',
  );
  expect(ended.data!.instances).toEqual(
    expect.arrayContaining(stopped.map((s) => ({ id: s.id, state: 'stopped', cost: s.cost }))),
  );

  // The credit paid exactly what the instances cost, and holds nothing more.
  const spent = stopped.reduce((sum, s) => sum + BigInt(s.cost!), 0n);
  expect((await tia.gql('{ myCredit { deposited spent reserved available } }')).data).toEqual({
    myCredit: { deposited: '2000', spent: spent.toString(), reserved: '0', available: (2000n - spent).toString() },
  });
});

test('launches refused before anything starts: the public, an unknown image, a paid breed not bought, bad numbers, no credit', async () => {
  const ugo = await trainerWithCredit('1000');
  const broke = await signUpAccount(app, uniqueName('brk'));
  const launchAs = (
    who: TestAccount | 'anonymous',
    args: { image?: string; maxCost?: string; gpus?: number; visibility?: string },
  ) => {
    const query =
      'mutation($image: String!, $maxCost: String!, $gpus: Int, $visibility: String) { launchInstance(image: $image, maxCost: $maxCost, gpus: $gpus, visibility: $visibility) { id } }';
    const variables = { image, maxCost: '1.00', ...args };
    return who === 'anonymous' ? anonymous(query, variables) : who.gql(query, variables);
  };
  // A buyer of the paid breed may read it, so may run it, but not for everyone.
  const buyer = await trainerWithCredit('1000');
  await env.db.entitlement.create({
    data: {
      id: entitlementId(buyer.id, paidBreed),
      accountId: buyer.id,
      repository: paidBreed,
      checkoutSessionId: uniqueName('cs'),
      amount: 999n,
      fee: 99n,
    },
  });
  const count = () =>
    env.db.instance.count({ where: { ownerHandle: { in: [ugo.handle, broke.handle, buyer.handle] } } });

  const refusals: Array<[string, Awaited<ReturnType<typeof launchAs>>, string, RegExp]> = [
    ['the public', await launchAs('anonymous', {}), 'UNAUTHENTICATED', /sign in/],
    [
      'an unknown image',
      await launchAs(ugo, { image: 'germline/nothing-here:main' }),
      'NOT_FOUND',
      /germline\/nothing-here/,
    ],
    [
      'an image without a tag',
      await launchAs(ugo, { image: 'germline/nothing-here' }),
      'BAD_USER_INPUT',
      /tag or digest/,
    ],
    [
      'a paid breed not bought',
      await launchAs(ugo, { image: `${paidBreed}:main` }),
      'FORBIDDEN',
      new RegExp(`you may not run ${paidBreed}: .*buy ${paidBreed} on the marketplace`),
    ],
    [
      'a public instance of a paid breed by its buyer',
      await launchAs(buyer, { image: `${paidBreed}:main`, visibility: 'public' }),
      'FORBIDDEN',
      new RegExp(`would give away the paid breed ${paidBreed}: launch it private`),
    ],
    ['a zero maxCost', await launchAs(ugo, { maxCost: '0' }), 'BAD_USER_INPUT', /maxCost: .*zero/],
    ['a negative maxCost', await launchAs(ugo, { maxCost: '-1.00' }), 'BAD_USER_INPUT', /maxCost: .*negative/],
    ['a maxCost that is no number', await launchAs(ugo, { maxCost: 'lots' }), 'BAD_USER_INPUT', /not a number/],
    ['1000 GPUs', await launchAs(ugo, { gpus: 1000 }), 'BAD_USER_INPUT', /^gpus is 1 to 2$/],
    ['0 GPUs', await launchAs(ugo, { gpus: 0 }), 'BAD_USER_INPUT', /^gpus is 1 to 2$/],
    ['an unknown visibility', await launchAs(ugo, { visibility: 'friends' }), 'BAD_USER_INPUT', /private or public/],
    ['no credit', await launchAs(broke, {}), 'BAD_USER_INPUT', /0\.00 USD available: add credit/],
  ];
  for (const [what, answer, code, message] of refusals) {
    expect({ what, code: answer.errors?.[0]?.extensions?.code, data: answer.data?.launchInstance ?? null }).toEqual({
      what,
      code,
      data: null,
    });
    expect(answer.errors![0]!.message).toMatch(message);
  }
  // A listing is bounded too: a page of 1 to 500, or a clear refusal.
  for (const limit of [0, -1, 100_000]) {
    const listed = await ugo.gql(`{ instances(limit: ${limit}) { id } }`);
    expect(listed.errors?.[0]).toMatchObject({
      message: 'limit is 1 to 500',
      extensions: { code: 'BAD_USER_INPUT' },
    });
  }
  // The same trainer's valid launch is recorded as it is answered (and can be stopped at once).
  const valid = await launchAs(ugo, {});
  expect(valid.errors).toBeUndefined();
  const id = (valid.data as { launchInstance: { id: string } }).launchInstance.id;
  expect(await count()).toBe(1);
  const stopped = await ugo.gql(`mutation { stopInstance(id: "${id}") { state } }`);
  expect(stopped).toEqual({ data: { stopInstance: { state: 'stopped' } } });
});
