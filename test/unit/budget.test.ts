// The budget's rules as pure code: every money decision the germline makes, without a server.
import fc from 'fast-check';
import { Budget, BudgetRejection, initialBudgetState, postingsFor } from '../../workflows/budget';
import { type LedgerEntry } from '../../workflows/budget-api';

const NOON = new Date('2026-11-25T12:00:00Z');
const NEXT_DAY = new Date('2026-11-26T00:00:01Z');
let keys = 0;
const key = () => `germline/test/update-${++keys}`;

function funded(amount = '10000'): Budget {
  const budget = new Budget(initialBudgetState('test', 'usd'));
  budget.deposit({ amount, currency: 'usd', reference: 'seed' }, key(), NOON);
  return budget;
}

function reason(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof BudgetRejection) return error.reason;
    throw error;
  }
  return 'accepted';
}

test('the daily cap counts what was reserved today and frees what was released; a new UTC day starts at zero', () => {
  const budget = funded('100000');
  budget.setPolicy({ dailySpendCap: '5000' });
  const first = budget.reserve({ amount: '4000', ref: 'a', purpose: 'p' }, key(), NOON).result;
  expect(reason(() => budget.reserve({ amount: '1001', ref: 'b', purpose: 'p' }, key(), NOON))).toBe(
    'DailyCapExceeded',
  );
  budget.settle({ reservationId: first.reservationId, actual: '3000' }, key(), NOON); // 1000 back
  expect(reason(() => budget.reserve({ amount: '2000', ref: 'c', purpose: 'p' }, key(), NOON))).toBe('accepted');
  expect(budget.status(NOON).committedToday).toEqual({ day: '2026-11-25', amount: '5000' });
  expect(reason(() => budget.reserve({ amount: '5000', ref: 'd', purpose: 'p' }, key(), NEXT_DAY))).toBe('accepted');
});

test('a reserve retried with the same ref returns the same reservation; the same ref for another amount is refused', () => {
  const budget = funded();
  const first = budget.reserve({ amount: '100', ref: 'job-1', purpose: 'p' }, key(), NOON);
  const again = budget.reserve({ amount: '100', ref: 'job-1', purpose: 'p' }, key(), NOON);
  expect(again.entry).toBeUndefined();
  expect(again.result).toMatchObject({ reservationId: first.result.reservationId, duplicate: true });
  expect(reason(() => budget.reserve({ amount: '200', ref: 'job-1', purpose: 'p' }, key(), NOON))).toBe(
    'DuplicateReference',
  );
});

test('state survives a round trip through plain JSON, as continue-as-new carries it', () => {
  const budget = funded();
  const { result } = budget.reserve({ amount: '700', ref: 'open', purpose: 'p' }, key(), NOON);
  const copy = new Budget(JSON.parse(JSON.stringify(budget.snapshot({ nextGeneration: true }))));
  expect(copy.status(NOON)).toMatchObject({ available: '9300', reserved: '700', generation: 1 });
  expect(copy.reserve({ amount: '700', ref: 'open', purpose: 'p' }, key(), NOON).result.duplicate).toBe(true);
  expect(copy.deposit({ amount: '10000', currency: 'usd', reference: 'seed' }, key(), NOON).result.duplicate).toBe(
    true,
  );
  expect(copy.settle({ reservationId: result.reservationId, actual: '700' }, key(), NOON).result.released).toBe('0');
});

test('a state that breaks the invariant is refused on load, never silently used', () => {
  const broken = {
    ...initialBudgetState('test', 'usd'),
    deposited: '100',
    reservations: [{ id: 'r1', ref: 'x', purpose: 'p', amount: '500', day: '2026-11-25', createdAt: '' }],
  };
  expect(() => new Budget(broken)).toThrow('budget invariant broken');
});

test('every ledger entry books legs that sum to zero', () => {
  const budget = funded();
  const { result } = budget.reserve({ amount: '1000', ref: 'r', purpose: 'p' }, key(), NOON);
  budget.settle({ reservationId: result.reservationId, actual: '400' }, key(), NOON);
  const second = budget.reserve({ amount: '300', ref: 's', purpose: 'p' }, key(), NOON).result;
  budget.release({ reservationId: second.reservationId }, key(), NOON);
  for (const entry of budget.ledger()) {
    expect(postingsFor(entry).reduce((sum, leg) => sum + leg.amount, 0n)).toBe(0n);
  }
});

// Random sequences of operations: whatever the order, the budget never overspends, never goes
// negative, honours its caps, and its ledger replays to its own totals.
type Op =
  | { kind: 'deposit'; amount: number; ref: number }
  | { kind: 'reserve'; amount: number; ref: number }
  | { kind: 'settle'; pick: number; fraction: number }
  | { kind: 'release'; pick: number }
  | { kind: 'policy'; daily: number | null; perReservation: number | null }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'nextDay' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('deposit' as const),
    amount: fc.integer({ min: 0, max: 50_000 }),
    ref: fc.integer({ min: 0, max: 20 }),
  }),
  fc.record({
    kind: fc.constant('reserve' as const),
    amount: fc.integer({ min: 0, max: 30_000 }),
    ref: fc.integer({ min: 0, max: 60 }),
  }),
  fc.record({
    kind: fc.constant('settle' as const),
    pick: fc.nat(),
    fraction: fc.double({ min: 0, max: 1.2, noNaN: true }),
  }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({
    kind: fc.constant('policy' as const),
    daily: fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: null }),
    perReservation: fc.option(fc.integer({ min: 0, max: 30_000 }), { nil: null }),
  }),
  fc.constant({ kind: 'pause' as const }),
  fc.constant({ kind: 'resume' as const }),
  fc.constant({ kind: 'nextDay' as const }),
);

test('random operation sequences never break the invariant, the caps or the books (property)', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const budget = new Budget(initialBudgetState('prop', 'usd'));
      let now = new Date('2026-11-25T08:00:00Z');
      const entries: LedgerEntry[] = [];
      for (const o of ops) {
        const before = budget.status(now);
        try {
          switch (o.kind) {
            case 'deposit': {
              const e = budget.deposit(
                { amount: String(o.amount), currency: 'usd', reference: `d${o.ref}` },
                key(),
                now,
              ).entry;
              if (e) entries.push(e);
              break;
            }
            case 'reserve': {
              const e = budget.reserve({ amount: String(o.amount), ref: `r${o.ref}`, purpose: 'p' }, key(), now).entry;
              if (e) {
                entries.push(e);
                // An accepted reserve fit every rule at the time it was made.
                expect(BigInt(o.amount)).toBeLessThanOrEqual(BigInt(before.available));
                expect(before.paused).toBe(false);
                if (before.policy.perReservationCap !== null)
                  expect(BigInt(o.amount)).toBeLessThanOrEqual(BigInt(before.policy.perReservationCap));
                if (before.policy.dailySpendCap !== null) {
                  expect(BigInt(before.committedToday.amount) + BigInt(o.amount)).toBeLessThanOrEqual(
                    BigInt(before.policy.dailySpendCap),
                  );
                }
              }
              break;
            }
            case 'settle': {
              const open = before.openReservations;
              if (open.length === 0) break;
              const r = open[o.pick % open.length]!;
              const actual = BigInt(Math.floor(Number(r.amount) * o.fraction));
              const e = budget.settle({ reservationId: r.id, actual: actual.toString() }, key(), now).entry;
              if (e) entries.push(e);
              expect(actual).toBeLessThanOrEqual(BigInt(r.amount));
              break;
            }
            case 'release': {
              const open = before.openReservations;
              if (open.length === 0) break;
              const e = budget.release({ reservationId: open[o.pick % open.length]!.id }, key(), now).entry;
              if (e) entries.push(e);
              break;
            }
            case 'policy':
              budget.setPolicy({
                dailySpendCap: o.daily === null ? null : String(o.daily),
                perReservationCap: o.perReservation === null ? null : String(o.perReservation),
              });
              break;
            case 'pause':
              budget.pause();
              break;
            case 'resume':
              budget.resume();
              break;
            case 'nextDay':
              now = new Date(now.getTime() + 86_400_000);
              break;
          }
        } catch (error) {
          if (!(error instanceof BudgetRejection)) throw error;
          expect(budget.status(now)).toEqual(before); // a rejection changes nothing
        }
        const s = budget.status(now);
        expect(BigInt(s.reserved)).toBeLessThanOrEqual(BigInt(s.balance));
        expect(BigInt(s.available)).toBeGreaterThanOrEqual(0n);
        expect(BigInt(s.spent)).toBeGreaterThanOrEqual(0n);
      }
      // The ledger's legs, summed per account, are the budget's own totals.
      const totals = new Map<string, bigint>();
      for (const entry of entries)
        for (const leg of postingsFor(entry)) totals.set(leg.account, (totals.get(leg.account) ?? 0n) + leg.amount);
      const s = budget.status(now);
      expect(totals.get('available') ?? 0n).toBe(BigInt(s.available));
      expect(totals.get('reserved') ?? 0n).toBe(BigInt(s.reserved));
      expect(totals.get('spent') ?? 0n).toBe(BigInt(s.spent));
      expect(-(totals.get('deposits') ?? 0n)).toBe(BigInt(s.deposited));
    }),
    { numRuns: 300 },
  );
});

// ---- the most one amount may be (workflows/money.ts MAX_MINOR_UNITS = 10^15 minor units) ----

function rejection(action: () => unknown): BudgetRejection {
  try {
    action();
  } catch (error) {
    if (error instanceof BudgetRejection) return error;
    throw error;
  }
  throw new Error('accepted, but a rejection was expected');
}

describe('amounts above the maximum are refused by every validator, naming the limit', () => {
  const MAX = '1000000000000000';
  const ABOVE = '1000000000000001';
  const HUGE = '100000000000000000000';
  const LIMIT = /above the most one amount may be \(1,000,000,000,000,000 minor units, 10,000,000,000,000\.00 USD\)/;

  test.each([
    ['deposit', (b: Budget) => b.checkDeposit({ amount: HUGE, currency: 'usd', reference: 'poison' })],
    ['deposit one above', (b: Budget) => b.checkDeposit({ amount: ABOVE, currency: 'usd', reference: 'poison' })],
    ['reserve', (b: Budget) => b.checkReserve({ amount: HUGE, ref: 'poison', purpose: 'p' }, NOON)],
    [
      'settle',
      (b: Budget) =>
        b.checkSettle({
          reservationId: b.reserve({ amount: '100', ref: 'x', purpose: 'p' }, key(), NOON).result.reservationId,
          actual: HUGE,
        }),
    ],
    ['daily cap', (b: Budget) => b.checkPolicy({ dailySpendCap: HUGE })],
    ['per-reservation cap', (b: Budget) => b.checkPolicy({ perReservationCap: ABOVE })],
  ])('%s', (_name, check) => {
    const budget = funded();
    const refused = rejection(() => check(budget));
    expect(refused.reason).toBe('AboveMaximum');
    expect(refused.message).toMatch(LIMIT);
  });

  test('a megabyte of digits is refused without being parsed or echoed', () => {
    const refused = rejection(() =>
      funded().checkDeposit({ amount: '9'.repeat(1_000_000), currency: 'usd', reference: 'poison' }),
    );
    expect(refused.reason).toBe('AboveMaximum');
    expect(refused.message.length).toBeLessThan(200);
  });

  test('the maximum itself is accepted everywhere', () => {
    const budget = new Budget(initialBudgetState('test', 'usd'));
    budget.deposit({ amount: MAX, currency: 'usd', reference: 'all of it' }, key(), NOON);
    budget.setPolicy({ dailySpendCap: MAX, perReservationCap: MAX });
    const { result } = budget.reserve({ amount: MAX, ref: 'all', purpose: 'p' }, key(), NOON);
    budget.settle({ reservationId: result.reservationId, actual: MAX }, key(), NOON);
    expect(budget.status(NOON)).toMatchObject({ deposited: MAX, spent: MAX, available: '0' });
  });

  test('a deposit that would bring the total deposited past the maximum is refused; up to it is accepted', () => {
    const budget = funded('999999999999000'); // 10 USD short of the maximum
    const refused = rejection(() => budget.checkDeposit({ amount: '1001', currency: 'usd', reference: 'over' }));
    expect(refused.reason).toBe('AboveMaximum');
    expect(refused.message).toBe(
      'a deposit of 10.01 USD would bring the total deposited in test to 10,000,000,000,000.01 USD, above the most one budget may take in ' +
        '(10,000,000,000,000.00 USD): deposit at most 10.00 USD here, and the rest in another budget',
    );
    expect(reason(() => budget.deposit({ amount: '1000', currency: 'usd', reference: 'last' }, key(), NOON))).toBe(
      'accepted',
    );
    expect(
      rejection(() => budget.checkDeposit({ amount: '1', currency: 'usd', reference: 'one more' })).message,
    ).toMatch(/it takes no more deposits; use another budget$/);
    // A retried deposit is answered again, not counted twice.
    expect(budget.deposit({ amount: '1000', currency: 'usd', reference: 'last' }, key(), NOON).result.duplicate).toBe(
      true,
    );
  });

  test('spending does not make room: what a budget took in over its life is what is bounded', () => {
    const budget = funded(MAX);
    const { result } = budget.reserve({ amount: MAX, ref: 'spend', purpose: 'p' }, key(), NOON);
    budget.settle({ reservationId: result.reservationId, actual: MAX }, key(), NOON);
    expect(budget.status(NOON).balance).toBe('0');
    expect(reason(() => budget.checkDeposit({ amount: '1', currency: 'usd', reference: 'refill' }))).toBe(
      'AboveMaximum',
    );
  });
});

test('references, refs and purposes with control characters are refused: PostgreSQL text cannot hold NUL, and the journal would stop', () => {
  const budget = new Budget(initialBudgetState('test', 'usd'));
  const refused = (action: () => unknown) => {
    try {
      action();
    } catch (error) {
      return error as BudgetRejection;
    }
    throw new Error('expected a refusal');
  };
  expect(refused(() => budget.checkDeposit({ amount: '100', currency: 'usd', reference: 'wire\u0000' }))).toMatchObject(
    { reason: 'InvalidRequest', message: 'reference must not hold control characters; use printable text' },
  );
  budget.deposit({ amount: '100', currency: 'usd', reference: 'wire-1' }, 'k1', new Date('2026-11-30T00:00:00Z'));
  expect(
    refused(() =>
      budget.checkReserve({ amount: '10', ref: 'job\n1', purpose: 'training' }, new Date('2026-11-30T00:00:00Z')),
    ).reason,
  ).toBe('InvalidRequest');
  expect(
    refused(() =>
      budget.checkReserve({ amount: '10', ref: 'job-1', purpose: 'train\u007fing' }, new Date('2026-11-30T00:00:00Z')),
    ).reason,
  ).toBe('InvalidRequest');
  expect(() =>
    budget.checkReserve({ amount: '10', ref: 'job-1 (été)', purpose: 'training' }, new Date('2026-11-30T00:00:00Z')),
  ).not.toThrow();
});
