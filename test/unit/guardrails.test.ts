// The autonomy guardrails, by example and as properties over many random histories: whatever the
// germline proposes, what the guardrails allow never crosses an operator's limit, and the budget
// itself always accepts what they allow.
import fc from 'fast-check';
import { Budget, initialBudgetState } from '../../workflows/budget';
import {
  type AutonomyPolicy,
  checkEvalGate,
  type ChildSummary,
  germlineOutlay,
  judge,
  type Observation,
  type Proposal,
  refusalReasons,
} from '../../workflows/guardrails';
import { type BudgetPolicy } from '../../workflows/budget-api';

const NOW = new Date('2026-11-25T12:00:00Z');

function observation(overrides: Partial<Observation> & { available?: string; paused?: boolean } = {}): Observation {
  const { available = '100000', paused = false, ...rest } = overrides;
  return {
    budget: {
      available,
      paused,
      currency: 'usd',
      committedToday: { day: '2026-11-25', amount: '0' },
      policy: { dailySpendCap: null, perReservationCap: null },
    },
    burnPerDay: '0',
    revenuePerDay: '0',
    children: [],
    ...rest,
  };
}

const POLICY: AutonomyPolicy = {
  maxChildren: 2,
  perChildAllowanceCap: '5000',
  minRunwayDays: 30,
  approvalThreshold: '3000',
};
const child = (
  name: string,
  state: ChildSummary['state'] = 'active',
  allowance = '1000',
  spent = '0',
): ChildSummary => ({ name, state, allowance, spent });

describe('judge', () => {
  test('a spawn within every limit is allowed; above the approval threshold it waits for an operator', () => {
    expect(
      judge({ kind: 'spawn', child: 'coder', allowance: '2000', purpose: 'programming' }, observation(), POLICY),
    ).toMatchObject({ allowed: true, needsApproval: false });
    expect(
      judge({ kind: 'spawn', child: 'coder', allowance: '4000', purpose: 'programming' }, observation(), POLICY),
    ).toMatchObject({ allowed: true, needsApproval: true });
  });

  test.each<[string, Proposal, Partial<Observation> & { available?: string; paused?: boolean }, string]>([
    [
      'paused',
      { kind: 'spawn', child: 'x', allowance: '100', purpose: 'p' },
      { paused: true },
      'not-paused: the germline is paused',
    ],
    [
      'too many children',
      { kind: 'spawn', child: 'x', allowance: '100', purpose: 'p' },
      { children: [child('a'), child('b', 'paused')] },
      'max-children: 2 of at most 2 children are funded',
    ],
    [
      'name taken',
      { kind: 'spawn', child: 'a', allowance: '100', purpose: 'p' },
      { children: [child('a', 'retired')] },
      'child-known: a child named a exists already (retired)',
    ],
    [
      'allowance cap',
      { kind: 'fund', child: 'a', amount: '4500' },
      { children: [child('a', 'active', '1000')] },
      'per-child-allowance-cap: allowance would be 55.00 USD of at most 50.00 USD',
    ],
    [
      'not enough money',
      { kind: 'spawn', child: 'x', allowance: '900', purpose: 'p' },
      { available: '800' },
      'available-funds: needs 9.00 USD, 8.00 USD available',
    ],
    [
      'runway',
      { kind: 'spawn', child: 'x', allowance: '1000', purpose: 'p' },
      { available: '27500', burnPerDay: '1000', revenuePerDay: '100' },
      'min-runway: 265.00 USD left covers 29 days at 9.00 USD/day; at least 30 required',
    ],
    [
      'a retired child trains no more',
      { kind: 'train', child: 'a', maxCost: '100' },
      { children: [child('a', 'retired')] },
      'child-known: a is retired',
    ],
    [
      'training beyond the allowance',
      { kind: 'train', child: 'a', maxCost: '600' },
      { children: [child('a', 'active', '1000', '500')] },
      "allowance-left: needs 6.00 USD, 5.00 USD of a's allowance left",
    ],
    [
      'a bad name',
      { kind: 'spawn', child: 'Bad Name', allowance: '100', purpose: 'p' },
      {},
      'valid-proposal: child name "Bad Name" must be lowercase',
    ],
    [
      'a zero amount',
      { kind: 'fund', child: 'a', amount: '0' },
      { children: [child('a')] },
      'valid-proposal: the amount must be whole minor units above zero',
    ],
    [
      'an allowance above the maximum',
      { kind: 'spawn', child: 'x', allowance: '1000000000000001', purpose: 'p' },
      {},
      'valid-proposal: the amount "1000000000000001" is above the most one amount may be (1,000,000,000,000,000 minor units, 10,000,000,000,000.00 USD)',
    ],
    [
      'a run cost above the maximum',
      { kind: 'train', child: 'a', maxCost: '100000000000000000000' },
      { children: [child('a')] },
      'valid-proposal: the amount "100000000000000000000" is above the most one amount may be',
    ],
  ])('%s is refused, and the refusal says why', (_name, proposal, seen, reason) => {
    const judgement = judge(proposal, observation(seen), POLICY);
    expect(judgement.allowed).toBe(false);
    expect(refusalReasons(judgement)).toContain(reason);
  });

  test('the runway rule passes when income covers the spending', () => {
    const judgement = judge(
      { kind: 'spawn', child: 'x', allowance: '1000', purpose: 'p' },
      observation({ available: '1000', burnPerDay: '500', revenuePerDay: '600' }),
      POLICY,
    );
    expect(judgement.allowed).toBe(true);
  });

  test('retiring is allowed while paused: it stops spending', () => {
    expect(
      judge(
        { kind: 'retire', child: 'a', reason: 'no longer pays off' },
        observation({ paused: true, children: [child('a')] }),
        POLICY,
      ).allowed,
    ).toBe(true);
  });
});

describe('checkEvalGate', () => {
  test.each([
    [{ loss: 1.9 }, { metric: 'loss', atMost: 2 }, true, 'loss 1.9 passes the eval gate (loss at most 2)'],
    [
      { accuracy: 0.8 },
      { metric: 'accuracy', atLeast: 0.9 },
      false,
      'accuracy 0.8 fails the eval gate (accuracy at least 0.9)',
    ],
    [
      { loss: 1 },
      { metric: 'accuracy', atLeast: 0.9 },
      false,
      'the eval gate needs accuracy at least 0.9, and the checkpoint records no accuracy',
    ],
    [{}, null, true, 'no eval gate'],
  ])('%j against %j', (metrics, gate, ok, detail) => {
    expect(checkEvalGate(metrics, gate)).toEqual({ ok, detail });
  });
});

// ---- properties ----

// Few names, so proposals often concern children that exist.
const NAMES = ['a', 'b', 'c'];
const amount = fc.integer({ min: 1, max: 5000 }).map(String);

type Command =
  | { kind: 'deposit'; amount: string }
  | { kind: 'spend'; amount: string }
  | { kind: 'propose'; proposal: Proposal }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'caps'; policy: Partial<BudgetPolicy> }
  | { kind: 'burn'; burnPerDay: string; revenuePerDay: string };

const proposal: fc.Arbitrary<Proposal> = fc.oneof(
  fc.record({
    kind: fc.constant('spawn' as const),
    child: fc.constantFrom(...NAMES),
    allowance: amount,
    purpose: fc.constant('a breed'),
  }),
  fc.record({ kind: fc.constant('fund' as const), child: fc.constantFrom(...NAMES), amount }),
  fc.record({
    kind: fc.constant('train' as const),
    child: fc.constantFrom(...NAMES),
    maxCost: fc.integer({ min: 1, max: 1500 }).map(String),
  }),
  fc.record({
    kind: fc.constant('retire' as const),
    child: fc.constantFrom(...NAMES),
    reason: fc.constant('stopped paying off'),
  }),
  fc.record({
    kind: fc.constant('learn' as const),
    maxCost: fc.integer({ min: 1, max: 1500 }).map(String),
    records: fc.integer({ min: 1, max: 50 }),
  }),
);
const cap = fc.option(fc.integer({ min: 1, max: 20_000 }).map(String), { nil: null });
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deposit' as const),
      amount: fc.integer({ min: 1, max: 100_000 }).map(String),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('spend' as const), amount }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('propose' as const), proposal }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'pause' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'resume' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('caps' as const),
      policy: fc.record({ dailySpendCap: cap, perReservationCap: cap }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('burn' as const),
      burnPerDay: fc.integer({ min: 0, max: 500 }).map(String),
      revenuePerDay: fc.integer({ min: 0, max: 300 }).map(String),
    }),
  },
);
const autonomy: fc.Arbitrary<AutonomyPolicy> = fc.record({
  maxChildren: fc.integer({ min: 0, max: 4 }),
  perChildAllowanceCap: fc.option(fc.integer({ min: 1, max: 20_000 }).map(String), { nil: null, freq: 2 }),
  minRunwayDays: fc.integer({ min: 0, max: 30 }),
  approvalThreshold: cap,
});

/** How often each kind of proposal was allowed, over all histories: the property must not hold vacuously. */
const allowedKinds: Record<Proposal['kind'] | 'refused', number> = {
  spawn: 0,
  fund: 0,
  train: 0,
  retire: 0,
  learn: 0,
  refused: 0,
};

interface ChildModel extends ChildSummary {
  reservations: string[];
}

/** Plays a history through the real Budget and the guardrails, checking every limit after each step. */
function play(policy: AutonomyPolicy, commands: Command[]): void {
  const budget = new Budget(initialBudgetState('g', 'usd'));
  const children = new Map<string, ChildModel>();
  let burn = { burnPerDay: '0', revenuePerDay: '0' };
  let refs = 0;
  const key = () => `k${refs++}`;

  for (const step of commands) {
    if (step.kind === 'deposit') budget.deposit({ amount: step.amount, currency: 'usd', reference: key() }, key(), NOW);
    if (step.kind === 'pause') budget.pause();
    if (step.kind === 'resume') budget.resume();
    if (step.kind === 'caps') budget.setPolicy(step.policy);
    if (step.kind === 'burn') burn = { burnPerDay: step.burnPerDay, revenuePerDay: step.revenuePerDay };
    if (step.kind === 'spend') {
      try {
        const { result } = budget.reserve({ amount: step.amount, ref: key(), purpose: 'operations' }, key(), NOW);
        budget.settle({ reservationId: result.reservationId, actual: step.amount }, key(), NOW);
      } catch {
        // refused by the budget: nothing happened
      }
    }
    if (step.kind !== 'propose') continue;

    const status = budget.status(NOW);
    const seen: Observation = {
      budget: status,
      ...burn,
      children: [...children.values()].map(({ reservations: _r, ...summary }) => summary),
    };
    const { proposal: p } = step;
    const judgement = judge(p, seen, policy);
    const outlay = germlineOutlay(p);
    if (outlay > 0n) {
      // The budget refuses nothing the guardrails allow.
      let budgetAccepts = true;
      try {
        budget.checkReserve({ amount: outlay.toString(), ref: key(), purpose: p.kind }, NOW);
      } catch {
        budgetAccepts = false;
      }
      if (judgement.allowed) expect(budgetAccepts).toBe(true);
    }
    allowedKinds[judgement.allowed ? p.kind : 'refused'] += 1;
    if (!judgement.allowed) continue;
    if (p.kind === 'learn') {
      // The germline's own run reserves its cap from the germline and is charged what it used.
      const { result } = budget.reserve({ amount: outlay.toString(), ref: key(), purpose: 'learn' }, key(), NOW);
      budget.settle({ reservationId: result.reservationId, actual: (outlay / 2n).toString() }, key(), NOW);
      const netBurn = BigInt(burn.burnPerDay) - BigInt(burn.revenuePerDay);
      if (netBurn > 0n)
        expect(BigInt(budget.status(NOW).available)).toBeGreaterThanOrEqual(netBurn * BigInt(policy.minRunwayDays));
      continue;
    }

    const before = children.get(p.child);
    if (p.kind === 'spawn' || p.kind === 'fund') {
      const funded = [...children.values()].filter((c) => c.state === 'active' || c.state === 'paused').length;
      if (p.kind === 'spawn') expect(funded).toBeLessThan(policy.maxChildren);
      const { result } = budget.reserve(
        { amount: outlay.toString(), ref: key(), purpose: `${p.kind} ${p.child}` },
        key(),
        NOW,
      );
      const model = before ?? { name: p.child, state: 'active' as const, allowance: '0', spent: '0', reservations: [] };
      model.allowance = (BigInt(model.allowance) + outlay).toString();
      model.reservations.push(result.reservationId);
      children.set(p.child, model);
      // The runway that was promised holds right after.
      const netBurn = BigInt(burn.burnPerDay) - BigInt(burn.revenuePerDay);
      if (netBurn > 0n)
        expect(BigInt(budget.status(NOW).available)).toBeGreaterThanOrEqual(netBurn * BigInt(policy.minRunwayDays));
    }
    if (p.kind === 'train') before!.spent = (BigInt(before!.spent) + BigInt(p.maxCost)).toString();
    if (p.kind === 'retire') {
      // Settles what the child spent across its reservations, releasing the rest.
      let toSettle = BigInt(before!.spent);
      for (const id of before!.reservations) {
        const held = BigInt(budget.status(NOW).openReservations.find((r) => r.id === id)!.amount);
        const spent = toSettle < held ? toSettle : held;
        budget.settle({ reservationId: id, actual: spent.toString() }, key(), NOW);
        toSettle -= spent;
      }
      expect(toSettle).toBe(0n);
      before!.state = 'retired';
      before!.reservations = [];
    }

    // Limits after every accepted proposal.
    const status2 = budget.status(NOW);
    expect(BigInt(status2.available)).toBeGreaterThanOrEqual(0n);
    expect(BigInt(status2.reserved)).toBeLessThanOrEqual(BigInt(status2.balance));
    const dailyCap = status.policy.dailySpendCap;
    if (outlay > 0n && dailyCap !== null)
      expect(BigInt(status.committedToday.amount) + outlay).toBeLessThanOrEqual(BigInt(dailyCap));
    for (const c of children.values()) {
      expect(BigInt(c.spent)).toBeLessThanOrEqual(BigInt(c.allowance));
      if (policy.perChildAllowanceCap !== null)
        expect(BigInt(c.allowance)).toBeLessThanOrEqual(BigInt(policy.perChildAllowanceCap));
    }
    expect(status2.paused && outlay > 0n).toBe(false);
  }
  new Budget(budget.snapshot()); // the invariant, checked once more from the state the workflow would carry
}

test('random histories of proposals, deposits, spends, pauses and cap changes never cross a guardrail', () => {
  fc.assert(fc.property(autonomy, fc.array(command, { minLength: 20, maxLength: 120 }), play), { numRuns: 1000 });
  for (const count of Object.values(allowedKinds)) expect(count).toBeGreaterThan(50);
});
