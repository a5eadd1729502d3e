// The journal activity against the real test PostgreSQL: retries book nothing twice, and the
// books cannot be edited after the fact.
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { openDatabase, type Database } from '../../db/prisma';
import { createJournalActivities, journalBalances } from '../../activities/journal';
import { MIGRATIONS_DIR, migrateDatabase, migrationFiles } from '../../db/migrate';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Budget, initialBudgetState } from '../../workflows/budget';
import { testGlobals } from '../setup/globals';

let db: Database;
beforeAll(() => {
  db = openDatabase(testGlobals().databaseUrl);
});
afterAll(async () => {
  await db.$disconnect();
});

function someEntries(germline: string) {
  const budget = new Budget(initialBudgetState(germline, 'usd'));
  const now = new Date('2026-11-25T10:00:00Z');
  budget.deposit({ amount: '10000', currency: 'usd', reference: 'wire' }, `germline/${germline}/u1`, now);
  const { result } = budget.reserve(
    { amount: '3000', ref: 'job', purpose: 'training' },
    `germline/${germline}/u2`,
    now,
  );
  budget.settle({ reservationId: result.reservationId, actual: '1200' }, `germline/${germline}/u3`, now);
  return budget.unjournaled();
}

test('booking the same batch again (an activity retry) books nothing twice', async () => {
  const germline = `journal-${randomUUID().slice(0, 8)}`;
  const { recordJournalEntries } = createJournalActivities(db);
  const entries = someEntries(germline);
  const activity = new MockActivityEnvironment(); // only supplies the activity context for its logger
  await activity.run(recordJournalEntries, { germline, currency: 'usd', entries });
  await activity.run(recordJournalEntries, { germline, currency: 'usd', entries });
  await activity.run(recordJournalEntries, { germline, currency: 'usd', entries: entries.slice(1) });

  expect(await journalBalances(db, germline)).toEqual({
    available: 10000n - 3000n + 1800n,
    reserved: 0n,
    spent: 1200n,
    deposits: -10000n,
    transactions: 3,
    lastSequence: 3,
  });
});

test('the journal is append-only: updates and deletes are refused by the database', async () => {
  const germline = `journal-${randomUUID().slice(0, 8)}`;
  await new MockActivityEnvironment().run(createJournalActivities(db).recordJournalEntries, {
    germline,
    currency: 'usd',
    entries: someEntries(germline),
  });
  await expect(db.journalPosting.updateMany({ where: { germline }, data: { amount: 1n } })).rejects.toThrow(
    /append-only/,
  );
  await expect(db.journalTransaction.deleteMany({ where: { germline } })).rejects.toThrow(/append-only/);
  expect((await journalBalances(db, germline)).transactions).toBe(3);
});

test('migrations are applied once; running them again changes nothing', async () => {
  expect(await migrateDatabase(testGlobals().databaseUrl)).toEqual([]);
});

test('prisma/schema.prisma has no change that lacks a migration (npm run db:migration -- <name>)', () => {
  const latest = migrationFiles().at(-1)!;
  const migrated = readFileSync(path.join(MIGRATIONS_DIR, latest.name, 'schema.prisma'), 'utf8');
  expect(readFileSync(path.join(MIGRATIONS_DIR, '..', 'schema.prisma'), 'utf8')).toBe(migrated);
});
