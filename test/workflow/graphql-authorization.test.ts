// The GraphQL API's authorization, mutation by mutation, from the schema itself: every Mutation field
// of the built schema must have a declared case below (a new mutation without one fails the suite,
// by name). Each case is called as the public, a signed-in trainer and an operator, with inputs that
// are valid for a caller who may make it: where the role is not met it is refused (UNAUTHENTICATED
// or FORBIDDEN, no data), and for each allowed role the call really succeeds (no error, data, and
// the change it promises is there), against the real parts: the Temporal dev server and worker, the
// PostgreSQL database, an OCI layout store and stripe-mock.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { publishCheckpoint } from '../../store/checkpoint';
import { creditHandle } from '../../platform/credit';
import { buildSchema } from '../../platform/graphql';
import { stripeClient } from '../../platform/stripe';
import { autonomyQuery, setAutonomyUpdate, tickUpdate } from '../../workflows/autonomy-api';
import { childrenQuery } from '../../workflows/child-api';
import type { trainingWorkflow } from '../../workflows/training';
import { type GraphQLAnswer, graphqlAs, signUpAccount, type TestAccount } from '../helpers/accounts';
import { startStripeMock } from '../helpers/stripe-mock';
import { eventually } from '../helpers/eventually';
import { testPlatform, testStripe } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { depositUpdate, statusQuery } from '../../workflows/budget-api';
import { updateBudget } from '../../temporal/budget-client';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import type { instanceWorkflow } from '../../workflows/instance';

jest.setTimeout(90_000);

type Role = 'anonymous' | 'trainer' | 'operator';
const ROLES: Role[] = ['anonymous', 'trainer', 'operator'];

interface Operation {
  query: string;
  variables?: Record<string, unknown>;
}

interface Case<Prepared = any> {
  allowed: Role[];
  /** Runs once, before any caller: what every call of this mutation needs (a thread, a decision waiting). */
  prepare?: () => Promise<Prepared>;
  /** The operation with inputs valid for `account` (a caller allowed to make it). */
  operation: (account: TestAccount, prepared: Prepared) => Operation | Promise<Operation>;
  /** What the allowed call must have done, beyond answering data without errors. */
  check?: (data: any, account: TestAccount, prepared: Prepared) => Promise<void>;
}

let env: TestEnvironment;
let app: FastifyInstance;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
const accounts = {} as Record<'trainer' | 'operator' | 'seller', TestAccount>;
let breed: string;
let threadId: string;
let instances: LocalInstanceRunner;

beforeAll(async () => {
  mock = await startStripeMock();
  instances = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'authz-instances-')),
    defaultCommand: [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')],
  });
  env = await testEnvironment({ instanceRunners: { local: instances } });
  await env.startWorker();
  germline = await env.startGermline(uniqueName('authz'));
  await updateBudget(germline.handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
  // The germline decides only when ticked, and parks every spawn for an operator.
  await updateBudget(germline.handle, setAutonomyUpdate, {
    tickIntervalSeconds: null,
    approvalThreshold: '500',
    rules: { purposes: ['tutor', 'painter'] },
  });
  await publish(`germline/${germline.name}`, 'head weights');
  app = await testPlatform(env, germline.name, {
    stripe: testStripe(stripeClient('sk_test_mock', mock.url), 'whsec_authz'),
    // 36.00 an hour: a cent per second of the tiny trainer.
    training: {
      taskQueue: env.taskQueue,
      ratePerGpuHour: 3600n,
      runner: 'local',
      maxDurationSeconds: 600,
      maxPreemptions: 1,
      maxGpus: 1,
    },
  });
  accounts.trainer = await signUpAccount(app, uniqueName('tina'));
  accounts.operator = await signUpAccount(app, uniqueName('olga'), { db: env.db });
  // Someone else's paid breed, with payouts set up, for buyBreed; and a thread of theirs, for comment.
  accounts.seller = await signUpAccount(app, uniqueName('sam'));
  breed = `trainers/${accounts.seller.handle}/painter`;
  await publish(breed, 'painter weights');
  expect(
    (
      await accounts.seller.gql(
        `mutation { publishBreed(repository: "${breed}", title: "Painter", price: "4.20") { price } }`,
      )
    ).errors,
  ).toBeUndefined();
  expect((await accounts.seller.gql('mutation { onboardPayouts(requestId: "setup") }')).errors).toBeUndefined();
  const thread = await accounts.seller.gql<{ startThread: { id: string } }>(
    `mutation { startThread(repository: "germline/${germline.name}", title: "Setup", body: "a thread to reply to") { id } }`,
  );
  threadId = thread.data!.startThread.id;
});

afterAll(async () => {
  await app?.close();
  for (const id of (await instances?.list()) ?? []) await instances.stop(id);
  await env?.close();
  await mock?.stop();
});

async function publish(repository: string, content: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'authz-'));
  writeFileSync(path.join(dir, 'notes.txt'), content);
  return publishCheckpoint(env.store, repository, dir, { tag: 'main' });
}

const unique = (prefix: string) => uniqueName(prefix).replace(/[^a-z0-9-]/g, '');
const status = () => germline.handle.query(statusQuery);

/** Credit for `account`, as a paid Checkout Session's webhook deposits it. */
async function credit(account: TestAccount, amount: string) {
  await updateBudget(await creditHandle(env.client, env.taskQueue, account.handle, 'usd'), depositUpdate, {
    amount,
    currency: 'usd',
    reference: unique('paid'),
  });
}

/** An exchange `account` had with a public instance of the germline's head, as the gateway records one. */
async function exchange(account: TestAccount): Promise<string> {
  const repository = `germline/${germline.name}`;
  const digest = (await env.store.getManifest(repository, 'main'))!.digest;
  const instance = unique('fb-inst');
  await env.db.instance.create({
    data: {
      id: instance,
      repository,
      reference: 'main',
      digest,
      payer: germline.handle.workflowId,
      visibility: 'public',
      runner: 'local',
      gpus: 1,
      ratePerGpuHour: 3600n,
      currency: 'usd',
      maxCost: 100n,
      idleTimeoutSeconds: 0,
      maxDurationSeconds: 60,
      state: 'stopped',
    },
  });
  const interaction = unique('fb-x');
  await env.db.interaction.create({
    data: {
      id: interaction,
      instanceId: instance,
      digest,
      callerHandle: account.handle,
      request: { messages: [{ role: 'user', content: 'hello' }] },
      completion: 'hi',
      latencyMs: 1,
    },
  });
  return interaction;
}

/** A proposal parked by a tick of the germline: the newest decision waiting for an operator. */
async function parkedDecision(): Promise<string> {
  const before = new Set((await germline.handle.query(autonomyQuery)).pending.map((p) => p.id));
  await germline.handle.executeUpdate(tickUpdate, { args: [] });
  const parked = (await germline.handle.query(autonomyQuery)).pending.filter((p) => !before.has(p.id));
  expect(parked).toHaveLength(1);
  return parked[0]!.id;
}

// Every mutation of the schema, declared: who may make it, a valid call, and what it must have done.
const CASES: Record<string, Case> = {
  createApiToken: {
    allowed: ['trainer', 'operator'],
    operation: () => ({ query: 'mutation { createApiToken(name: "authz") { token } }' }),
    check: async (data, account) => {
      const me = await app.inject({
        method: 'GET',
        url: '/auth/me',
        headers: { authorization: `Bearer ${data.createApiToken.token}` },
      });
      expect(me.json()).toMatchObject({ account: { handle: account.handle } });
    },
  },
  fork: {
    allowed: ['trainer', 'operator'],
    operation: (account) => ({
      query: 'mutation($from: String!, $to: String!) { fork(from: $from, to: $to) { repository digest } }',
      variables: { from: `germline/${germline.name}:main`, to: `trainers/${account.handle}/${unique('fork')}:main` },
    }),
    check: async (data) => {
      const main = (await env.store.getManifest(`germline/${germline.name}`, 'main'))!.digest;
      expect(data.fork.digest).toBe(main);
      expect((await env.store.getManifest(data.fork.repository, 'main'))?.digest).toBe(main);
    },
  },
  publishBreed: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      const repository = `trainers/${account.handle}/${unique('breed')}`;
      await publish(repository, `weights of ${repository}`);
      return {
        query:
          'mutation($repository: String!) { publishBreed(repository: $repository, title: "Breed", price: "2.50") { repository price owner } }',
        variables: { repository },
      };
    },
    check: async (data, account) => {
      expect(data.publishBreed).toMatchObject({ price: '250', owner: account.handle });
      expect(await env.db.breed.findUnique({ where: { repository: data.publishBreed.repository } })).toMatchObject({
        ownerId: account.id,
        price: 250n,
      });
    },
  },
  priceBreed: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      const repository = `trainers/${account.handle}/${unique('priced')}`;
      await publish(repository, `weights of ${repository}`);
      const listed = await account.gql(
        `mutation { publishBreed(repository: "${repository}", title: "Priced") { repository } }`,
      );
      expect(listed.errors).toBeUndefined();
      return {
        query:
          'mutation($repository: String!) { priceBreed(repository: $repository, inputPer1k: "0.002", outputPer1k: "0.006", licenceIncludesUse: false) { repository inputPricePer1k outputPricePer1k } }',
        variables: { repository },
      };
    },
    check: async (data) => {
      expect(data.priceBreed).toMatchObject({ inputPricePer1k: '0.002', outputPricePer1k: '0.006' });
      expect(await env.db.breed.findUnique({ where: { repository: data.priceBreed.repository } })).toMatchObject({
        inputPricePerMillion: 200n,
        outputPricePerMillion: 600n,
        licenceIncludesUse: false,
      });
    },
  },
  createSponsor: {
    allowed: ['trainer', 'operator'],
    operation: () => ({
      query: 'mutation($name: String!) { createSponsor(name: $name, title: "Acme") { name title dailyAllowance } }',
      variables: { name: unique('sponsor') },
    }),
    check: async (data, account) => {
      expect(data.createSponsor).toMatchObject({ title: 'Acme', dailyAllowance: '0' });
      expect(await env.db.sponsor.findUnique({ where: { name: data.createSponsor.name } })).toMatchObject({
        ownerId: account.id,
      });
    },
  },
  setSponsorGrant: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      const name = unique('grant');
      const made = await account.gql(`mutation { createSponsor(name: "${name}", title: "Grants") { name } }`);
      expect(made.errors).toBeUndefined();
      return {
        query:
          'mutation($name: String!, $domain: String!) { setSponsorGrant(name: $name, dailyAllowance: "0.25", eligibleDomain: $domain) { name dailyAllowance eligibleDomain } }',
        // Its own domain: no other suite's accounts (all at example.org) become eligible for it.
        variables: { name, domain: `${name}.example.org` },
      };
    },
    check: async (data) => {
      expect(await env.db.sponsor.findUnique({ where: { name: data.setSponsorGrant.name } })).toMatchObject({
        dailyAllowance: 25n,
        eligibleDomain: `${data.setSponsorGrant.name}.example.org`,
      });
    },
  },
  fundSponsor: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      const name = unique('fund');
      const made = await account.gql(`mutation { createSponsor(name: "${name}", title: "Funds") { name } }`);
      expect(made.errors).toBeUndefined();
      return {
        query: `mutation($name: String!) { fundSponsor(name: $name, amount: "50.00", requestId: "${unique('f')}") { id url } }`,
        variables: { name },
      };
    },
    check: async (data) =>
      expect(data.fundSponsor).toEqual({ id: expect.stringMatching(/^cs_/), url: expect.any(String) }),
  },
  payOutEarnings: {
    allowed: ['operator'],
    operation: () => ({ query: 'mutation { payOutEarnings { id handle amount state } }' }),
    check: async (data) => expect(Array.isArray(data.payOutEarnings)).toBe(true),
  },
  onboardPayouts: {
    allowed: ['trainer', 'operator'],
    operation: () => ({ query: `mutation { onboardPayouts(requestId: "${unique('o')}") }` }),
    check: async (data, account) => {
      expect(data.onboardPayouts).toMatch(/^https?:\/\//);
      expect((await env.db.account.findUniqueOrThrow({ where: { id: account.id } })).stripeAccountId).toMatch(/^acct_/);
    },
  },
  buyBreed: {
    allowed: ['trainer', 'operator'],
    operation: () => ({
      query: `mutation { buyBreed(repository: "${breed}", requestId: "${unique('b')}") { id amount fee } }`,
    }),
    check: async (data) =>
      expect(data.buyBreed).toEqual({ id: expect.stringMatching(/^cs_/), amount: '420', fee: '42' }),
  },
  startThread: {
    allowed: ['trainer', 'operator'],
    operation: () => ({
      query: `mutation { startThread(repository: "germline/${germline.name}", reference: "main", title: "${unique('t')}", body: "It wrote a parser.") { id title author } }`,
    }),
    check: async (data, account) => {
      expect(data.startThread.author).toBe(account.handle);
      expect(await env.db.thread.findUnique({ where: { id: data.startThread.id } })).toMatchObject({
        title: data.startThread.title,
        authorId: account.id,
      });
    },
  },
  comment: {
    allowed: ['trainer', 'operator'],
    operation: () => ({ query: `mutation { comment(threadId: "${threadId}", body: "Same here.") { id author } }` }),
    check: async (data, account) => {
      expect(data.comment.author).toBe(account.handle);
      expect(await env.db.comment.findUnique({ where: { id: data.comment.id } })).toMatchObject({
        threadId,
        authorId: account.id,
      });
    },
  },
  attachRecording: {
    allowed: ['trainer', 'operator'],
    operation: () => ({
      query: `mutation { attachRecording(repository: "germline/${germline.name}", reference: "main", title: "A session", transcript: "> hi\\nhello") { id author subjectDigest } }`,
    }),
    check: async (data, account) =>
      expect(data.attachRecording).toMatchObject({
        author: account.handle,
        subjectDigest: (await env.store.getManifest(`germline/${germline.name}`, 'main'))!.digest,
      }),
  },
  reportImage: {
    allowed: ['trainer', 'operator'],
    operation: () => ({
      query: `mutation { reportImage(repository: "germline/${germline.name}", reason: "authz") { id reporter } }`,
    }),
    check: async (data, account) => {
      expect(data.reportImage.reporter).toBe(account.handle);
      expect(await env.db.report.findUnique({ where: { id: data.reportImage.id } })).toMatchObject({
        reporterId: account.id,
      });
    },
  },
  fundCredit: {
    allowed: ['trainer', 'operator'],
    operation: () => ({ query: `mutation { fundCredit(amount: "5.00", requestId: "${unique('c')}") { id url } }` }),
    check: async (data) =>
      expect(data.fundCredit).toEqual({ id: expect.stringMatching(/^cs_/), url: expect.any(String) }),
  },
  startTrainingRun: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      // Credit to pay it: as a paid Checkout Session's webhook deposits it.
      await updateBudget(await creditHandle(env.client, env.taskQueue, account.handle, 'usd'), depositUpdate, {
        amount: '100',
        currency: 'usd',
        reference: unique('paid'),
      });
      return {
        query:
          'mutation($repository: String!) { startTrainingRun(repository: $repository, maxCost: "1.00") { id workflowId maxCost } }',
        variables: { repository: `trainers/${account.handle}/${unique('run')}` },
      };
    },
    check: async (data, account) => {
      expect(data.startTrainingRun.maxCost).toBe('100');
      const result = await env.client.workflow
        .getHandle<typeof trainingWorkflow>(data.startTrainingRun.workflowId)
        .result();
      expect(result).toMatchObject({ state: 'succeeded', payer: `credit/${account.handle}` });
    },
  },
  giveFeedback: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => ({
      query: `mutation { giveFeedback(interaction: "${await exchange(account)}", label: "bad", correction: "better") { id interactionId label correction } }`,
    }),
    check: async (data, account) => {
      expect(await env.db.feedback.findUnique({ where: { id: data.giveFeedback.id } })).toMatchObject({
        authorHandle: account.handle,
        label: 'bad',
        correction: 'better',
      });
    },
  },
  hideFeedback: {
    allowed: ['operator'],
    prepare: async () => {
      const given = await graphqlAs<{ giveFeedback: { id: string } }>(
        app,
        accounts.seller.token,
        `mutation { giveFeedback(interaction: "${await exchange(accounts.seller)}", label: "bad") { id } }`,
      );
      return given.data!.giveFeedback.id;
    },
    operation: (_account, id: string) => ({
      query: `mutation { hideFeedback(id: "${id}", reason: "spam") { id hidden } }`,
    }),
    check: async (data, account) => {
      expect(data.hideFeedback.hidden).toBe(true);
      expect(await env.db.feedback.findUnique({ where: { id: data.hideFeedback.id } })).toMatchObject({
        hiddenBy: account.handle,
        hiddenReason: 'spam',
      });
    },
  },
  buildDataset: {
    allowed: ['trainer', 'operator'],
    prepare: async () => {
      const given = await graphqlAs(
        app,
        accounts.seller.token,
        `mutation { giveFeedback(interaction: "${await exchange(accounts.seller)}", label: "good") { id } }`,
      );
      expect(given.errors).toBeUndefined();
    },
    operation: () => ({
      query: `mutation { buildDataset(image: "germline/${germline.name}:main", since: "1970-01-01") { repository digest records } }`,
    }),
    check: async (data) => {
      expect(data.buildDataset.records).toBeGreaterThan(0);
      expect(
        await env.db.dataset.findUnique({
          where: { repository_digest: { repository: data.buildDataset.repository, digest: data.buildDataset.digest } },
        }),
      ).not.toBeNull();
    },
  },
  launchInstance: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      await credit(account, '100');
      return {
        query: `mutation { launchInstance(image: "germline/${germline.name}:main", maxCost: "1.00", idleTimeoutSeconds: 0) { id workflowId } }`,
      };
    },
    check: async (data, account) => {
      const handle = env.client.workflow.getHandle<typeof instanceWorkflow>(data.launchInstance.workflowId);
      // It can be stopped at once; it ran for its owner, paid from their credit.
      const stopped = await graphqlAs(
        app,
        account.token,
        `mutation { stopInstance(id: "${data.launchInstance.id}") { state } }`,
      );
      expect(stopped.data).toEqual({ stopInstance: { state: 'stopped' } });
      expect(await handle.result()).toMatchObject({ owner: account.handle, payer: `credit/${account.handle}` });
    },
  },
  stopInstance: {
    allowed: ['trainer', 'operator'],
    operation: async (account) => {
      await credit(account, '100');
      const launched = await graphqlAs<{ launchInstance: { id: string } }>(
        app,
        account.token,
        `mutation { launchInstance(image: "germline/${germline.name}:main", maxCost: "1.00") { id } }`,
      );
      const id = launched.data!.launchInstance.id;
      return { query: `mutation { stopInstance(id: "${id}", reason: "authz") { id state reason } }` };
    },
    check: async (data, account) => {
      expect(data.stopInstance).toMatchObject({ state: 'stopped', reason: `stopped by ${account.handle}: authz` });
      expect(await env.db.instance.findUnique({ where: { id: data.stopInstance.id } })).toMatchObject({
        ownerHandle: account.handle,
      });
    },
  },
  setPolicy: {
    allowed: ['operator'],
    operation: () => ({
      query:
        'mutation { setPolicy(dailySpendCap: "900.00", perReservationCap: "none") { dailySpendCap perReservationCap } }',
    }),
    check: async (data) => {
      expect(data.setPolicy).toEqual({ dailySpendCap: '90000', perReservationCap: null });
      expect((await status()).policy).toEqual({ dailySpendCap: '90000', perReservationCap: null });
    },
  },
  promote: {
    allowed: ['operator'],
    prepare: async () => {
      const repository = `trainers/${accounts.trainer.handle}/${unique('promoted')}`;
      return { repository, digest: (await publish(repository, `better weights ${repository}`)).digest };
    },
    operation: (_account, { repository, digest }: { repository: string; digest: string }) => ({
      query: `mutation { promote(repository: "${repository}", reference: "${digest}") { digest } }`,
    }),
    check: async (data, _account, { digest }: { digest: string }) => {
      expect(data.promote.digest).toBe(digest);
      expect((await env.store.getManifest(`germline/${germline.name}`, 'main'))?.digest).toBe(digest);
    },
  },
  deposit: {
    allowed: ['operator'],
    prepare: async () => BigInt((await status()).deposited),
    operation: () => ({ query: `mutation { deposit(amount: "1.00", reference: "${unique('d')}") { deposited } }` }),
    check: async (data, _account, before: bigint) => {
      expect(data.deposit.deposited).toBe((before + 100n).toString());
      expect((await status()).deposited).toBe((before + 100n).toString());
    },
  },
  fundGermline: {
    allowed: ['operator'],
    operation: () => ({ query: `mutation { fundGermline(amount: "5.00", requestId: "${unique('f')}") { id url } }` }),
    check: async (data) =>
      expect(data.fundGermline).toEqual({ id: expect.stringMatching(/^cs_/), url: expect.any(String) }),
  },
  pauseGermline: {
    allowed: ['operator'],
    operation: () => ({ query: 'mutation { pauseGermline(reason: "authz") { paused } }' }),
    check: async (data) => {
      expect(data.pauseGermline).toEqual({ paused: true });
      expect((await status()).paused).toBe(true);
    },
  },
  resumeGermline: {
    allowed: ['operator'],
    operation: () => ({ query: 'mutation { resumeGermline { paused } }' }),
    check: async (data) => {
      expect(data.resumeGermline).toEqual({ paused: false });
      expect((await status()).paused).toBe(false);
    },
  },
  rejectDecision: {
    allowed: ['operator'],
    prepare: parkedDecision,
    operation: (_account, id: string) => ({
      query: `mutation { rejectDecision(id: "${id}", reason: "not now") { id outcome } }`,
    }),
    check: async (data, _account, id: string) => {
      expect(data.rejectDecision).toEqual({ id, outcome: 'rejected' });
      expect((await germline.handle.query(autonomyQuery)).pending.map((p) => p.id)).not.toContain(id);
    },
  },
  approveDecision: {
    allowed: ['operator'],
    prepare: parkedDecision,
    operation: (_account, id: string) => ({ query: `mutation { approveDecision(id: "${id}") { id outcome reason } }` }),
    check: async (data, _account, id: string) => {
      expect(data.approveDecision).toMatchObject({
        id,
        outcome: 'approved',
        reason: expect.stringContaining('spawned'),
      });
      expect((await germline.handle.query(childrenQuery)).map((c) => c.state)).toEqual(['active']);
    },
  },
  startProbe: {
    allowed: ['operator'],
    prepare: async () => {
      const repository = `trainers/${accounts.seller.handle}/${unique('probed')}`;
      return { repository, digest: (await publish(repository, 'probed weights')).digest };
    },
    operation: (_account, image: { repository: string; digest: string }) => ({
      query: `mutation { startProbe(image: "${image.repository}:main") { workflowId repository digest } }`,
    }),
    check: async (data, account, image: { repository: string; digest: string }) => {
      expect(data.startProbe).toEqual({
        workflowId: `probe/${image.repository}@${image.digest}`,
        repository: image.repository,
        digest: image.digest,
      });
      // Started by hand, recorded as the operator who asked (this worker runs no probes: it would end as an error after its retries).
      const probe = await eventually(
        async () => (await env.db.probe.findFirst({ where: { workflowId: data.startProbe.workflowId } })) ?? undefined,
        'the probe row',
      );
      expect(probe).toMatchObject({ trigger: 'manual', requestedBy: account.handle, digest: image.digest });
      await env.client.workflow.getHandle(data.startProbe.workflowId).terminate('the test is done with it');
    },
  },
  reviewImageFlag: {
    allowed: ['operator'],
    prepare: async () => {
      const repository = `trainers/${accounts.seller.handle}/${unique('flagged')}`;
      const image = { repository, digest: (await publish(repository, 'flagged weights')).digest };
      await env.db.imageFlag.create({
        data: {
          repository: image.repository,
          digest: image.digest,
          probeId: unique('probe'),
          state: 'pending',
          reason: 'asks for passwords',
        },
      });
      return image;
    },
    operation: (_account, image: { repository: string; digest: string }) => ({
      query: `mutation { reviewImageFlag(repository: "${image.repository}", digest: "${image.digest}", decision: CONFIRM, note: "seen it") { state reviewedBy blocking } }`,
    }),
    check: async (data, account) => {
      expect(data.reviewImageFlag).toEqual({ state: 'confirmed', reviewedBy: account.handle, blocking: true });
    },
  },
};

test('every mutation of the schema has a declared authorization case, and every case is a mutation of the schema', () => {
  const mutations = Object.keys(buildSchema().getMutationType()?.getFields() ?? {}).sort();
  const declared = Object.keys(CASES).sort();
  expect({
    withoutCase: mutations.filter((m) => !declared.includes(m)),
    notInSchema: declared.filter((d) => !mutations.includes(d)),
  }).toEqual({ withoutCase: [], notInSchema: [] });
});

/** The account whose valid inputs a caller uses: its own when it may make the call, else one that may. */
function inputsFor(role: Role, allowed: Role[]): TestAccount {
  if (role !== 'anonymous' && allowed.includes(role)) return accounts[role];
  return accounts[allowed.includes('trainer') ? 'trainer' : 'operator'];
}

const headersOf = (role: Role) => (role === 'anonymous' ? {} : accounts[role].token);

test.each(Object.keys(CASES))('%s: refused below its role, done for each role allowed', async (name) => {
  const declared = CASES[name]!;
  const prepared = await declared.prepare?.();
  // The refused callers first, with inputs that would be valid for an allowed one: the allowed call after them proves they changed nothing it needs.
  const order = [
    ...ROLES.filter((r) => !declared.allowed.includes(r)),
    ...ROLES.filter((r) => declared.allowed.includes(r)),
  ];
  for (const role of order) {
    const { query, variables } = await declared.operation(inputsFor(role, declared.allowed), prepared);
    const { status: httpStatus, ...answer } = await graphqlAs(app, headersOf(role), query, variables);
    const what = `${name} as ${role}`;
    if (!declared.allowed.includes(role)) {
      expect({ what, code: answer.errors?.[0]?.extensions?.code, data: answer.data?.[name] ?? null }).toEqual({
        what,
        code: role === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN',
        data: null,
      });
      continue;
    }
    expect({ what, httpStatus, errors: (answer as GraphQLAnswer).errors }).toEqual({
      what,
      httpStatus: 200,
      errors: undefined,
    });
    expect(answer.data?.[name]).toBeDefined();
    expect(answer.data?.[name]).not.toBeNull();
    await declared.check?.(answer.data, accounts[role as 'trainer' | 'operator'], prepared);
  }
});
