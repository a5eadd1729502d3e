// Training runs from the command line: train, runs, run <id>, cancel <id>.
import { randomBytes } from 'node:crypto';
import { type Command, InvalidArgumentError } from 'commander';
import type { Client } from '@temporalio/client';
import type { Database } from '../../db/prisma';
import { parseReference } from '../../store/names';
import type { Config } from '../../runtime/config';
import { formatAmount, formatMoney } from '../../workflows/money';
import type { trainingWorkflow } from '../../workflows/training';
import type { TrainingStatus } from '../../workflows/training-api';
import { trainingCost } from '../../workflows/training-cost';
import { amountOption, parseDuration, positiveInteger, print, UserError, withDatabase, withGermline } from '../common';
import { platformApi } from '../platform-api';
import { table } from '../table';
import { childRepository, childWorkflowId, NAME, trainingWorkflowId, germlineRepository } from '../../workflows/names';

function newRunId(): string {
  const now = new Date().toISOString();
  return `train-${now.slice(0, 10).replace(/-/g, '')}-${now.slice(11, 19).replace(/:/g, '')}-${randomBytes(2).toString('hex')}`;
}

type RunRow = NonNullable<Awaited<ReturnType<Database['trainingRun']['findUnique']>>>;

/** What the run has cost so far: settled, or its usage at its own rate. */
function costSoFar(row: RunRow): bigint {
  return row.cost ?? trainingCost(row.gpuSeconds, row.ratePerGpuHour, row.maxCost);
}

async function describeFailure(error: unknown): Promise<string> {
  const { ApplicationFailure } = await import('@temporalio/common');
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause && !(cause instanceof ApplicationFailure)) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

interface TrainOptions {
  base?: string;
  dataset: string[];
  branch: string;
  repo?: string;
  gpus: number;
  gpuType?: string;
  maxCost: bigint;
  maxDuration?: number;
  runner?: 'local' | 'kubernetes';
  image?: string;
  id?: string;
  child?: string;
  detach?: boolean;
  onCredit?: boolean;
  from?: string;
}

export function addTrainingCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Training:');

  program
    .command('train')
    .description(
      'start a GPU training run, paid from the germline budget: the cap is reserved first, the real cost settled at the end',
    )
    .option(
      '--base <repo:ref>',
      'checkpoint to start from, e.g. germline/computatrum:gpc-2026-11-25 (none: from scratch)',
    )
    .option(
      '--dataset <repo@digest>',
      'a feedback dataset to learn from (repeatable; `computatrum datasets <repo>` lists them)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .requiredOption('--branch <name>', 'branch the finished checkpoint is published to')
    .option('--repo <repo>', "repository of the output branch (default: the base's, or germline/<name>)")
    .option('--gpus <n>', 'GPUs for the job', positiveInteger('--gpus'), 1)
    .option('--gpu-type <type>', 'GPU product, e.g. NVIDIA-H100-80GB-HBM3 (kubernetes node selector)')
    .requiredOption('--max-cost <amount>', 'most the run may cost; it is stopped there', amountOption(config))
    .option('--max-duration <duration>', 'longest the run may take, e.g. 90m or 2h', parseDuration)
    .option('--runner <runner>', 'local or kubernetes (default: COMPUTATRUM_RUNNER)', (v) => {
      if (v !== 'local' && v !== 'kubernetes') throw new InvalidArgumentError('--runner is local or kubernetes');
      return v;
    })
    .option('--image <image>', 'container image of the trainer (kubernetes)')
    .option('--id <id>', 'run id (default: train-<date>-<time>-<random>)')
    .option(
      '--child <name>',
      'a child pays from its allowance, and the output goes to children/<name> (default: the germline pays)',
    )
    .option('--detach', 'return once the run has started instead of waiting for it')
    .option(
      '--on-credit',
      "paid from your training credit on the platform (COMPUTATRUM_TOKEN), into --repo under trainers/<you>/; the platform's trainer runs",
    )
    .option('--from <url>', 'platform URL for --on-credit (default: this computatrum platform)')
    .argument('[command...]', 'the trainer command after --, e.g. -- python train.py (default: the configured trainer)')
    .action(async (command: string[], options: TrainOptions) => {
      const cfg = config();
      if (options.onCredit) return trainOnCredit(cfg, command, options);
      const [
        { trainingPayer },
        { startTrainingRun },
        { WorkflowFailedError, WorkflowExecutionAlreadyStartedError },
        { CancelledFailure },
        { trainingRequest },
        { trainingDefaults },
      ] = await Promise.all([
        import('../../activities/training.js'),
        import('../../temporal/training-client.js'),
        import('@temporalio/client'),
        import('@temporalio/common'),
        import('../../workflows/training-api.js'),
        import('../../runtime/config.js'),
      ]);
      const base = options.base ? parseReference(options.base) : undefined;
      const datasets = options.dataset.map((text) => parseReference(text));
      const id = options.id ?? newRunId();
      if (!NAME.test(id)) throw new UserError(`run id "${id}" must be lowercase letters, digits and dashes`, 2);
      const runner = options.runner ?? cfg.training.defaultRunner;
      const request = trainingRequest(trainingDefaults(cfg), {
        id,
        payer: options.child ? childWorkflowId(cfg.germline, options.child) : trainingPayer(cfg.germline),
        currency: cfg.currency,
        ...(base ? { base } : {}),
        ...(datasets.length ? { datasets } : {}),
        output: {
          repo:
            options.repo ??
            base?.repo ??
            (options.child ? childRepository(options.child) : germlineRepository(cfg.germline)),
          branch: options.branch,
        },
        runner,
        ...(command.length ? { command } : {}),
        ...(options.image ? { image: options.image } : {}),
        gpus: options.gpus,
        ...(options.gpuType ? { gpuType: options.gpuType } : {}),
        maxCost: options.maxCost,
        ...(options.maxDuration ? { maxDurationSeconds: options.maxDuration } : {}),
      });
      await withGermline(cfg, async (client) => {
        const handle = await startTrainingRun(client, cfg.taskQueue, request).catch((error: Error) => {
          throw new UserError(
            error instanceof WorkflowExecutionAlreadyStartedError
              ? `a run with id ${id} exists already: choose another --id`
              : error.message,
          );
        });
        print(
          `training run ${id} started (${runner} runner, at most ${formatMoney(request.maxCost, cfg.currency)}, ${formatMoney(request.ratePerGpuHour, cfg.currency)} per GPU-hour)`,
        );
        print(`  workflow ${handle.workflowId}; follow it with \`computatrum run ${id}\``);
        if (options.detach) return;
        try {
          const result = await handle.result();
          print(
            `${id}: ${result.state}, cost ${formatMoney(result.cost ?? '0', cfg.currency)} for ${result.gpuSeconds ?? 0} GPU-seconds`,
          );
          if (result.outputDigest) print(`  ${request.output.repo}:${request.output.branch} -> ${result.outputDigest}`);
          if (result.partialOutput) print(`  its last checkpoint is kept as ${result.partialOutput}`);
        } catch (error) {
          if (error instanceof WorkflowFailedError && error.cause instanceof CancelledFailure)
            throw new UserError(`${id} was cancelled; see \`computatrum run ${id}\` for what it cost`);
          if (error instanceof WorkflowFailedError)
            throw new UserError(`${id} did not complete: ${await describeFailure(error.cause)}`);
          throw error;
        }
      });
    });

  program
    .command('runs')
    .description('list recent training runs')
    .option('--limit <n>', 'how many', positiveInteger('--limit'), 20)
    .option('--json', 'print JSON')
    .action(async (options: { limit: number; json?: boolean }) => {
      const cfg = config();
      const rows = await withDatabase(cfg, (db) =>
        db.trainingRun.findMany({ orderBy: { createdAt: 'desc' }, take: options.limit }),
      );
      if (options.json) return print(JSON.stringify(rows.map(runJson), null, 2));
      if (rows.length === 0) return print('no training runs yet: start one with `computatrum train`');
      print(
        table(
          ['run', 'state', 'output', 'step', 'GPU-s', 'cost', 'max', 'started (UTC)'],
          rows.map((r) => [
            r.id,
            r.state,
            `${r.outputRepository}:${r.outputBranch}`,
            r.step === null ? '' : String(r.step),
            String(r.gpuSeconds),
            formatMoney(costSoFar(r), r.currency),
            formatMoney(r.maxCost, r.currency),
            r.createdAt.toISOString().replace('T', ' ').slice(0, 19),
          ]),
          { alignRight: [3, 4, 5, 6] },
        ),
      );
    });

  program
    .command('run')
    .description('show one training run: state, cost so far, last checkpoint')
    .argument('<id>', 'run id')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const cfg = config();
      // `run <image>` is what docker and ollama users type to start a model: here that is `launch`.
      if (/[/:@]/.test(id)) {
        throw new UserError(
          `"${id}" is an image, and \`run\` shows a training run: to serve the image, \`computatrum launch ${id} --max-cost <amount>\``,
          2,
        );
      }
      const row = await withDatabase(cfg, (db) => db.trainingRun.findUnique({ where: { id } }));
      if (!row) throw new UserError(`no training run ${id}: list them with \`computatrum runs\``);
      if (options.json) return print(JSON.stringify(runJson(row), null, 2));
      const money = (v: bigint) => formatMoney(v, row.currency);
      print(`training run ${row.id}  (${row.state})`);
      print(`  workflow          ${trainingWorkflowId(row.id)}`);
      print(`  paid by           ${row.payer}`);
      print(
        `  runner            ${row.runner}, ${row.gpus} GPU${row.gpus > 1 ? 's' : ''}${row.gpuType ? ` (${row.gpuType})` : ''}`,
      );
      print(
        `  base              ${row.baseRepository ? `${row.baseRepository}:${row.baseReference} (${row.baseDigest})` : 'none (from scratch)'}`,
      );
      print(
        `  output            ${row.outputRepository}:${row.outputBranch}${row.outputDigest ? ` -> ${row.outputDigest}` : ''}`,
      );
      print(
        `  progress          step ${row.step ?? '-'}${row.loss !== null ? `, loss ${row.loss.toFixed(4)}` : ''}, last checkpoint ${row.lastCheckpoint ?? 'none yet'}`,
      );
      print(
        `  attempts          ${row.attempts}${row.resumedFromStep !== null ? ` (last resumed from step ${row.resumedFromStep})` : ''}`,
      );
      print(`  usage             ${row.gpuSeconds} GPU-seconds at ${money(row.ratePerGpuHour)} per GPU-hour`);
      print(
        `  cost              ${money(costSoFar(row))}${row.cost === null ? ' so far' : ' (settled)'} of at most ${money(row.maxCost)}`,
      );
      if (row.error) print(`  error             ${row.error}`);
    });

  program
    .command('cancel')
    .description('cancel a training run: the job is stopped and the time it used is settled')
    .argument('<id>', 'run id')
    .action(async (id: string) => {
      const cfg = config();
      const [{ WorkflowFailedError }, { CancelledFailure }, { trainingStatusQuery, FINAL_TRAINING_STATES }] =
        await Promise.all([
          import('@temporalio/client'),
          import('@temporalio/common'),
          import('../../workflows/training-api.js'),
        ]);
      await withGermline(cfg, async (client) => {
        const handle = client.workflow.getHandle<typeof trainingWorkflow>(trainingWorkflowId(id));
        const status = await runStatus(client, id);
        if (FINAL_TRAINING_STATES.includes(status.state))
          return print(`${id} has already ended (${status.state}); nothing to cancel`);
        await handle.cancel();
        print(`cancel requested for ${id}; stopping the job and settling the time used...`);
        const ended = await handle.result().then(
          () => undefined,
          (error: unknown) => error,
        );
        const after = await handle.query(trainingStatusQuery);
        if (ended instanceof WorkflowFailedError && !(ended.cause instanceof CancelledFailure))
          print(`${id} ended before the cancel reached it: ${await describeFailure(ended.cause)}`);
        print(
          `${id}: ${after.state}, charged ${formatMoney(after.cost ?? '0', cfg.currency)} for ${after.gpuSeconds ?? 0} GPU-seconds; the rest of its reservation was released`,
        );
      });
    });
}

async function runStatus(client: Client, id: string): Promise<TrainingStatus> {
  const [{ WorkflowNotFoundError }, { trainingStatusQuery }] = await Promise.all([
    import('@temporalio/client'),
    import('../../workflows/training-api.js'),
  ]);
  try {
    return await client.workflow.getHandle(trainingWorkflowId(id)).query(trainingStatusQuery);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError)
      throw new UserError(`no training run ${id}: list them with \`computatrum runs\``);
    throw error;
  }
}

function runJson(row: RunRow) {
  return {
    ...row,
    maxCost: row.maxCost.toString(),
    ratePerGpuHour: row.ratePerGpuHour.toString(),
    cost: row.cost?.toString() ?? null,
    costSoFar: costSoFar(row).toString(),
  };
}

/** A trainer's run through the platform's API: the platform chooses the trainer, runner and rate. */
async function trainOnCredit(cfg: Config, command: string[], options: TrainOptions): Promise<void> {
  const notHere = [
    command.length && 'a trainer command',
    options.child && '--child',
    options.runner && '--runner',
    options.image && '--image',
    options.gpuType && '--gpu-type',
    options.id && '--id',
    options.maxDuration && '--max-duration',
  ].filter(Boolean);
  if (notHere.length)
    throw new UserError(`--on-credit runs the platform's own trainer: leave out ${notHere.join(', ')}`, 2);
  if (!options.repo) throw new UserError('--on-credit needs --repo trainers/<you>/<name>: where the run publishes', 2);
  const { startTrainingRun } = await platformApi(cfg, {
    ...(options.from ? { from: options.from } : {}),
    signedIn: true,
  }).graphql<{ startTrainingRun: { id: string; workflowId: string } }>(
    'mutation($base: String, $datasets: [String!], $repo: String!, $branch: String!, $maxCost: String!, $gpus: Int!) { startTrainingRun(base: $base, datasets: $datasets, repository: $repo, branch: $branch, maxCost: $maxCost, gpus: $gpus) { id workflowId } }',
    {
      base: options.base ?? null,
      datasets: options.dataset.length ? options.dataset : null,
      repo: options.repo,
      branch: options.branch,
      maxCost: formatAmount(options.maxCost, cfg.currency),
      gpus: options.gpus,
    },
  );
  print(
    `training run ${startTrainingRun.id} started on your credit (at most ${formatMoney(options.maxCost, cfg.currency)}); workflow ${startTrainingRun.workflowId}`,
  );
}
