// The decision policies: the rules policy by example, the http policy against a real HTTP agent on
// loopback (valid, malformed, slow, failing), and decisions recorded in PostgreSQL.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openDatabase, type Database } from '../../db/prisma';
import { DEFAULT_RULES, httpPolicy, observationDigest, recordDecision, rulesPolicy } from '../../activities/policy';
import { DEFAULT_AUTONOMY_POLICY, judge, type ChildSummary, type Observation } from '../../workflows/guardrails';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

function observation(
  children: ChildSummary[] = [],
  overrides: Partial<Observation['budget']> & { burnPerDay?: string; revenuePerDay?: string } = {},
): Observation {
  const { burnPerDay = '0', revenuePerDay = '0', ...budget } = overrides;
  return {
    budget: {
      available: '100000',
      paused: false,
      currency: 'usd',
      committedToday: { day: '2026-11-25', amount: '0' },
      policy: { dailySpendCap: null, perReservationCap: null },
      ...budget,
    },
    burnPerDay,
    revenuePerDay,
    children,
  };
}

const active = (name: string, allowance: string, spent = '0'): ChildSummary => ({
  name,
  state: 'active',
  allowance,
  spent,
});

describe('rules policy', () => {
  test('with money and no children it spawns the first breed with a tenth of the funds', () => {
    expect(rulesPolicy(observation(), {})).toEqual([
      {
        proposal: { kind: 'spawn', child: 'coder', allowance: '10000', purpose: 'coder breed' },
        why: expect.stringContaining('no coder child yet'),
      },
    ]);
  });

  test('an improving child with allowance left trains; the next breed is spawned beside it', () => {
    const proposals = rulesPolicy(observation([active('coder', '5000', '1000')]), { coder: [2.1, 1.9, 1.8] });
    expect(proposals.map((p) => p.proposal)).toEqual([
      { kind: 'train', child: 'coder', maxCost: DEFAULT_RULES.runCost },
      { kind: 'spawn', child: 'animator', allowance: '10000', purpose: 'animator breed' },
    ]);
  });

  test('a child that cannot pay for a run, or stopped improving, is retired with the reason', () => {
    const proposals = rulesPolicy(observation([active('coder', '5000', '4800'), active('animator', '5000')]), {
      animator: [1.5, 1.6, 1.7, 1.55],
    });
    expect(proposals.slice(0, 2)).toEqual([
      {
        proposal: { kind: 'retire', child: 'coder', reason: 'allowance spent' },
        why: 'coder has 200 left, less than one run (500)',
      },
      {
        proposal: { kind: 'retire', child: 'animator', reason: 'stopped improving' },
        why: "animator's last 3 losses did not beat 1.5",
      },
    ]);
  });

  test('no spawn while the runway would fall below the rule, or while paused', () => {
    expect(rulesPolicy(observation([], { burnPerDay: '2000' }), {})).toEqual([]); // 90000 left < 60 days × 20.00
    expect(rulesPolicy(observation([], { paused: true }), {})).toEqual([]);
  });

  test('enough new feedback, and no such run in flight, proposes that the germline learn from it', () => {
    const learning = (newRecords: number, inFlight = false, paused = false) =>
      rulesPolicy(
        { ...observation([], { paused }), feedback: { newRecords, learning: inFlight } },
        {},
        { ...DEFAULT_RULES, purposes: ['coder'], feedbackThreshold: 5 },
      )
        .map((p) => p.proposal)
        .filter((p) => p.kind === 'learn');
    expect(learning(4)).toEqual([]);
    expect(learning(5)).toEqual([{ kind: 'learn', maxCost: DEFAULT_RULES.runCost, records: 5 }]);
    expect(learning(50, true)).toEqual([]);
    expect(learning(50, false, true)).toEqual([]);
    expect(
      rulesPolicy(
        { ...observation(), feedback: { newRecords: 50, learning: false } },
        {},
        {
          ...DEFAULT_RULES,
          feedbackThreshold: 0,
        },
      ).filter((p) => p.proposal.kind === 'learn'),
    ).toEqual([]);
    const seen = { ...observation(), feedback: { newRecords: 10, learning: false } };
    const [learn] = rulesPolicy(seen, {}).filter((p) => p.proposal.kind === 'learn');
    expect(judge(learn!.proposal, seen, DEFAULT_AUTONOMY_POLICY)).toMatchObject({ allowed: true });
    expect(
      judge(learn!.proposal, { ...seen, budget: { ...seen.budget, available: '100' } }, DEFAULT_AUTONOMY_POLICY),
    ).toMatchObject({ allowed: false });
  });

  test('what the rules propose from a healthy budget passes the default guardrails', () => {
    const seen = observation([active('coder', '5000', '1000')]);
    for (const { proposal } of rulesPolicy(seen, { coder: [2, 1.9] }))
      expect(judge(proposal, seen, DEFAULT_AUTONOMY_POLICY).allowed).toBe(true);
  });
});

describe('http policy against an agent on loopback', () => {
  let server: http.Server;
  let base: string;
  const answers = new Map<string, (res: http.ServerResponse, body: unknown) => void>();
  let lastBody: unknown;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk) => (text += chunk));
      req.on('end', () => {
        lastBody = JSON.parse(text);
        answers.get(req.url!)!(res, lastBody);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const json = (status: number, value: unknown) => (res: http.ServerResponse) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    answers.set(
      '/valid',
      json(200, {
        proposals: [{ proposal: { kind: 'train', child: 'coder', maxCost: '300' }, why: 'the loss still falls' }],
      }),
    );
    answers.set(
      '/float-money',
      json(200, { proposals: [{ proposal: { kind: 'fund', child: 'coder', amount: 12.5 }, why: 'more' }] }),
    );
    answers.set(
      '/unknown-kind',
      json(200, { proposals: [{ proposal: { kind: 'sell-company', child: 'coder' }, why: 'why not' }] }),
    );
    answers.set('/error', json(500, { error: 'model crashed' }));
    answers.set('/not-json', (res) =>
      res.writeHead(200, { 'content-type': 'text/plain' }).end('I think you should spawn a child'),
    );
    answers.set('/silent', () => undefined); // never answers
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('a valid answer becomes proposals; the agent sees the observation and the training history', async () => {
    const seen = observation([active('coder', '5000')]);
    expect(await httpPolicy(`${base}/valid`, seen, { coder: [1.2] })).toEqual({
      policy: 'http',
      proposals: [{ proposal: { kind: 'train', child: 'coder', maxCost: '300' }, why: 'the loss still falls' }],
    });
    expect(lastBody).toEqual({ observation: seen, history: { coder: [1.2] } });
  });

  test.each([
    ['/float-money', "the agent's answer is malformed at proposals.0.proposal.amount"],
    ['/unknown-kind', "the agent's answer is malformed at proposals.0.proposal.kind"],
    ['/error', 'answered 500'],
    ['/not-json', 'answered something that is not JSON'],
  ])('%s proposes nothing and says why', async (path, reason) => {
    const answer = await httpPolicy(`${base}${path}`, observation(), {});
    expect(answer.proposals).toEqual([]);
    expect(answer.rejected).toContain(reason);
  });

  test('a slow agent is cut off at the timeout', async () => {
    const answer = await httpPolicy(`${base}/silent`, observation(), {}, { timeoutMs: 300 });
    expect(answer).toEqual({
      policy: 'http',
      proposals: [],
      rejected: `the agent at ${base}/silent did not answer within 300 ms`,
    });
  });

  test('an unreachable agent proposes nothing', async () => {
    const answer = await httpPolicy('http://127.0.0.1:9/agent', observation(), {});
    expect(answer.rejected).toContain('cannot reach the agent at http://127.0.0.1:9/agent');
  });
});

describe('decisions in PostgreSQL', () => {
  let db: Database;
  beforeAll(() => {
    db = openDatabase(testGlobals().databaseUrl, { maxConnections: 2 });
  });
  afterAll(async () => {
    await db.$disconnect();
  });

  test('a decision is stored once with its verdicts; a later outcome updates it', async () => {
    const germline = uniqueName('decide');
    const seen = observation([], { paused: true });
    const proposal = { kind: 'spawn' as const, child: 'coder', allowance: '1000', purpose: 'p' };
    const judgement = judge(proposal, seen, DEFAULT_AUTONOMY_POLICY);
    const decision = {
      id: `${germline}/1/0`,
      germline,
      policy: 'rules' as const,
      observationDigest: observationDigest(seen, {}),
      proposal,
      why: 'test',
      judgement,
      outcome: 'refused' as const,
      reason: 'paused',
    };
    await recordDecision(db, decision);
    await recordDecision(db, decision);
    await recordDecision(db, { ...decision, outcome: 'approved', reason: 'operator alice' });
    const rows = await db.decision.findMany({ where: { germline } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'approved', reason: 'operator alice', proposal, policy: 'rules' });
    expect(rows[0]!.verdicts).toContainEqual({
      rule: 'not-paused',
      ok: false,
      detail: expect.stringContaining('paused'),
    });
  });

  test('the observation digest does not depend on key order', () => {
    const a = observation([active('coder', '5000')]);
    const b = JSON.parse(
      JSON.stringify({
        children: a.children,
        revenuePerDay: a.revenuePerDay,
        burnPerDay: a.burnPerDay,
        budget: a.budget,
      }),
    ) as Observation;
    expect(observationDigest(a, { coder: [1] })).toBe(observationDigest(b, { coder: [1] }));
    expect(observationDigest(a, { coder: [2] })).not.toBe(observationDigest(a, { coder: [1] }));
  });
});
