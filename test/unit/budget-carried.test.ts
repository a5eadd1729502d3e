// What a germline's budget carries across continue-as-new: the newest entries of each memory and
// every open reservation's ref, so the state stays small while a run keeps its full memories.
import { Budget, initialBudgetState } from '../../workflows/budget';

const noon = new Date('2026-11-25T12:00:00Z');

function busyBudget(): { budget: Budget; open: string } {
  const budget = new Budget(initialBudgetState('carried', 'usd'));
  budget.deposit({ amount: '1000000', currency: 'usd', reference: 'seed' }, 'k/seed', noon);
  const open = budget.reserve({ amount: '10', ref: 'open-early', purpose: 'open' }, 'k/open', noon).result
    .reservationId;
  for (let i = 0; i < 1000; i++) {
    const { reservationId } = budget.reserve(
      { amount: '10', ref: `ref-${i}`, purpose: 'fill' },
      `k/r${i}`,
      noon,
    ).result;
    if (i % 2 === 0) budget.settle({ reservationId, actual: '4' }, `k/s${i}`, noon);
    else budget.release({ reservationId }, `k/x${i}`, noon);
  }
  budget.markJournaled(budget.status(noon).sequence); // the journal booked them (the outbox is carried whole)
  return { budget, open };
}

test('a snapshot with `keep` carries the newest entries of each memory and the refs of open reservations', () => {
  const { budget, open } = busyBudget();
  const full = budget.snapshot({ nextGeneration: true });
  const kept = budget.snapshot({ nextGeneration: true, keep: { recent: 10, reserveRefs: 5, closed: 7 } });
  expect(full.reserveRefs).toHaveLength(1001);
  expect(kept.recent).toEqual(full.recent.slice(-10));
  expect(kept.closed).toEqual(full.closed.slice(-7));
  expect(kept.reserveRefs).toEqual([['open-early', open, '10'], ...full.reserveRefs.slice(-5)]);
  // Everything else is carried as it is: the money, the open reservations, the counters.
  const { recent: _r, closed: _c, reserveRefs: _f, ...rest } = kept;
  const { recent: _r2, closed: _c2, reserveRefs: _f2, ...fullRest } = full;
  expect(rest).toEqual(fullRest);
  expect(JSON.stringify(kept).length).toBeLessThan(JSON.stringify(full).length / 5);
});

test('a budget from a kept snapshot answers retries of what it kept and takes what it forgot as new', () => {
  const { budget, open } = busyBudget();
  const next = new Budget(budget.snapshot({ keep: { recent: 10, reserveRefs: 5, closed: 7 } }));
  expect(next.reserve({ amount: '10', ref: 'open-early', purpose: 'open' }, 'k/again', noon).result).toMatchObject({
    duplicate: true,
    reservationId: open,
  });
  expect(next.reserve({ amount: '10', ref: 'ref-999', purpose: 'fill' }, 'k/again2', noon).result.duplicate).toBe(true);
  expect(next.reserve({ amount: '10', ref: 'ref-0', purpose: 'fill' }, 'k/again3', noon).result.duplicate).toBe(false);
  expect(next.status(noon)).toMatchObject({ spent: budget.status(noon).spent });
});
