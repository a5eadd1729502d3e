// The germline's budget: status, deposit, ledger, reconcile, policy show|set, pause, resume.
import { type Command, InvalidArgumentError } from 'commander';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../../runtime/config';
import type { BudgetPolicy, LedgerEntry } from '../../workflows/budget-api';
import { formatMoney } from '../../workflows/money';
import { childWorkflowId } from '../../workflows/names';
import { amountOption, capOption, liftable, print, UserError, withGermline } from '../common';
import { table } from '../table';

function ledgerTable(entries: LedgerEntry[], currency: string): string {
  return table(
    ['#', 'time (UTC)', 'kind', 'amount', 'spent', 'reservation', 'reference', 'available', 'balance'],
    entries.map((e) => [
      String(e.sequence),
      e.at.replace('T', ' ').slice(0, 19),
      e.kind,
      formatMoney(e.amount, currency),
      e.spent === undefined ? '' : formatMoney(e.spent, currency),
      e.reservationId ?? '',
      e.reference ?? '',
      formatMoney(e.available, currency),
      formatMoney(e.balance, currency),
    ]),
    { alignRight: [0, 3, 4, 7, 8] },
  );
}

function policyLines(policy: BudgetPolicy, currency: string): string[] {
  const show = (v: string | null) => (v === null ? 'no cap' : formatMoney(v, currency));
  return [
    `daily spend cap:       ${show(policy.dailySpendCap)}`,
    `per-reservation cap:   ${show(policy.perReservationCap)}`,
  ];
}

/** The germline, or with --child one of its children: both hold books that pause the same way. */
async function signalBooks(
  client: Client,
  cfg: Config,
  child: string | undefined,
  send: (handle: WorkflowHandle) => Promise<void>,
): Promise<void> {
  const [{ WorkflowNotFoundError }, { germlineHandle }] = await Promise.all([
    import('@temporalio/client'),
    import('../../temporal/germline-client.js'),
  ]);
  if (!child) return send(germlineHandle(client, cfg.germline));
  try {
    await send(client.workflow.getHandle(childWorkflowId(cfg.germline, child)));
  } catch (error) {
    if (error instanceof WorkflowNotFoundError)
      throw new UserError(`no running child ${child}: list them with \`computatrum children\``);
    throw error;
  }
}

export function addBudgetCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Budget:');

  program
    .command('status')
    .description("show the germline's budget")
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const cfg = config();
      const [{ germlineHandle }, { statusQuery }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/budget-api.js'),
      ]);
      const status = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(statusQuery));
      if (options.json) return print(JSON.stringify(status, null, 2));
      const money = (v: string) => formatMoney(v, status.currency);
      print(`germline ${status.germline}  (${status.state}${status.paused ? ', new spending paused' : ''})`);
      print(`  balance               ${money(status.balance)}`);
      print(`  reserved              ${money(status.reserved)}  (${status.openReservations.length} open)`);
      print(`  available             ${money(status.available)}`);
      print(`  deposited (all time)  ${money(status.deposited)}`);
      print(`  spent (all time)      ${money(status.spent)}`);
      print(`  committed today       ${money(status.committedToday.amount)}  (${status.committedToday.day} UTC)`);
      for (const line of policyLines(status.policy, status.currency)) print(`  ${line}`);
      print(`  ledger entries        ${status.sequence}  (${status.journalPending} not yet in the journal)`);
      if (status.journalFailure) {
        print(
          `  JOURNAL FAILING       since ${status.journalFailure.since}, ${status.journalFailure.failures} failed batch(es): ${status.journalFailure.message}`,
        );
        print('                        new deposits and reservations are refused until it books again');
      }
    });

  program
    .command('deposit')
    .description('add funds to the germline budget (idempotent by reference)')
    .argument('<amount>', 'amount in the germline currency, e.g. 100.00 or 1,000.00', amountOption(config))
    .requiredOption('--reference <reference>', 'unique reference of this deposit (bank transfer id, invoice...)')
    .action(async (amount: bigint, options: { reference: string }) => {
      const cfg = config();
      const [{ germlineHandle }, { depositUpdate }, { updateBudget }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/budget-api.js'),
        import('../../temporal/budget-client.js'),
      ]);
      const result = await withGermline(cfg, (client) =>
        updateBudget(germlineHandle(client, cfg.germline), depositUpdate, {
          amount: amount.toString(),
          currency: cfg.currency,
          reference: options.reference,
        }),
      );
      print(
        result.duplicate
          ? `deposit ${options.reference} was already booked (entry #${result.sequence}); nothing changed`
          : `deposited ${formatMoney(amount, cfg.currency)} (entry #${result.sequence}); available ${formatMoney(result.available, cfg.currency)}`,
      );
    });

  program
    .command('ledger')
    .description('show the latest budget ledger entries')
    .option(
      '--limit <n>',
      'how many entries',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--limit must be a positive whole number');
        return n;
      },
      50,
    )
    .option('--json', 'print JSON')
    .action(async (options: { limit: number; json?: boolean }) => {
      const cfg = config();
      const [{ germlineHandle }, { ledgerQuery }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/budget-api.js'),
      ]);
      const entries = await withGermline(cfg, (client) =>
        germlineHandle(client, cfg.germline).query(ledgerQuery, options.limit),
      );
      if (options.json) return print(JSON.stringify(entries, null, 2));
      print(
        entries.length === 0
          ? 'the ledger is empty: deposit funds with `computatrum deposit`'
          : ledgerTable(entries, cfg.currency),
      );
    });

  program
    .command('reconcile')
    .description('check that the PostgreSQL journal and the germline workflow agree')
    .action(async () => {
      const cfg = config();
      const [{ germlineHandle }, { statusQuery }, { journalBalances, reconcile }, { openDatabase }, { databaseUrl }] =
        await Promise.all([
          import('../../temporal/germline-client.js'),
          import('../../workflows/budget-api.js'),
          import('../../activities/journal.js'),
          import('../../db/prisma.js'),
          import('../../runtime/config.js'),
        ]);
      const status = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(statusQuery));
      const db = openDatabase(databaseUrl(cfg), { maxConnections: 2 });
      try {
        const result = reconcile(status, await journalBalances(db, cfg.germline));
        print(
          table(
            ['item', 'workflow', 'journal', ''],
            result.rows.map((r) => [r.item, r.workflow, r.journal, r.agrees ? 'ok' : 'MISMATCH']),
          ),
        );
        if (result.journalPending > 0)
          print(
            `${result.journalPending} accepted change(s) are still being written to the journal; run again shortly`,
          );
        print(result.agrees ? 'journal and workflow agree' : 'journal and workflow DISAGREE');
        if (!result.agrees) process.exitCode = 1;
      } catch (error) {
        throw new UserError(
          `cannot read the journal at ${databaseUrl(cfg).replace(/\/\/[^@]*@/, '//***@')}: ${(error as Error).message}`,
        );
      } finally {
        await db.$disconnect();
      }
    });

  const policy = program.command('policy').description('show or change the spending policy');
  policy.command('show').action(async () => {
    const cfg = config();
    const [{ germlineHandle }, { statusQuery }] = await Promise.all([
      import('../../temporal/germline-client.js'),
      import('../../workflows/budget-api.js'),
    ]);
    const status = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(statusQuery));
    for (const line of policyLines(status.policy, status.currency)) print(line);
  });
  policy
    .command('set')
    .description('change caps; give an amount, or "none" to lift a cap')
    .option('--daily-cap <amount>', 'most that may be committed per UTC day', capOption(config))
    .option('--per-reservation-cap <amount>', 'most one reservation may hold', capOption(config))
    .action(async (options: { dailyCap?: string; perReservationCap?: string }) => {
      const cfg = config();
      const change: Partial<BudgetPolicy> = {};
      if (options.dailyCap !== undefined) change.dailySpendCap = liftable(options.dailyCap);
      if (options.perReservationCap !== undefined) change.perReservationCap = liftable(options.perReservationCap);
      if (Object.keys(change).length === 0)
        throw new UserError('nothing to set: give --daily-cap and/or --per-reservation-cap', 2);
      const [{ germlineHandle }, { setPolicyUpdate }, { updateBudget }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/budget-api.js'),
        import('../../temporal/budget-client.js'),
      ]);
      const updated = await withGermline(cfg, (client) =>
        updateBudget(germlineHandle(client, cfg.germline), setPolicyUpdate, change),
      );
      for (const line of policyLines(updated, cfg.currency)) print(line);
    });

  program
    .command('pause')
    .description('refuse new reservations until resumed (deposits and settlements still go through)')
    .option('--child <name>', 'pause one child instead: it starts no new training run')
    .option('--reason <text>', 'why, for the record')
    .action(async (options: { reason?: string; child?: string }) => {
      const cfg = config();
      const { pauseSignal } = await import('../../workflows/budget-api.js');
      await withGermline(cfg, (client) =>
        signalBooks(client, cfg, options.child, (handle) => handle.signal(pauseSignal, options.reason)),
      );
      print(options.child ? `child ${options.child} paused` : `germline ${cfg.germline} paused`);
    });

  program
    .command('resume')
    .description('accept new reservations again')
    .option('--child <name>', 'resume one child instead')
    .action(async (options: { child?: string }) => {
      const cfg = config();
      const { resumeSignal } = await import('../../workflows/budget-api.js');
      await withGermline(cfg, (client) =>
        signalBooks(client, cfg, options.child, (handle) => handle.signal(resumeSignal)),
      );
      print(options.child ? `child ${options.child} resumed` : `germline ${cfg.germline} resumed`);
    });
}
