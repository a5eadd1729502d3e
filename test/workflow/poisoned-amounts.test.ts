// Poisoned amounts: an amount above the most one amount may be (MAX_MINOR_UNITS in workflows/money.ts,
// 10^15 minor units) is refused at every entry point with a message naming the limit, and nothing
// behind it changes or hangs: the germline's updates from a plain Temporal client (validators), the
// children's and autonomy's updates, the GraphQL API, and the Stripe webhook. (The CLI: test/e2e/cli-amounts.test.ts.)
import { WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { journalBalances, reconcile } from '../../activities/journal';
import { CREDIT_KIND, FUNDING_KIND, PURCHASE_KIND, stripeClient } from '../../platform/stripe';
import { autonomyQuery, setAutonomyUpdate } from '../../workflows/autonomy-api';
import { childrenQuery, spawnChildUpdate } from '../../workflows/child-api';
import { graphqlAs, signUpAccount, type TestAccount } from '../helpers/accounts';
import { budgetRefusal } from '../helpers/budget';
import { eventually } from '../helpers/eventually';
import { deliverWebhook, paidCheckoutEvent } from '../helpers/stripe-mock';
import { testPlatform, testStripe } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import {
  depositUpdate,
  ledgerQuery,
  reserveUpdate,
  setPolicyUpdate,
  settleUpdate,
  statusQuery,
} from '../../workflows/budget-api';
import { germlineWorkflowId, creditWorkflowId } from '../../workflows/names';

const MAX = '1000000000000000';
const POISON = '100000000000000000000'; // 10^20 minor units: past BIGINT's 9.2 * 10^18
const LIMIT_IN_MINOR_UNITS =
  'above the most one amount may be (1,000,000,000,000,000 minor units, 10,000,000,000,000.00 USD)';
const LIMIT_IN_USD = 'above the most one amount may be (10,000,000,000,000.00 USD)';
const WEBHOOK_SECRET = 'whsec_test_poisoned';

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

/** A germline, reached through a plain Temporal client handle (no project client code in between). */
async function plainGermline(): Promise<{ name: string; handle: WorkflowHandle }> {
  const { name } = await env.startGermline(uniqueName('poison'));
  return { name, handle: env.client.workflow.getHandle(germlineWorkflowId(name)) };
}

const depositOf = (handle: WorkflowHandle, amount: string, reference: string) =>
  handle.executeUpdate(depositUpdate, { args: [{ amount, currency: 'usd', reference }] });

/** The journal books every accepted change (nothing stuck behind a poisoned one) and agrees with the workflow. */
async function expectBooksAgree(name: string, handle: WorkflowHandle): Promise<void> {
  const status = await eventually(async () => {
    const now = await handle.query(statusQuery);
    return now.journalPending === 0 ? now : undefined;
  }, `the journal of ${name} to book every change`);
  expect(status.journalFailure).toBeUndefined();
  expect(reconcile(status, await journalBalances(env.db, name)).agrees).toBe(true);
}

describe('the germline, from a plain Temporal client', () => {
  test('a deposit of 10^20 minor units is refused by the validator; the next deposit is booked and the books reconcile', async () => {
    const { name, handle } = await plainGermline();
    const refused = await budgetRefusal(depositOf(handle, POISON, 'poison'));
    expect(refused).toEqual({ type: 'AboveMaximum', message: `amount "${POISON}" is ${LIMIT_IN_MINOR_UNITS}` });
    // A refused update leaves no trace: not in the ledger, and its reference is still free.
    expect(await handle.query(ledgerQuery)).toEqual([]);

    expect(await depositOf(handle, '1250', 'after')).toMatchObject({ duplicate: false, balance: '1250' });
    expect(await depositOf(handle, '100', 'poison')).toMatchObject({ duplicate: false, balance: '1350' });
    await expectBooksAgree(name, handle);
  });

  test('reserve, settle and policy caps above the maximum are refused; the budget keeps working', async () => {
    const { name, handle } = await plainGermline();
    await depositOf(handle, '10000', 'seed');
    const { reservationId } = await handle.executeUpdate(reserveUpdate, {
      args: [{ amount: '4000', ref: 'job', purpose: 'training run' }],
    });
    const refusals = await Promise.all([
      budgetRefusal(handle.executeUpdate(reserveUpdate, { args: [{ amount: POISON, ref: 'poison', purpose: 'p' }] })),
      budgetRefusal(handle.executeUpdate(settleUpdate, { args: [{ reservationId, actual: POISON }] })),
      budgetRefusal(handle.executeUpdate(setPolicyUpdate, { args: [{ dailySpendCap: POISON }] })),
      budgetRefusal(handle.executeUpdate(setPolicyUpdate, { args: [{ perReservationCap: '1000000000000001' }] })),
    ]);
    for (const refused of refusals) {
      expect(refused.type).toBe('AboveMaximum');
      expect(refused.message).toContain(LIMIT_IN_MINOR_UNITS);
    }
    expect(await handle.executeUpdate(settleUpdate, { args: [{ reservationId, actual: '3000' }] })).toMatchObject({
      spent: '3000',
      released: '1000',
    });
    await expectBooksAgree(name, handle);
  });

  test('the maximum is booked (the journal holds it); one more cent in total is refused, naming the limit', async () => {
    const { name, handle } = await plainGermline();
    await depositOf(handle, '999999999999000', 'almost all');
    expect(await depositOf(handle, '1000', 'the last ten')).toMatchObject({ balance: MAX });
    const over = await budgetRefusal(depositOf(handle, '1', 'one more'));
    expect(over.type).toBe('AboveMaximum');
    expect(over.message).toContain(`above the most one budget may take in (10,000,000,000,000.00 USD)`);
    const { reservationId } = await handle.executeUpdate(reserveUpdate, {
      args: [{ amount: MAX, ref: 'all', purpose: 'everything' }],
    });
    await handle.executeUpdate(settleUpdate, { args: [{ reservationId, actual: MAX }] });
    expect(await handle.query(statusQuery)).toMatchObject({ deposited: MAX, spent: MAX, available: '0' });
    await expectBooksAgree(name, handle);
  });

  test("children and autonomy: a spawn's allowance and the autonomy's caps above the maximum are refused naming it", async () => {
    const { handle } = await plainGermline();
    await depositOf(handle, '10000', 'seed');
    const spawn = await budgetRefusal(
      handle.executeUpdate(spawnChildUpdate, { args: [{ name: 'coder', allowance: POISON, purpose: 'programming' }] }),
    );
    expect(spawn.type).toBe('GuardrailRefused');
    expect(spawn.message).toContain(`valid-proposal: the amount "${POISON}" is ${LIMIT_IN_MINOR_UNITS}`);
    expect(await handle.query(childrenQuery)).toEqual([]);

    const { limits, decider } = await handle.query(autonomyQuery);
    for (const change of [
      { perChildAllowanceCap: POISON },
      { approvalThreshold: '1000000000000001' },
      { rules: { runCost: POISON } },
    ]) {
      const refused = await budgetRefusal(handle.executeUpdate(setAutonomyUpdate, { args: [change] }));
      expect(refused.type).toBe('InvalidRequest');
      expect(refused.message).toContain(LIMIT_IN_MINOR_UNITS);
    }
    expect(await handle.query(autonomyQuery)).toMatchObject({ limits, decider });
    // In the right form but malformed is still answered in the autonomy's own words.
    expect(
      (await budgetRefusal(handle.executeUpdate(setAutonomyUpdate, { args: [{ perChildAllowanceCap: '12.50' }] })))
        .message,
    ).toBe('perChildAllowanceCap is whole minor units as a string (e.g. "5000"), or null for none');
  });
});

describe('the platform: GraphQL and the Stripe webhook', () => {
  let app: FastifyInstance;
  let germline: { name: string; handle: WorkflowHandle };
  let operator: TestAccount;
  let trainer: TestAccount;
  const logLines: string[] = [];
  const stripe = stripeClient('sk_test_unused', 'http://127.0.0.1:9'); // never called: amounts are refused first

  beforeAll(async () => {
    germline = await plainGermline();
    await depositOf(germline.handle, '5000', 'seed');
    app = await testPlatform(env, germline.name, {
      logger: pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) }),
      stripe: testStripe(stripe, WEBHOOK_SECRET),
      training: {
        taskQueue: env.taskQueue,
        ratePerGpuHour: 360n,
        runner: 'local',
        maxDurationSeconds: 600,
        maxPreemptions: 0,
        maxGpus: 1,
      },
    });
    operator = await signUpAccount(app, uniqueName('op'), { db: env.db });
    trainer = await signUpAccount(app, uniqueName('tr'));
  });

  afterAll(async () => {
    await app?.close();
  });

  test('a deposit of 100000000000000000.00 is BAD_USER_INPUT naming the limit, and the germline is unchanged', async () => {
    const before = await germline.handle.query(statusQuery);
    const { status, errors, data } = await graphqlAs(
      app,
      operator.token,
      'mutation { deposit(amount: "100000000000000000.00", reference: "poison") { available } }',
    );
    expect(status).toBe(200);
    expect(data).toEqual({ deposit: null });
    expect(errors).toEqual([
      expect.objectContaining({
        message: `amount: amount "100000000000000000.00" is ${LIMIT_IN_USD}`,
        extensions: { code: 'BAD_USER_INPUT' },
      }),
    ]);
    expect(await germline.handle.query(statusQuery)).toEqual(before);
  });

  test.each<[string, () => TestAccount, string]>([
    ['setPolicy', () => operator, 'mutation { setPolicy(dailySpendCap: "100000000000000000.00") { dailySpendCap } }'],
    [
      'fundGermline',
      () => operator,
      'mutation { fundGermline(amount: "100000000000000000.00", requestId: "r1") { id } }',
    ],
    ['fundCredit', () => trainer, 'mutation { fundCredit(amount: "100000000000000000.00", requestId: "r1") { id } }'],
    [
      'startTrainingRun',
      () => trainer,
      'mutation { startTrainingRun(repository: "trainers/x/y", maxCost: "100000000000000000.00") { id } }',
    ],
    [
      'publishBreed',
      () => trainer,
      'mutation { publishBreed(repository: "trainers/HANDLE/coder", title: "Coder", price: "100000000000000000.00") { repository } }',
    ],
  ])('%s: an amount above the maximum is BAD_USER_INPUT naming the limit', async (_name, caller, query) => {
    const { errors } = await graphqlAs(app, caller().token, query.replace('HANDLE', trainer.handle));
    expect(errors?.[0]).toMatchObject({
      extensions: { code: 'BAD_USER_INPUT' },
      message: expect.stringContaining(`amount "100000000000000000.00" is ${LIMIT_IN_USD}`),
    });
  });

  test('a refused credit purchase starts no credit; 200,000 digits are refused without being echoed', async () => {
    await expect(env.client.workflow.getHandle(creditWorkflowId(trainer.handle)).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
    const { errors } = await graphqlAs(
      app,
      operator.token,
      'mutation($amount: String!) { deposit(amount: $amount, reference: "huge") { available } }',
      { amount: '9'.repeat(200_000) },
    );
    expect(errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(errors?.[0]?.message).toMatch(
      /is too long to be an amount: at most 40 characters and 10,000,000,000,000.00 USD$/,
    );
    expect(errors?.[0]?.message.length).toBeLessThan(200);
  });

  test.each([
    ['funding of the germline', () => ({ kind: FUNDING_KIND, germline: germline.name })],
    ['trainer credit', () => ({ kind: CREDIT_KIND, handle: trainer.handle })],
    [
      'breed purchase',
      () => ({ kind: PURCHASE_KIND, repository: `trainers/${trainer.handle}/coder`, buyer: operator.id, fee: '10' }),
    ],
  ])(
    'Stripe: a paid %s above the maximum is recorded as refused, logged, answered 200 and never retried',
    async (_name, metadata) => {
      const before = await germline.handle.query(statusQuery);
      const id = `evt_${uniqueName('poison').replace(/-/g, '')}`;
      const payload = paidCheckoutEvent(id, 1e20, metadata());
      // 200: Stripe redelivers any other answer for days, and no redelivery can make this amount bookable.
      const first = await deliverWebhook(app, stripe, WEBHOOK_SECRET, payload);
      expect(first.statusCode).toBe(200);
      const recorded = await env.db.stripeEvent.findUnique({ where: { id } });
      expect(recorded?.outcome).toBe(
        `refused by checkout session cs_${id}: amount_total "${POISON}" is ${LIMIT_IN_MINOR_UNITS}`,
      );
      expect(logLines.some((line) => line.includes(id) && line.includes('a payment was refused'))).toBe(true);
      const again = await deliverWebhook(app, stripe, WEBHOOK_SECRET, payload);
      expect(again.json()).toEqual({ received: true, duplicate: true });
      // Nothing was booked, granted or started.
      expect(await germline.handle.query(statusQuery)).toEqual(before);
      expect(await env.db.entitlement.count({ where: { checkoutSessionId: `cs_${id}` } })).toBe(0);
      await expect(env.client.workflow.getHandle(creditWorkflowId(trainer.handle)).describe()).rejects.toBeInstanceOf(
        WorkflowNotFoundError,
      );
    },
  );

  test('Stripe: a purchase whose fee is above the maximum is refused the same way', async () => {
    const id = `evt_${uniqueName('fee').replace(/-/g, '')}`;
    const payload = paidCheckoutEvent(id, 999, {
      kind: PURCHASE_KIND,
      repository: `trainers/${trainer.handle}/coder`,
      buyer: operator.id,
      fee: POISON,
    });
    expect((await deliverWebhook(app, stripe, WEBHOOK_SECRET, payload)).statusCode).toBe(200);
    expect((await env.db.stripeEvent.findUnique({ where: { id } }))?.outcome).toBe(
      `refused by checkout session cs_${id}: the fee "${POISON}" is ${LIMIT_IN_MINOR_UNITS}`,
    );
  });
});
