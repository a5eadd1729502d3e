// Running and looking after computatrum: up (the whole stack, or one part of a split deployment),
// tools (the Go programs it runs), store fsck|gc (the embedded checkpoint store's housekeeping) and
// account-role (operators are made by whoever holds the database).
import { type Command, InvalidArgumentError } from 'commander';
import type { Config } from '../../runtime/config';
import type { LayoutStore } from '../../store/layout';
import { germlineWorkflowId } from '../../workflows/names';
import { parseDuration, print, UserError, withDatabase } from '../common';

const DEFAULT_GRACE = '1h';

/** The embedded store (an OCI layout): a registry keeps its own books, and has its own garbage collector. */
async function openLayout(config: Config): Promise<LayoutStore> {
  const [{ openStore }, { LayoutStore }] = await Promise.all([
    import('../../store/index.js'),
    import('../../store/layout.js'),
  ]);
  const store = await openStore(config.store);
  if (!(store instanceof LayoutStore)) {
    throw new UserError(
      `the checkpoint store is the registry ${store.location}: use the registry's own garbage collector (e.g. \`registry garbage-collect\`)`,
    );
  }
  return store;
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function addOperationsCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Operations:');

  program
    .command('up')
    .description(
      'start Temporal (embedded unless TEMPORAL_ADDRESS), PostgreSQL (PGlite unless DATABASE_URL), the worker, the platform and the germline',
    )
    .option(
      '--only <part>',
      'run one part of a split deployment: platform or worker (needs TEMPORAL_ADDRESS and DATABASE_URL)',
      (v) => {
        if (v !== 'platform' && v !== 'worker') throw new InvalidArgumentError('--only is platform or worker');
        return v;
      },
    )
    .action(async (options: { only?: 'platform' | 'worker' }) => {
      const cfg = config();
      const [{ createLogger }, { startStack }] = await Promise.all([
        import('../../runtime/logging.js'),
        import('./up.js'),
      ]);
      const logger = createLogger(cfg.log);
      const stack = await startStack(cfg, logger, options.only ?? 'all');
      print('');
      print(
        `computatrum is up${options.only ? ` (${options.only} only)` : ''} — germline ${germlineWorkflowId(cfg.germline)}`,
      );
      if (stack.urls.temporalUi)
        print(`  Temporal Web UI  ${stack.urls.temporalUi}/namespaces/${cfg.temporal.namespace}/workflows`);
      print(`  Temporal         ${stack.urls.temporal} (namespace ${cfg.temporal.namespace})`);
      if (stack.urls.platform)
        print(`  platform         ${stack.urls.platform}  (health: ${stack.urls.platform}/healthz)`);
      print(`  database         ${stack.urls.database}`);
      print(
        `  checkpoints      ${stack.urls.store}${stack.urls.platform ? `  (pull: ${stack.urls.platform}/v2/)` : ''}`,
      );
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

  const tools = program
    .command('tools')
    .description('the Go programs computatrum runs: the Temporal CLI and stripe-mock');
  tools
    .command('install')
    .description('build missing tools with `go install` into the tools folder (once per machine)')
    .action(async () => {
      const cfg = config();
      const { installTool, TOOLS } = await import('../../runtime/tools.js');
      for (const tool of TOOLS)
        print(`${tool.name}: ${await installTool(tool, cfg.toolsDir, (line) => console.error(line))}`);
    });
  tools
    .command('show', { isDefault: true })
    .description('show where each tool is')
    .action(async () => {
      const cfg = config();
      const { findTool, TOOLS } = await import('../../runtime/tools.js');
      for (const tool of TOOLS)
        print(`${tool.name}: ${findTool(tool, cfg.toolsDir) ?? 'missing (run `npm run tools`)'}`);
    });

  const store = program.command('store').description('check and clean the embedded checkpoint store');

  store
    .command('fsck')
    .description(
      'report unreferenced, missing, damaged (--verify) and half-written files; exits 1 when something is missing or damaged',
    )
    .option('--verify', 'hash every blob (reads the whole store)')
    .action(async (options: { verify?: boolean }) => {
      const layout = await openLayout(config());
      const { checkLayout } = await import('../../store/layout-maintenance.js');
      const report = await checkLayout(layout, { verify: options.verify });
      print(`${layout.location}: ${report.blobs} blobs, ${megabytes(report.bytes)}`);
      print(
        `unreferenced blobs  ${report.unreferenced.length} (${megabytes(report.unreferenced.reduce((s, b) => s + b.bytes, 0))})  ${report.unreferenced.length ? 'computatrum store gc removes them' : ''}`.trimEnd(),
      );
      const abandoned = report.leftovers.filter((l) => !l.writing);
      print(
        `half-written files  ${abandoned.length} left by interrupted writes (${megabytes(abandoned.reduce((s, l) => s + l.bytes, 0))})${report.leftovers.length > abandoned.length ? `, ${report.leftovers.length - abandoned.length} of writes in progress` : ''}`,
      );
      for (const missing of report.missing)
        print(`MISSING  ${missing.digest}  referenced by ${missing.repositories.join(', ')}`);
      for (const damaged of report.damaged) print(`DAMAGED  ${damaged}  (its content does not hash to its name)`);
      if (report.missing.length > 0 || report.damaged.length > 0) {
        throw new UserError(
          `${report.missing.length} missing and ${report.damaged.length} damaged blob(s): push the affected checkpoints again`,
        );
      }
      print(
        options.verify
          ? 'every referenced blob is present and hashes to its name'
          : 'every referenced blob is present (--verify also hashes them)',
      );
    });

  store
    .command('gc')
    .description('remove half-written files of interrupted writes and blobs no manifest references')
    .option(
      '--grace <duration>',
      `keep unreferenced blobs younger than this, e.g. 30m (default ${DEFAULT_GRACE})`,
      parseDuration,
    )
    .option('--dry-run', 'only say what would be removed')
    .action(async (options: { grace?: number; dryRun?: boolean }) => {
      const layout = await openLayout(config());
      const { collectGarbage } = await import('../../store/layout-maintenance.js');
      const graceMs = (options.grace ?? parseDuration(DEFAULT_GRACE)) * 1000;
      const result = await collectGarbage(layout, { graceMs, dryRun: options.dryRun });
      for (const item of result.removed) print(`${options.dryRun ? 'would remove' : 'removed'}  ${item.file}`);
      print(
        `${options.dryRun ? 'would free' : 'freed'} ${megabytes(result.bytes)} in ${result.removed.length} file(s); ${result.kept} unreferenced blob(s) kept (younger than the grace time, or a write in progress)`,
      );
    });

  program
    .command('account-role')
    .description('make a platform account an operator, or a trainer again (needs the database)')
    .argument('<handle>', 'the account handle')
    .argument('<role>', 'trainer or operator')
    .action(async (handle: string, role: string) => {
      if (role !== 'trainer' && role !== 'operator') throw new UserError('role is trainer or operator', 2);
      const [{ setRole }, { AccountError }] = await Promise.all([
        import('../../platform/accounts.js'),
        import('../../platform/errors.js'),
      ]);
      const account = await withDatabase(config(), (db) =>
        setRole(db, handle, role).catch((error: unknown) => {
          throw error instanceof AccountError
            ? new UserError(`${error.message}: accounts are made by signing up on the platform`)
            : error;
        }),
      );
      print(`${account.handle} is now ${account.role === 'operator' ? 'an operator' : 'a trainer'}`);
    });
}
