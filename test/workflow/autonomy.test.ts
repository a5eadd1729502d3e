// The germline's autonomy on the real engine: ticks that observe, decide through a policy (the rules,
// or an agent over HTTP on loopback), are judged by the guardrails in the workflow, act, and store
// every decision in PostgreSQL; approvals above the threshold; operators' settings.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { tinyTrainerCommand } from '../../activities/runners/tiny-trainer';
import {
  approveUpdate,
  autonomyQuery,
  rejectUpdate,
  setAutonomyUpdate,
  tickUpdate,
} from '../../workflows/autonomy-api';
import { childrenQuery, childStatusQuery, retireUpdate } from '../../workflows/child-api';
import { germlineWorkflow } from '../../workflows/germline';
import type { Proposal } from '../../workflows/guardrails';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { depositUpdate, pauseSignal, statusQuery } from '../../workflows/budget-api';
import { germlineWorkflowId, childWorkflowId, trainingWorkflowId } from '../../workflows/names';
import { updateBudget } from '../../temporal/budget-client';

let env: TestEnvironment;

// A GPU-second costs 6.00 USD here and the rules' runs are capped at 6.00: the runner stops the
// tiny trainer (given far more steps than it gets through) after one GPU-second, at exactly the cap.
const RATE = 2_160_000n;
const LONG_RUN = tinyTrainerCommand(['--steps', '1000000']);

beforeAll(async () => {
  env = await testEnvironment({
    training: { runner: 'local', ratePerGpuHour: RATE, maxDurationSeconds: 600, maxPreemptions: 1, command: LONG_RUN },
  });
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

/** A germline with money that decides only when a tick is triggered. */
async function decidingGermline(amount = '100000', settings: Record<string, unknown> = {}) {
  const germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount, currency: 'usd', reference: `seed-${germline.name}` });
  await updateBudget(germline.handle, setAutonomyUpdate, { tickIntervalSeconds: null, ...settings });
  return germline;
}

const tick = (germline: { handle: Awaited<ReturnType<TestEnvironment['startGermline']>>['handle'] }) =>
  germline.handle.executeUpdate(tickUpdate, { args: [] });

function decisionsOf(germline: string) {
  return env.db.decision.findMany({ where: { germline }, orderBy: { id: 'asc' } });
}

/** An agent on loopback whose answer each test sets; it records what it was asked. */
class Agent {
  answer: (res: http.ServerResponse) => void = (res) => res.end();
  asked: unknown[] = [];
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      this.asked.push(JSON.parse(body));
      this.answer(res);
    });
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/decide`;
  }

  propose(...proposals: Array<{ proposal: Proposal; why: string }>): void {
    this.answer = (res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ proposals }));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

test('with only deposits and the rules policy, the germline spawns a child, trains it with the tiny trainer, and retires it by its rules, recording why', async () => {
  const germline = await decidingGermline('100000', {
    rules: { purposes: ['coder'], allowancePercent: 1, runCost: '600' },
  });

  const first = await tick(germline);
  expect(first.decisions).toEqual([
    expect.objectContaining({
      id: `${germline.name}/1/0`,
      outcome: 'executed',
      proposal: { kind: 'spawn', child: 'coder', allowance: '1000', purpose: 'coder breed' },
      reason: `spawned ${childWorkflowId(germline.name, 'coder')} with an allowance of 10.00 USD`,
    }),
  ]);
  expect(await germline.handle.query(childrenQuery)).toEqual([
    expect.objectContaining({ name: 'coder', state: 'active', allowance: '1000' }),
  ]);

  const second = await tick(germline);
  const runId = `${germline.name}-coder-t2`;
  expect(second.decisions).toEqual([
    expect.objectContaining({
      outcome: 'executed',
      proposal: { kind: 'train', child: 'coder', maxCost: '600' },
      reason: `started training/${runId} paid by coder (at most 6.00 USD, from scratch)`,
    }),
  ]);
  // The tiny trainer runs, paid from the child's allowance; at this rate it meets its 6.00 cap.
  const run = await env.client.workflow.getHandle(trainingWorkflowId(runId)).result();
  expect(run).toMatchObject({ state: 'cost-cap', payer: childWorkflowId(germline.name, 'coder'), cost: '600' });
  const coder = env.client.workflow.getHandle(childWorkflowId(germline.name, 'coder'));
  await eventually(
    async () => ((await coder.query(childStatusQuery)).reserved === '0' ? true : undefined),
    'the run to settle in the child',
  );

  // 4.00 left cannot pay another 6.00 run: the rules retire it, and its allowance settles to the cent.
  const third = await tick(germline);
  expect(third.decisions).toEqual([
    expect.objectContaining({
      outcome: 'executed',
      proposal: { kind: 'retire', child: 'coder', reason: 'allowance spent' },
      why: 'coder has 400 left, less than one run (600)',
    }),
  ]);
  const [record] = await eventually(async () => {
    const records = await germline.handle.query(childrenQuery);
    return records[0]?.state === 'retired' ? records : undefined;
  }, 'the germline to settle the retired child');
  expect(record).toMatchObject({ spent: '600', reason: 'allowance spent' });
  expect(await germline.handle.query(statusQuery)).toMatchObject({ available: '99400', reserved: '0', spent: '600' });

  const rows = await decisionsOf(germline.name);
  expect(rows.map((r) => [r.id, r.policy, r.outcome])).toEqual([
    [`${germline.name}/1/0`, 'rules', 'executed'],
    [`${germline.name}/2/0`, 'rules', 'executed'],
    [`${germline.name}/3/0`, 'rules', 'executed'],
  ]);
  expect(rows[0]!.why).toContain('no coder child yet');
  expect(rows[0]!.verdicts).toEqual(
    expect.arrayContaining([expect.objectContaining({ rule: 'max-children', ok: true })]),
  );
  expect(rows[0]!.observationDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect((await germline.handle.query(autonomyQuery)).ticks).toBe(3);
}, 120_000);

test('a proposal above the approval threshold waits: reject records it and does nothing, approve judges it again and carries it out', async () => {
  const germline = await decidingGermline('100000', { approvalThreshold: '500', rules: { purposes: ['tutor'] } });

  const waiting = await tick(germline);
  expect(waiting.decisions).toEqual([
    expect.objectContaining({
      id: `${germline.name}/1/0`,
      outcome: 'awaiting-approval',
      reason: `above the approval threshold of 5.00 USD: waits for \`computatrum approve ${germline.name}/1/0\``,
    }),
  ]);
  expect((await germline.handle.query(autonomyQuery)).pending).toEqual([
    expect.objectContaining({
      id: `${germline.name}/1/0`,
      proposal: expect.objectContaining({ kind: 'spawn', child: 'tutor' }),
    }),
  ]);
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0'); // nothing moved while it waits

  const rejected = await germline.handle.executeUpdate(rejectUpdate, {
    args: [{ decisionId: `${germline.name}/1/0`, by: 'alice', reason: 'not now' }],
  });
  expect(rejected).toMatchObject({ outcome: 'rejected', reason: 'rejected by alice: not now' });
  expect(await germline.handle.query(childrenQuery)).toEqual([]);

  await tick(germline);
  const approved = await germline.handle.executeUpdate(approveUpdate, {
    args: [{ decisionId: `${germline.name}/2/0`, by: 'bob' }],
  });
  expect(approved).toMatchObject({
    outcome: 'approved',
    reason: `approved by bob: spawned ${childWorkflowId(germline.name, 'tutor')} with an allowance of 100.00 USD`,
  });
  expect(await germline.handle.query(childrenQuery)).toEqual([
    expect.objectContaining({ name: 'tutor', allowance: '10000' }),
  ]);

  // Each decision is decided once.
  const again = await germline.handle
    .executeUpdate(approveUpdate, { args: [{ decisionId: `${germline.name}/2/0`, by: 'bob' }] })
    .catch((e: unknown) => e);
  expect((again as WorkflowUpdateFailedError).cause?.message).toBe(
    `no decision ${germline.name}/2/0 awaits approval: list them with \`computatrum decisions --awaiting\``,
  );
  expect((await decisionsOf(germline.name)).map((r) => [r.id, r.outcome, r.reason])).toEqual([
    [`${germline.name}/1/0`, 'rejected', 'rejected by alice: not now'],
    [`${germline.name}/2/0`, 'approved', approved.reason],
  ]);
}, 60_000);

test('approvals waiting when the germline continued as new are carried into the next run', async () => {
  const name = uniqueName('carried');
  const pending = {
    id: `${name}/7/1`,
    proposal: { kind: 'spawn' as const, child: 'animator', allowance: '2000', purpose: 'animation' },
    why: 'a hunch',
    policy: 'http' as const,
    observationDigest: `sha256:${'b'.repeat(64)}`,
    at: '2026-11-25T00:00:00.000Z',
  };
  const handle = await env.client.workflow.start(germlineWorkflow, {
    workflowId: germlineWorkflowId(name),
    taskQueue: env.taskQueue,
    args: [
      {
        name,
        currency: 'usd',
        autonomyState: {
          limits: { maxChildren: 8, perChildAllowanceCap: null, minRunwayDays: 30, approvalThreshold: '1000' },
          decider: { policy: 'rules', tickIntervalSeconds: null },
          evalGate: null,
          ticks: 7,
          lastTickAt: null,
          pending: [pending],
        },
      },
    ],
  });
  await updateBudget(handle, depositUpdate, { amount: '50000', currency: 'usd', reference: 'seed' });
  expect(await handle.query(autonomyQuery)).toMatchObject({ ticks: 7, pending: [pending] });
  const approved = await handle.executeUpdate(approveUpdate, { args: [{ decisionId: pending.id, by: 'carol' }] });
  expect(approved.outcome).toBe('approved');
  expect(await handle.query(childrenQuery)).toEqual([expect.objectContaining({ name: 'animator', allowance: '2000' })]);
  await handle.terminate('test done');
});

describe('the http policy', () => {
  const agent = new Agent();
  beforeAll(() => agent.start());
  afterAll(() => agent.stop());

  test("a valid answer is judged and executed; the agent is shown the germline's books and children", async () => {
    const germline = await decidingGermline('100000', { policy: 'http', endpoint: agent.url });
    agent.propose({
      proposal: { kind: 'spawn', child: 'web-agent', allowance: '3000', purpose: 'web automation' },
      why: 'browsers are where the work is',
    });
    expect((await tick(germline)).decisions).toEqual([
      expect.objectContaining({ outcome: 'executed', why: 'browsers are where the work is' }),
    ]);

    // More allowance for it: a second reservation, settled in order when it ends.
    agent.propose({ proposal: { kind: 'fund', child: 'web-agent', amount: '1500' }, why: 'it is doing well' });
    const funded = await tick(germline);
    expect(funded.decisions).toEqual([
      expect.objectContaining({
        outcome: 'executed',
        reason: "added 15.00 USD to web-agent's allowance (now 45.00 USD)",
      }),
    ]);
    expect(agent.asked.at(-1)).toMatchObject({
      observation: {
        budget: { available: '97000' },
        children: [{ name: 'web-agent', state: 'active', allowance: '3000', spent: '0', reserved: '0' }],
      },
    });
    const webAgent = env.client.workflow.getHandle(childWorkflowId(germline.name, 'web-agent'));
    expect(await webAgent.query(childStatusQuery)).toMatchObject({ allowance: '4500', available: '4500' });
    expect(await germline.handle.query(statusQuery)).toMatchObject({ available: '95500', reserved: '4500' });

    await webAgent.executeUpdate(retireUpdate, { args: ['done'] });
    await eventually(
      async () => ((await germline.handle.query(childrenQuery))[0]?.state === 'retired' ? true : undefined),
      'the germline to settle',
    );
    expect(await germline.handle.query(statusQuery)).toMatchObject({ available: '100000', reserved: '0', spent: '0' });
  }, 60_000);

  test.each([
    [
      'malformed',
      (res: http.ServerResponse) =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"proposals":[{"proposal":{"kind":"fund","child":"x","amount":12.5},"why":"more"}]}'),
      "the agent's answer is malformed at proposals.0.proposal.amount",
    ],
    ['slow', () => undefined, 'did not answer within 300 ms'],
  ])('a %s answer proposes nothing and is recorded as no answer', async (_kind, answer, reason) => {
    const germline = await decidingGermline('100000', { policy: 'http', endpoint: agent.url, timeoutMs: 300 });
    agent.answer = answer;
    const report = await tick(germline);
    expect(report.decisions).toEqual([
      expect.objectContaining({
        id: `${germline.name}/1/0`,
        outcome: 'no-answer',
        reason: expect.stringContaining(reason),
      }),
    ]);
    const [row] = await decisionsOf(germline.name);
    expect(row).toMatchObject({ policy: 'http', outcome: 'no-answer', proposal: null });
    expect(await germline.handle.query(childrenQuery)).toEqual([]);
  });

  test('a paused germline spawns nothing: the guardrails refuse what the agent proposes, and say why', async () => {
    const germline = await decidingGermline('100000', { policy: 'http', endpoint: agent.url });
    await germline.handle.signal(pauseSignal, 'audit');
    agent.propose({ proposal: { kind: 'spawn', child: 'coder', allowance: '3000', purpose: 'code' }, why: 'now' });
    const [decision] = (await tick(germline)).decisions;
    expect(decision).toMatchObject({
      outcome: 'refused',
      reason: 'not-paused: the germline is paused: it spends nothing until an operator resumes it',
    });
    expect(await germline.handle.query(childrenQuery)).toEqual([]);
    expect((await germline.handle.query(statusQuery)).reserved).toBe('0');
  });

  test('proposals in one tick are judged one after another: the second spawn meets the max-children limit', async () => {
    const germline = await decidingGermline('100000', { policy: 'http', endpoint: agent.url, maxChildren: 1 });
    agent.propose(
      { proposal: { kind: 'spawn', child: 'first', allowance: '1000', purpose: 'one' }, why: 'a' },
      { proposal: { kind: 'spawn', child: 'second', allowance: '1000', purpose: 'two' }, why: 'b' },
    );
    const { decisions } = await tick(germline);
    expect(decisions.map((d) => d.outcome)).toEqual(['executed', 'refused']);
    expect(decisions[1]!.reason).toBe('max-children: 1 of at most 1 children are funded');
  });
});

test('the germline ticks by itself at its interval', async () => {
  const germline = await decidingGermline('100', { tickIntervalSeconds: 5 });
  const status = await eventually(
    async () => {
      const s = await germline.handle.query(autonomyQuery);
      return s.ticks >= 1 ? s : undefined;
    },
    'a tick on the timer',
    30_000,
  );
  expect(status.lastTickAt).not.toBeNull();
  expect(new Date(status.nextTickAt!).getTime() - new Date(status.lastTickAt!).getTime()).toBe(5000);
}, 40_000);

test('bad autonomy settings are refused with what is wrong, and nothing changes', async () => {
  const germline = await decidingGermline();
  const refuse = async (change: Record<string, unknown>) => {
    const error = await germline.handle.executeUpdate(setAutonomyUpdate, { args: [change] }).catch((e: unknown) => e);
    return (error as WorkflowUpdateFailedError).cause?.message;
  };
  expect(await refuse({ maxChildren: -1 })).toBe('maxChildren must be a whole number from 0 to 10000, got -1');
  expect(await refuse({ approvalThreshold: 12.5 })).toBe(
    'approvalThreshold is whole minor units as a string (e.g. "5000"), or null for none',
  );
  expect(await refuse({ policy: 'http' })).toBe('the http policy needs an endpoint: the URL of the agent that answers');
  expect(await refuse({ tickIntervalSeconds: 1 })).toBe(
    'tickIntervalSeconds must be a whole number from 5 to 2592000, got 1',
  );
  expect(await refuse({ maxChildern: 3 })).toContain('unknown autonomy settings: maxChildern');
  expect(await refuse({ evalGate: { metric: 'loss' } })).toContain(
    'evalGate is { metric, atMost?, atLeast? } with at least one bound',
  );
  expect(await germline.handle.query(autonomyQuery)).toMatchObject({
    limits: { maxChildren: 8, approvalThreshold: null },
    decider: { policy: 'rules', tickIntervalSeconds: null },
  });
});
