// Hosted instances from the command line: launch <image>, instances, instance <id>, chat, stop <id>. The
// germline (or one of its children) pays, lease by lease; talk to an instance through the platform's
// OpenAI-compatible /v1 (any OpenAI client) or straight at its endpoint.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { Config } from '../../runtime/config';
import { parseReference } from '../../store/names';
import type { InstanceStatus } from '../../workflows/instance-api';
import { formatMoney } from '../../workflows/money';
import { childWorkflowId, germlineWorkflowId, NAME } from '../../workflows/names';
import { amountOption, parseDuration, positiveInteger, print, UserError, withDatabase, withGermline } from '../common';
import { table } from '../table';

interface LaunchOptions {
  public?: boolean;
  idle: number;
  maxDuration: number;
  maxCost: bigint;
  gpus: number;
  child?: string;
  id?: string;
  detach?: boolean;
}

function newInstanceId(): string {
  return `inst-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`;
}

function describe(status: InstanceStatus, currency: string): string[] {
  return [
    `${status.id}: ${status.state}${status.reason ? ` (${status.reason})` : ''}`,
    `  image     ${status.image}${status.digest ? ` (${status.digest})` : ''}`,
    `  payer     ${status.payer}, ${status.visibility}`,
    `  cost      ${formatMoney(status.cost, currency)} for ${status.billedSeconds} s; ${formatMoney(status.reserved, currency)} reserved now`,
    ...(status.endpoint ? [`  endpoint  ${status.endpoint}`] : []),
  ];
}

export function addInstanceCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Instances:');

  program
    .command('launch')
    .description('run an image as an OpenAI-compatible instance, paid lease by lease from the germline budget')
    .argument('<image>', 'the image, e.g. germline/computatrum:gpc-2026-11-30')
    .option('--public', 'anyone may talk to it, no sign-in (the payer pays)')
    .option(
      '--idle <duration>',
      'sleep (scaled to zero, nothing reserved) after this long without a request',
      parseDuration,
      600,
    )
    .option('--max-duration <duration>', 'stop after this long running', parseDuration, 7200)
    .requiredOption('--max-cost <amount>', 'most it may cost over its life', amountOption(config))
    .option('--gpus <n>', 'GPUs for the instance', positiveInteger('--gpus'), 1)
    .option('--child <name>', 'a child pays from its allowance (default: the germline)')
    .option('--id <id>', 'instance id (default: inst-<date>-<random>)')
    .option('--detach', 'return once it is launched instead of waiting until it is ready')
    .action(async (image: string, options: LaunchOptions) => {
      const cfg = config();
      const { repo, reference } = parseReference(image);
      const id = options.id ?? newInstanceId();
      if (!NAME.test(id)) throw new UserError(`instance id "${id}" must be lowercase letters, digits and dashes`, 2);
      const [
        { launchInstance, instanceHandle },
        { instanceStatusQuery, FINAL_INSTANCE_STATES },
        { WorkflowExecutionAlreadyStartedError },
      ] = await Promise.all([
        import('../../temporal/instance-client.js'),
        import('../../workflows/instance-api.js'),
        import('@temporalio/client'),
      ]);
      await withGermline(cfg, async (client) => {
        await launchInstance(client, cfg.taskQueue, {
          version: 1,
          id,
          image: { repo, reference },
          payer: options.child ? childWorkflowId(cfg.germline, options.child) : germlineWorkflowId(cfg.germline),
          currency: cfg.currency,
          visibility: options.public ? 'public' : 'private',
          runner: 'local',
          gpus: options.gpus,
          ratePerGpuHour: cfg.training.ratePerGpuHour.toString(),
          idleTimeoutSeconds: options.idle,
          maxDurationSeconds: options.maxDuration,
          maxCost: options.maxCost.toString(),
        }).catch((error: Error) => {
          throw error instanceof WorkflowExecutionAlreadyStartedError
            ? new UserError(`an instance with id ${id} exists already: choose another --id`)
            : error;
        });
        print(`instance ${id} launched (${image}, at most ${formatMoney(options.maxCost, cfg.currency)})`);
        if (options.detach) return;
        const handle = instanceHandle(client, id);
        for (;;) {
          const status = await handle.query(instanceStatusQuery);
          if (status.state === 'ready' || FINAL_INSTANCE_STATES.includes(status.state)) {
            for (const line of describe(status, cfg.currency)) print(line);
            if (status.state !== 'ready') throw new UserError(`${id} did not start: ${status.reason ?? status.state}`);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      });
    });

  program
    .command('instances')
    .description('list hosted instances: state, payer, cost so far')
    .option('--all', 'also the stopped and failed ones')
    .option('--json', 'print JSON')
    .action(async (options: { all?: boolean; json?: boolean }) => {
      const cfg = config();
      const rows = await withDatabase(cfg, (db) =>
        db.instance.findMany({
          where: options.all ? {} : { state: { notIn: ['stopped', 'failed'] } },
          orderBy: { createdAt: 'desc' },
          take: 100,
        }),
      );
      if (options.json) {
        return print(
          JSON.stringify(
            rows.map((r) => ({
              ...r,
              cost: r.cost.toString(),
              maxCost: r.maxCost.toString(),
              ratePerGpuHour: r.ratePerGpuHour.toString(),
            })),
            null,
            2,
          ),
        );
      }
      if (rows.length === 0)
        return print('no instances: launch one with `computatrum launch <image> --max-cost <amount>`');
      print(
        table(
          ['instance', 'state', 'image', 'payer', 'visibility', 'billed s', 'cost'],
          rows.map((r) => [
            r.id,
            r.state,
            `${r.repository}:${r.reference}`,
            r.payer,
            r.visibility,
            String(r.billedSeconds),
            formatMoney(r.cost, r.currency),
          ]),
        ),
      );
    });

  program
    .command('instance')
    .description('show one instance: state, cost so far, endpoint')
    .argument('<id>', 'the instance id')
    .action(async (id: string) => {
      const cfg = config();
      const [{ instanceHandle }, { instanceStatusQuery }] = await Promise.all([
        import('../../temporal/instance-client.js'),
        import('../../workflows/instance-api.js'),
      ]);
      const status = await withGermline(cfg, (client) => instanceHandle(client, id).query(instanceStatusQuery)).catch(
        (error: Error) => {
          throw new UserError(`no instance ${id}: list them with \`computatrum instances\` (${error.message})`);
        },
      );
      for (const line of describe(status, cfg.currency)) print(line);
    });

  program
    .command('chat')
    .description('talk to an instance (or an image, routed to its instance) through the platform, streaming')
    .argument('<model>', 'an instance id or an image reference')
    .option('--max-tokens <n>', 'longest answer', positiveInteger('--max-tokens'))
    .option('--from <url>', 'platform URL (default: this computatrum platform)')
    .action(async (model: string, options: { maxTokens?: number; from?: string }) => {
      const { chat } = await import('../chat.js');
      await chat(config(), model, options);
    });

  program
    .command('stop')
    .description('stop an instance: it finishes its requests, its last lease is settled, it ends')
    .argument('<id>', 'the instance id')
    .option('--reason <text>', 'why, for the record')
    .action(async (id: string, options: { reason?: string }) => {
      const cfg = config();
      const [{ instanceHandle }, { stopInstanceUpdate }] = await Promise.all([
        import('../../temporal/instance-client.js'),
        import('../../workflows/instance-api.js'),
      ]);
      const status = await withGermline(cfg, (client) =>
        instanceHandle(client, id).executeUpdate(stopInstanceUpdate, {
          args: [{ by: 'operator (cli)', ...(options.reason ? { reason: options.reason } : {}) }],
        }),
      );
      for (const line of describe(status, cfg.currency)) print(line);
    });
}
