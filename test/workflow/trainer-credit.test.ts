// A trainer trains on their own credit: credit bought through Stripe Checkout (stripe-mock, webhooks
// signed as Stripe signs them) lands in credit/<handle>, a budget workflow on the real dev server;
// a run asked for through the API reserves from it, trains the real tiny trainer with the local
// runner, publishes under trainers/<handle>/, and settles its real cost against the credit.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import { publishCheckpoint } from '../../store/checkpoint';
import { CREDIT_KIND, stripeClient } from '../../platform/stripe';
import type { trainingWorkflow } from '../../workflows/training';
import {
  deliverWebhook,
  paidCheckoutEvent,
  recordRequests,
  type SentRequest,
  startStripeMock,
} from '../helpers/stripe-mock';
import { type GraphQLAnswer, signUpAccount } from '../helpers/accounts';
import { testPlatform, testStripe } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const WEBHOOK_SECRET = 'whsec_test_credit';

let env: TestEnvironment;
let app: FastifyInstance;
let stripe: Stripe;
let mock: Awaited<ReturnType<typeof startStripeMock>>;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
let sent: SentRequest[];

jest.setTimeout(120_000);

beforeAll(async () => {
  mock = await startStripeMock();
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  const dir = mkdtempSync(path.join(tmpdir(), 'credit-base-'));
  writeFileSync(path.join(dir, 'notes.txt'), 'the germline head');
  await publishCheckpoint(env.store, `germline/${germline.name}`, dir, { tag: 'main' });
  stripe = stripeClient('sk_test_mock', mock.url);
  sent = recordRequests(stripe);
  app = await testPlatform(env, germline.name, {
    stripe: testStripe(stripe, WEBHOOK_SECRET),
    // 36.00 an hour: a cent per second of the tiny trainer, so its real cost is small but not zero.
    training: {
      taskQueue: env.taskQueue,
      ratePerGpuHour: 3600n,
      runner: 'local',
      maxDurationSeconds: 600,
      maxPreemptions: 1,
      maxGpus: 2,
    },
  });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
  await mock?.stop();
});

const trainer = () => signUpAccount(app, uniqueName('tr'));

const paidCredit = (eventId: string, handle: string, amount: number) =>
  deliverWebhook(app, stripe, WEBHOOK_SECRET, paidCheckoutEvent(eventId, amount, { kind: CREDIT_KIND, handle }));

test('credit bought through Checkout pays a training run; the run publishes under the trainer and settles its real cost', async () => {
  const tia = await trainer();
  const checkout = await tia.gql('mutation { fundCredit(amount: "20.00", requestId: "req-1") { id url } }');
  expect(checkout.data).toEqual({ fundCredit: { id: expect.stringMatching(/^cs_/), url: expect.any(String) } });
  expect(sent.filter((r) => r.idempotencyKey?.startsWith(`${CREDIT_KIND}/${tia.id}/`))).toEqual([
    { path: '/v1/checkout/sessions', idempotencyKey: `${CREDIT_KIND}/${tia.id}/req-1` },
  ]);

  const eventId = `evt_${uniqueName('credit').replace(/-/g, '')}`;
  for (let i = 0; i < 3; i++) expect((await paidCredit(eventId, tia.handle, 2000)).statusCode).toBe(200);
  expect((await tia.gql('{ myCredit { deposited available } }')).data).toEqual({
    myCredit: { deposited: '2000', available: '2000' },
  });

  const started = await tia.gql(
    'mutation($base: String!, $repo: String!) { startTrainingRun(base: $base, repository: $repo, maxCost: "5.00") { id workflowId maxCost } }',
    { base: `germline/${germline.name}:main`, repo: `trainers/${tia.handle}/tuned` },
  );
  expect(started.errors).toBeUndefined();
  const run = (started.data as unknown as { startTrainingRun: { id: string; workflowId: string; maxCost: string } })
    .startTrainingRun;
  expect(run.maxCost).toBe('500');
  const result = await env.client.workflow.getHandle<typeof trainingWorkflow>(run.workflowId).result();
  expect(result).toMatchObject({ state: 'succeeded', payer: `credit/${tia.handle}` });
  expect(await env.store.listTags(`trainers/${tia.handle}/tuned`)).toContain('main');

  const cost = BigInt(result.cost!);
  expect(cost).toBeGreaterThan(0n);
  const credit = (await tia.gql('{ myCredit { deposited spent reserved available } }')).data as unknown as {
    myCredit: Record<string, string>;
  };
  expect(credit.myCredit).toEqual({
    deposited: '2000',
    spent: cost.toString(),
    reserved: '0',
    available: (2000n - cost).toString(),
  });
  // The germline paid nothing for it.
  expect(await env.db.trainingRun.findUnique({ where: { id: run.id } })).toMatchObject({
    payer: `credit/${tia.handle}`,
    cost,
  });
});

test('a run the credit cannot pay, a branch outside your own, an unknown base and too many GPUs are refused with the reason', async () => {
  const ugo = await trainer();
  const repo = `trainers/${ugo.handle}/x`;
  const broke = await ugo.gql(
    'mutation($repo: String!) { startTrainingRun(repository: $repo, maxCost: "1.00") { id } }',
    { repo },
  );
  expect(broke.errors?.[0]).toMatchObject({
    extensions: { code: 'BAD_USER_INPUT' },
    message:
      'your credit has 0.00 USD available and the run may cost up to 1.00 USD: add credit (fundCredit) or lower maxCost',
  });
  const elsewhere = await ugo.gql(
    'mutation { startTrainingRun(repository: "trainers/someone/x", maxCost: "1.00") { id } }',
  );
  expect(elsewhere.errors?.[0]).toMatchObject({
    extensions: { code: 'FORBIDDEN' },
    message: `your runs publish only under trainers/${ugo.handle}/, not trainers/someone/x`,
  });
  const noBase = await ugo.gql(
    'mutation($repo: String!) { startTrainingRun(base: "germline/nothing-here:main", repository: $repo, maxCost: "1.00") { id } }',
    { repo },
  );
  expect(noBase.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  const gpus = await ugo.gql(
    'mutation($repo: String!) { startTrainingRun(repository: $repo, maxCost: "1.00", gpus: 3) { id } }',
    { repo },
  );
  expect(gpus.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' }, message: 'gpus is 1 to 2' });
  const publicCaller = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json' },
    payload: { query: '{ myCredit { available } }' },
  });
  expect(publicCaller.json<GraphQLAnswer>().errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
});
