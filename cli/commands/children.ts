// Children and merges from the command line: children, child <name>, spawn, retire, leave, promote.
import { type Command, InvalidArgumentError } from 'commander';
import type { Config } from '../../runtime/config';
import { parseReference } from '../../store/names';
import type { ChildStatus } from '../../workflows/child-api';
import { formatMoney } from '../../workflows/money';
import { amountOption, print, UserError, withDatabase, withGermline } from '../common';
import { table } from '../table';
import { childWorkflowId, germlineRepository } from '../../workflows/names';

function showChild(status: ChildStatus, currency: string): void {
  const money = (v: string) => formatMoney(v, currency);
  print(`child ${status.name} of germline/${status.germline}  (${status.state})`);
  print(`  purpose     ${status.purpose}`);
  print(
    `  allowance   ${money(status.allowance)}: spent ${money(status.spent)}, reserved ${money(status.reserved)}, available ${money(status.available)}`,
  );
  print(`  branch      ${status.branch ?? 'none yet (the germline had no head to fork)'}`);
  if (status.owner) print(`  owner       ${status.owner}`);
  if (status.endReason) print(`  why ended   ${status.endReason}`);
}

/** An ended child whose workflow the server no longer keeps, as the germline archived it in PostgreSQL. */
async function archivedStatus(cfg: Config, name: string): Promise<ChildStatus> {
  const { archivedChild } = await import('../../db/germline-archive.js');
  const record = await withDatabase(cfg, (db) => archivedChild(db, cfg.germline, name));
  if (!record) throw new UserError(`no child ${name}: list them with \`computatrum children\``);
  return {
    germline: cfg.germline,
    name: record.name,
    purpose: record.purpose,
    state: record.state,
    allowance: record.allowance,
    spent: record.spent ?? '0',
    reserved: '0',
    available: '0',
    ...(record.owner ? { owner: record.owner } : {}),
    ...(record.reason ? { endReason: record.reason } : {}),
  };
}

function pageSize(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 1000)
    throw new InvalidArgumentError('a page is 1 to 1000 children');
  return count;
}

export function addChildrenCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Children:');

  program
    .command('children')
    .description("list the germline's children in spawn order, ended ones too: allowance, state, what they spent")
    .option('--json', 'print JSON')
    .option('--first <count>', 'list at most this many (a page)', pageSize, 100)
    .option('--after <name>', 'list the children spawned after this one (the next page)')
    .action(async (options: { json?: boolean; first: number; after?: string }) => {
      const cfg = config();
      const [{ germlineHandle }, { childrenQuery }, { listChildren, UnknownChildCursorError }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/child-api.js'),
        import('../../db/germline-archive.js'),
      ]);
      const live = await withGermline(cfg, (client) => germlineHandle(client, cfg.germline).query(childrenQuery));
      // Ended children live in PostgreSQL, the live ones in the germline workflow.
      const page = await withDatabase(cfg, async (db) => {
        try {
          return await listChildren(db, cfg.germline, live, {
            first: options.first,
            ...(options.after ? { after: options.after } : {}),
          });
        } catch (error) {
          if (error instanceof UnknownChildCursorError) throw new UserError(error.message);
          throw error;
        }
      });
      const children = page.children;
      if (options.json) return print(JSON.stringify(children, null, 2));
      if (children.length === 0)
        return print(
          options.after
            ? `no children after ${options.after}`
            : 'no children yet: spawn one with `computatrum spawn <name> --allowance 50.00`',
        );
      print(
        table(
          ['child', 'state', 'allowance', 'spent', 'purpose', 'workflow'],
          children.map((c) => [
            c.name,
            c.state,
            formatMoney(c.allowance, cfg.currency),
            c.spent === undefined ? '' : formatMoney(c.spent, cfg.currency),
            c.purpose,
            c.workflowId,
          ]),
          { alignRight: [2, 3] },
        ),
      );
      if (page.next) print(`more: computatrum children --first ${options.first} --after ${page.next}`);
    });

  program
    .command('child')
    .description('show one child: state, allowance, branch')
    .argument('<name>', 'child name')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }) => {
      const cfg = config();
      const [{ WorkflowNotFoundError }, { childStatusQuery }] = await Promise.all([
        import('@temporalio/client'),
        import('../../workflows/child-api.js'),
      ]);
      const status =
        (await withGermline(cfg, async (client) => {
          try {
            return await client.workflow.getHandle(childWorkflowId(cfg.germline, name)).query(childStatusQuery);
          } catch (error) {
            if (error instanceof WorkflowNotFoundError) return undefined;
            throw error;
          }
        })) ?? (await archivedStatus(cfg, name));
      if (options.json) return print(JSON.stringify(status, null, 2));
      showChild(status, cfg.currency);
    });

  program
    .command('spawn')
    .description('spawn a child with an allowance reserved from the germline budget (within the guardrails)')
    .argument('<name>', 'child name: lowercase letters, digits and dashes')
    .requiredOption('--allowance <amount>', 'what the child may spend, e.g. 50.00', amountOption(config))
    .option('--purpose <text>', 'what the child is for', 'a specialised breed')
    .action(async (name: string, options: { allowance: bigint; purpose: string }) => {
      const cfg = config();
      const [{ germlineHandle }, { spawnChildUpdate }, { updateBudget }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/child-api.js'),
        import('../../temporal/budget-client.js'),
      ]);
      const record = await withGermline(cfg, (client) =>
        updateBudget(germlineHandle(client, cfg.germline), spawnChildUpdate, {
          name,
          allowance: options.allowance.toString(),
          purpose: options.purpose,
        }),
      );
      print(
        `spawned ${record.name} with ${formatMoney(record.allowance, cfg.currency)} (reservation ${record.reservationId}); workflow ${record.workflowId}`,
      );
    });

  program
    .command('promote')
    .description("make a trainer's or child's checkpoint the germline's head, if its metrics pass the eval gate")
    .argument('<checkpoint>', 'e.g. children/coder:main or trainers/alice/coder@sha256:...')
    .action(async (checkpoint: string) => {
      const cfg = config();
      const { repo, reference } = parseReference(checkpoint);
      const [{ germlineHandle }, { promoteUpdate }, { updateBudget }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/germline-api.js'),
        import('../../temporal/budget-client.js'),
      ]);
      const result = await withGermline(cfg, (client) =>
        updateBudget(germlineHandle(client, cfg.germline), promoteUpdate, { repo, reference }),
      );
      print(
        `${germlineRepository(cfg.germline)}:main -> ${result.digest} (${result.gate}); the next daily tag publishes it`,
      );
    });

  for (const [command, description] of [
    ['retire', 'retire a child: no new spending, its runs settle, what it spent is charged and the rest returns'],
    ['leave', 'let a child leave: its branch goes to a new owner, what it spent is charged and the rest returns'],
  ] as const) {
    const sub = program
      .command(command)
      .description(description)
      .argument('<name>', 'child name')
      .requiredOption('--reason <text>', 'why, for the record');
    if (command === 'leave')
      sub.requiredOption('--owner <handle>', 'who receives its branch (trainers/<handle>/<name>)');
    sub.action(async (name: string, options: { reason: string; owner?: string }) => {
      const cfg = config();
      const [{ WorkflowNotFoundError }, { leaveUpdate, retireUpdate }] = await Promise.all([
        import('@temporalio/client'),
        import('../../workflows/child-api.js'),
      ]);
      const status = await withGermline(cfg, async (client) => {
        const handle = client.workflow.getHandle(childWorkflowId(cfg.germline, name));
        try {
          return (
            command === 'retire'
              ? await handle.executeUpdate(retireUpdate, { args: [options.reason] })
              : await handle.executeUpdate(leaveUpdate, { args: [{ owner: options.owner!, reason: options.reason }] })
          ) as ChildStatus;
        } catch (error) {
          if (error instanceof WorkflowNotFoundError)
            throw new UserError(`no running child ${name}: list them with \`computatrum children\``);
          throw error;
        }
      });
      showChild(status, cfg.currency);
    });
  }
}
