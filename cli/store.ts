// `computatrum store fsck|gc`: housekeeping of the embedded checkpoint store (the OCI layout). A
// registry keeps its own books: its operators run the registry's garbage collector instead.
import type { Command } from 'commander';
import { openStore } from '../store';
import { LayoutStore } from '../store/layout';
import { checkLayout, collectGarbage } from '../store/layout-maintenance';
import type { Config } from '../runtime/config';
import { print, UserError } from './common';
import { parseDuration } from './training';

const DEFAULT_GRACE = '1h';

async function openLayout(config: Config): Promise<LayoutStore> {
  const store = await openStore(config.store);
  if (!(store instanceof LayoutStore)) {
    throw new UserError(`the checkpoint store is the registry ${store.location}: use the registry's own garbage collector (e.g. \`registry garbage-collect\`)`);
  }
  return store;
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function addStoreCommands(program: Command, config: () => Config): void {
  const store = program.command('store').description('check and clean the embedded checkpoint store');

  store
    .command('fsck')
    .description('report unreferenced, missing, damaged (--verify) and half-written files; exits 1 when something is missing or damaged')
    .option('--verify', 'hash every blob (reads the whole store)')
    .action(async (options: { verify?: boolean }) => {
      const layout = await openLayout(config());
      const report = await checkLayout(layout, { verify: options.verify });
      print(`${layout.location}: ${report.blobs} blobs, ${megabytes(report.bytes)}`);
      print(`unreferenced blobs  ${report.unreferenced.length} (${megabytes(report.unreferenced.reduce((s, b) => s + b.bytes, 0))})  ${report.unreferenced.length ? 'computatrum store gc removes them' : ''}`.trimEnd());
      const abandoned = report.leftovers.filter((l) => !l.writing);
      print(`half-written files  ${abandoned.length} left by interrupted writes (${megabytes(abandoned.reduce((s, l) => s + l.bytes, 0))})${report.leftovers.length > abandoned.length ? `, ${report.leftovers.length - abandoned.length} of writes in progress` : ''}`);
      for (const missing of report.missing) print(`MISSING  ${missing.digest}  referenced by ${missing.repositories.join(', ')}`);
      for (const damaged of report.damaged) print(`DAMAGED  ${damaged}  (its content does not hash to its name)`);
      if (report.missing.length > 0 || report.damaged.length > 0) {
        throw new UserError(`${report.missing.length} missing and ${report.damaged.length} damaged blob(s): push the affected checkpoints again`);
      }
      print(options.verify ? 'every referenced blob is present and hashes to its name' : 'every referenced blob is present (--verify also hashes them)');
    });

  store
    .command('gc')
    .description('remove half-written files of interrupted writes and blobs no manifest references')
    .option('--grace <duration>', `keep unreferenced blobs younger than this, e.g. 30m (default ${DEFAULT_GRACE})`, parseDuration)
    .option('--dry-run', 'only say what would be removed')
    .action(async (options: { grace?: number; dryRun?: boolean }) => {
      const layout = await openLayout(config());
      const graceMs = (options.grace ?? parseDuration(DEFAULT_GRACE)) * 1000;
      const result = await collectGarbage(layout, { graceMs, dryRun: options.dryRun });
      for (const item of result.removed) print(`${options.dryRun ? 'would remove' : 'removed'}  ${item.file}`);
      print(`${options.dryRun ? 'would free' : 'freed'} ${megabytes(result.bytes)} in ${result.removed.length} file(s); ${result.kept} unreferenced blob(s) kept (younger than the grace time, or a write in progress)`);
    });
}
