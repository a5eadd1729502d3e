// The `computatrum` command for operators.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { journalBalances, reconcile } from '../activities/journal';
import { openDatabase } from '../db/prisma';
import { ConfigError, type Config, databaseUrl, loadConfig } from '../runtime/config';
import { type Client, type WorkflowHandle, WorkflowNotFoundError } from '@temporalio/client';
import { germlineHandle } from '../temporal/germline-client';
import { createLogger } from '../runtime/logging';
import { findTool, installTool, ToolError, TOOLS } from '../runtime/tools';
import { formatMoney, MoneyError } from '../workflows/money';
import { table } from './table';
import { PullProgressView } from './progress';
import { openStore } from '../store';
import { forkCheckpoint, CheckpointError, publishCheckpoint } from '../store/checkpoint';
import { parseReference } from '../store/names';
import { pullCheckpoint, PullError } from '../store/pull';
import { StoreError } from '../store/types';
import type { CheckpointListing } from '../platform/checkpoint-listing';
import { backfillDaily, dailyScheduleId } from '../temporal/schedules';
import { amountOption, capOption, liftable, platformUrl, print, UserError, withDatabase, withGermline } from './common';
import { AccountError, setRole } from '../platform/accounts';
import { addAutonomyCommands } from './autonomy';
import { addChildrenCommands } from './children';
import { addHubCommands } from './hub';
import { addStoreCommands } from './store';
import { platformApi } from './platform-api';
import { addTrainingCommands } from './training';
import { startStack } from './up';
import type { BudgetPolicy, LedgerEntry } from '../workflows/budget-api';
import { depositUpdate, ledgerQuery, pauseSignal, resumeSignal, setPolicyUpdate, statusQuery } from '../workflows/budget-api';
import { germlineWorkflowId, childWorkflowId } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';

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
  return [`daily spend cap:       ${show(policy.dailySpendCap)}`, `per-reservation cap:   ${show(policy.perReservationCap)}`];
}

export function buildProgram(config: () => Config): Command {
  const program = new Command('computatrum')
    .description('Orchestrator of the independent germline computatrum: budget, children, training, daily checkpoints.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('up')
    .description('start Temporal (embedded unless TEMPORAL_ADDRESS), PostgreSQL (PGlite unless DATABASE_URL), the worker, the platform and the germline')
    .option('--only <part>', 'run one part of a split deployment: platform or worker (needs TEMPORAL_ADDRESS and DATABASE_URL)', (v) => {
      if (v !== 'platform' && v !== 'worker') throw new InvalidArgumentError('--only is platform or worker');
      return v;
    })
    .action(async (options: { only?: 'platform' | 'worker' }) => {
      const cfg = config();
      const logger = createLogger(cfg.log);
      const stack = await startStack(cfg, logger, options.only ?? 'all');
      print('');
      print(`computatrum is up${options.only ? ` (${options.only} only)` : ''} — germline ${germlineWorkflowId(cfg.germline)}`);
      if (stack.urls.temporalUi) print(`  Temporal Web UI  ${stack.urls.temporalUi}/namespaces/${cfg.temporal.namespace}/workflows`);
      print(`  Temporal         ${stack.urls.temporal} (namespace ${cfg.temporal.namespace})`);
      if (stack.urls.platform) print(`  platform         ${stack.urls.platform}  (health: ${stack.urls.platform}/healthz)`);
      print(`  database         ${stack.urls.database}`);
      print(`  checkpoints      ${stack.urls.store}${stack.urls.platform ? `  (pull: ${stack.urls.platform}/v2/)` : ''}`);
      print(`  data folder      ${cfg.dataDir}`);
      print('Press Ctrl-C to stop.');
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            // A second Ctrl-C: give up on a clean stop; exit handlers still kill the dev server.
            logger.warn({ signal }, 'stopping now, without waiting');
            process.exit(130);
          }
          stopping = true;
          logger.info({ signal }, 'stopping (Ctrl-C again to stop at once)');
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        void stack.done.then(
          () => resolve(),
          (error: unknown) => {
            logger.fatal({ err: error }, 'the worker stopped');
            process.exitCode = 1;
            resolve();
          },
        );
      });
      await stack.stop();
      print('computatrum stopped.');
    });

  program
    .command('status')
    .description("show the germline's budget")
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const cfg = config();
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
        print(`  JOURNAL FAILING       since ${status.journalFailure.since}, ${status.journalFailure.failures} failed batch(es): ${status.journalFailure.message}`);
        print('                        new deposits and reservations are refused until it books again');
      }
    });

  program
    .command('deposit')
    .description('add funds to the germline budget (idempotent by reference)')
    .argument('<amount>', 'amount in the germline currency, e.g. 100.00 or 1,000.00', amountOption(config()))
    .requiredOption('--reference <reference>', 'unique reference of this deposit (bank transfer id, invoice...)')
    .action(async (amount: bigint, options: { reference: string }) => {
      const cfg = config();
      const result = await withGermline(cfg, (client) =>
        updateBudget(germlineHandle(client, cfg.germline), depositUpdate, { amount: amount.toString(), currency: cfg.currency, reference: options.reference }),
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
    .option('--limit <n>', 'how many entries', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--limit must be a positive whole number');
      return n;
    }, 50)
    .option('--json', 'print JSON')
    .action(async (options: { limit: number; json?: boolean }) => {
      const cfg = config();
      const entries = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(ledgerQuery, options.limit));
      if (options.json) return print(JSON.stringify(entries, null, 2));
      print(entries.length === 0 ? 'the ledger is empty: deposit funds with `computatrum deposit`' : ledgerTable(entries, cfg.currency));
    });

  program
    .command('reconcile')
    .description('check that the PostgreSQL journal and the germline workflow agree')
    .action(async () => {
      const cfg = config();
      const status = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(statusQuery));
      const db = openDatabase(databaseUrl(cfg), { maxConnections: 2 });
      try {
        const result = reconcile(status, await journalBalances(db, cfg.germline));
        print(table(['item', 'workflow', 'journal', ''], result.rows.map((r) => [r.item, r.workflow, r.journal, r.agrees ? 'ok' : 'MISMATCH'])));
        if (result.journalPending > 0) print(`${result.journalPending} accepted change(s) are still being written to the journal; run again shortly`);
        print(result.agrees ? 'journal and workflow agree' : 'journal and workflow DISAGREE');
        if (!result.agrees) process.exitCode = 1;
      } catch (error) {
        throw new UserError(`cannot read the journal at ${databaseUrl(cfg).replace(/\/\/[^@]*@/, '//***@')}: ${(error as Error).message}`);
      } finally {
        await db.$disconnect();
      }
    });

  const policy = program.command('policy').description('show or change the spending policy');
  policy
    .command('show')
    .action(async () => {
      const cfg = config();
      const status = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(statusQuery));
      for (const line of policyLines(status.policy, status.currency)) print(line);
    });
  policy
    .command('set')
    .description('change caps; give an amount, or "none" to lift a cap')
    .option('--daily-cap <amount>', 'most that may be committed per UTC day', capOption(config()))
    .option('--per-reservation-cap <amount>', 'most one reservation may hold', capOption(config()))
    .action(async (options: { dailyCap?: string; perReservationCap?: string }) => {
      const cfg = config();
      const change: Partial<BudgetPolicy> = {};
      if (options.dailyCap !== undefined) change.dailySpendCap = liftable(options.dailyCap);
      if (options.perReservationCap !== undefined) change.perReservationCap = liftable(options.perReservationCap);
      if (Object.keys(change).length === 0) throw new UserError('nothing to set: give --daily-cap and/or --per-reservation-cap', 2);
      const updated = await withGermline(cfg, (client) => updateBudget(germlineHandle(client, cfg.germline), setPolicyUpdate, change));
      for (const line of policyLines(updated, cfg.currency)) print(line);
    });

  /** The germline, or with --child one of its children: both hold books that pause the same way. */
  async function signalBooks(client: Client, cfg: Config, child: string | undefined, send: (handle: WorkflowHandle) => Promise<void>): Promise<void> {
    if (!child) return send(germlineHandle(client, cfg.germline));
    try {
      await send(client.workflow.getHandle(childWorkflowId(cfg.germline, child)));
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new UserError(`no running child ${child}: list them with \`computatrum children\``);
      throw error;
    }
  }
  program
    .command('pause')
    .description('refuse new reservations until resumed (deposits and settlements still go through)')
    .option('--child <name>', 'pause one child instead: it starts no new training run')
    .option('--reason <text>', 'why, for the record')
    .action(async (options: { reason?: string; child?: string }) => {
      const cfg = config();
      await withGermline(cfg, (client) => signalBooks(client, cfg, options.child, (handle) => handle.signal(pauseSignal, options.reason)));
      print(options.child ? `child ${options.child} paused` : `germline ${cfg.germline} paused`);
    });

  program
    .command('resume')
    .description('accept new reservations again')
    .option('--child <name>', 'resume one child instead')
    .action(async (options: { child?: string }) => {
      const cfg = config();
      await withGermline(cfg, (client) => signalBooks(client, cfg, options.child, (handle) => handle.signal(resumeSignal)));
      print(options.child ? `child ${options.child} resumed` : `germline ${cfg.germline} resumed`);
    });

  program
    .command('push')
    .description('publish a checkpoint folder to <repo>:<branch> (only blobs the store lacks are written)')
    .argument('<dir>', 'checkpoint folder (safetensors shards, tokenizer, card...)')
    .argument('<target>', 'repository and branch, e.g. germline/computatrum:main')
    .option('--parent <digest>', 'digest of the checkpoint this one was trained from')
    .option('--allow-pickle', 'accept pickle files (they can run code when loaded)')
    .action(async (dir: string, target: string, options: { parent?: string; allowPickle?: boolean }) => {
      const cfg = config();
      const { repo, reference } = parseReference(target);
      const store = await openStore(cfg.store);
      const published = await publishCheckpoint(store, repo, dir, {
        tag: reference,
        parent: options.parent,
        allowPickle: options.allowPickle,
        onFile: (file, written) => console.error(`${written > 0 ? 'stored ' : 'present'} ${file}`),
      });
      print(`${repo}:${reference} -> ${published.digest}`);
      print(`${published.manifest.layers.length} files, ${published.size} bytes; ${published.written} bytes written (the rest was already stored)`);
    });

  program
    .command('pull')
    .description('download a checkpoint, verifying every file; an interrupted pull resumes')
    .argument('<source>', 'repository and tag or digest, e.g. germline/computatrum:gpc-2026-11-25')
    .argument('<dir>', 'folder to write the files into')
    .option('--from <url>', 'platform or registry URL (default: this computatrum platform)')
    .option('--parallel <n>', 'files at once', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 32) throw new InvalidArgumentError('--parallel must be a whole number from 1 to 32');
      return n;
    }, 4)
    .action(async (source: string, dir: string, options: { from?: string; parallel: number }) => {
      const cfg = config();
      const { repo, reference } = parseReference(source);
      const baseUrl = platformUrl(cfg, options.from);
      const view = new PullProgressView(process.stderr);
      const result = await pullCheckpoint({
        baseUrl,
        repo,
        reference,
        dir,
        concurrency: options.parallel,
        // A paid breed is downloaded by who bought it: the platform knows them by their token.
        ...(cfg.apiToken ? { headers: { authorization: `Bearer ${cfg.apiToken}` } } : {}),
        onManifest: (files) => view.start(files),
        onProgress: (progress) => view.update(progress),
      });
      view.finish();
      print(`${repo}:${reference} (${result.digest}): ${result.files} files, ${result.size} bytes verified in ${dir}; ${result.received} bytes downloaded`);
    });

  program
    .command('fork')
    .description('start a branch from any tag: nothing is copied (with COMPUTATRUM_TOKEN: on the platform, as your account)')
    .argument('<source>', 'e.g. germline/computatrum:gpc-2026-11-25')
    .argument('<target>', 'e.g. trainers/alice/coder:main')
    .option('--from <url>', 'platform URL, with COMPUTATRUM_TOKEN (default: this computatrum platform)')
    .action(async (source: string, target: string, options: { from?: string }) => {
      const cfg = config();
      const from = parseReference(source);
      const to = parseReference(target);
      // A trainer forks on the platform, which checks where they may write; an operator on the daemon's host uses the store.
      const digest = cfg.apiToken
        ? (await platformApi(cfg, { ...options, signedIn: true }).graphql<{ fork: { digest: string } }>('mutation($from: String!, $to: String!) { fork(from: $from, to: $to) { digest } }', { from: source, to: target })).fork.digest
        : await forkCheckpoint(await openStore(cfg.store), from, { repo: to.repo, branch: to.reference });
      print(`${to.repo}:${to.reference} -> ${digest} (forked from ${source}, no bytes copied)`);
    });

  program
    .command('tags')
    .description('list the checkpoints of a repository with nicknames, sizes and digests')
    .argument('<repo>', 'e.g. germline/computatrum')
    .option('--from <url>', 'platform URL (default: this computatrum platform)')
    .option('--json', 'print JSON')
    .action(async (repo: string, options: { from?: string; json?: boolean }) => {
      const cfg = config();
      const baseUrl = platformUrl(cfg, options.from);
      let response: Response;
      try {
        response = await fetch(`${baseUrl}/api/checkpoints/${repo}`);
      } catch (error) {
        throw new UserError(`cannot reach ${baseUrl} (${(error as Error).message}): is \`computatrum up\` running?`);
      }
      const body = (await response.json()) as CheckpointListing & { error?: string };
      if (!response.ok) throw new UserError(body.error ?? `${baseUrl} answered ${response.status}`);
      if (options.json) return print(JSON.stringify(body, null, 2));
      print(table(['tag', 'nickname', 'size', 'files', 'digest'], body.tags.map((t) => [t.tag, t.nickname ?? '', String(t.size), String(t.files), t.digest.slice(0, 19)]), { alignRight: [2, 3] }));
      for (const skipped of body.skippedDays) print(`skipped ${skipped.day}: ${skipped.reason ?? ''}`);
    });

  program
    .command('daily')
    .description("trigger today's gpc tagging now, through the schedule (it also runs by itself at 00:00 UTC)")
    .action(async () => {
      const cfg = config();
      await withGermline(cfg, (client) => client.schedule.getHandle(dailyScheduleId(cfg.germline)).trigger());
      print(`triggered ${dailyScheduleId(cfg.germline)}; see the result with \`computatrum tags germline/${cfg.germline}\``);
    });

  program
    .command('backfill')
    .description('run the daily gpc tagging for missed days, through the schedule')
    .requiredOption('--from <day>', 'first day, YYYY-MM-DD')
    .requiredOption('--to <day>', 'last day, YYYY-MM-DD (inclusive)')
    .action(async (options: { from: string; to: string }) => {
      const cfg = config();
      const days = await withGermline(cfg, (client) => backfillDaily(client, cfg.germline, options.from, options.to).catch((error: Error) => {
        throw new UserError(error.message, 2);
      }));
      print(`backfill of ${days} day(s) handed to the schedule ${dailyScheduleId(cfg.germline)}; watch it in the Temporal UI`);
    });

  program
    .command('account-role')
    .description('make a platform account an operator, or a trainer again (needs the database)')
    .argument('<handle>', 'the account handle')
    .argument('<role>', 'trainer or operator')
    .action(async (handle: string, role: string) => {
      if (role !== 'trainer' && role !== 'operator') throw new UserError('role is trainer or operator', 2);
      const account = await withDatabase(config(), (db) =>
        setRole(db, handle, role).catch((error: unknown) => {
          throw error instanceof AccountError ? new UserError(`${error.message}: accounts are made by signing up on the platform`) : error;
        }),
      );
      print(`${account.handle} is now ${account.role === 'operator' ? 'an operator' : 'a trainer'}`);
    });

  addTrainingCommands(program, config);
  addChildrenCommands(program, config);
  addHubCommands(program, config);
  addStoreCommands(program, config);
  addAutonomyCommands(program, config);

  const tools = program.command('tools').description('the Go programs computatrum runs: the Temporal CLI and stripe-mock');
  tools
    .command('install')
    .description('build missing tools with `go install` into the tools folder (once per machine)')
    .action(async () => {
      const cfg = config();
      for (const tool of TOOLS) print(`${tool.name}: ${await installTool(tool, cfg.toolsDir, (line) => console.error(line))}`);
    });
  tools
    .command('show', { isDefault: true })
    .description('show where each tool is')
    .action(() => {
      const cfg = config();
      for (const tool of TOOLS) print(`${tool.name}: ${findTool(tool, cfg.toolsDir) ?? 'missing (run `npm run tools`)'}`);
    });

  return program;
}

export async function main(argv = process.argv): Promise<void> {
  // `computatrum ledger | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  let cached: Config | undefined;
  const config = () => (cached ??= loadConfig());
  try {
    await buildProgram(config).parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    if (error instanceof ConfigError || error instanceof MoneyError) {
      console.error(`computatrum: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof StoreError || error instanceof CheckpointError || error instanceof PullError) {
      console.error(`computatrum: ${error.message}`);
      process.exitCode = error instanceof StoreError && error.code === 'NAME_INVALID' ? 2 : 1;
      return;
    }
    if (error instanceof UserError || error instanceof ToolError) {
      console.error(`computatrum: ${error.message}`);
      process.exitCode = error instanceof UserError ? error.exitCode : 1;
      return;
    }
    console.error('computatrum: unexpected error:', error);
    process.exitCode = 1;
  }
}


