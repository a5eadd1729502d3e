// npm run bench:training [-- --steps 2000 --runs 3]
//
// What the orchestration adds to a training run, against the trainer's own runtime: the time from
// `train` (the workflow start) to the trainer's first instruction (validate, reserve, spawn), and
// from the trainer's exit to the checkpoint pushed and the cost settled. Baseline: the same trainer
// command run bare, in the same process, before the runs. Printed as ratios (lower overhead is better).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { tinyTrainerCommand } from '../activities/runners/tiny-trainer';
import { TRAINER_ENV } from '../activities/runners/types';
import { ensureGermline } from '../temporal/germline-client';
import { localRunner } from '../worker/runners';
import { trainingWorkflow } from '../workflows/training';
import { startBenchStack } from './support/stack';
import { depositUpdate } from '../workflows/budget-api';
import { trainingWorkflowId } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '2000' }, runs: { type: 'string', default: '3' } },
});
const TRAINER = tinyTrainerCommand(['--steps', values.steps!, '--save-every', '500']);
const RUNS = Number(values.runs);

// Stamps the trainer's start and exit beside its output folder, in milliseconds since the epoch.
const STAMPED = [
  'sh',
  '-c',
  'date +%s%3N > "$COMPUTATRUM_OUTPUT_DIR/../started"; "$@"; code=$?; date +%s%3N > "$COMPUTATRUM_OUTPUT_DIR/../exited"; exit $code',
  'sh',
  ...TRAINER,
];

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const stack = await startBenchStack({ runners: (dir, store) => ({ local: localRunner({ dataDir: dir, store }) }) });
  try {
    // Baseline: the trainer alone.
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const output = mkdtempSync(path.join(stack.dir, 'bare-'));
      const started = Date.now();
      execFileSync(TRAINER[0]!, TRAINER.slice(1), {
        env: {
          ...process.env,
          [TRAINER_ENV.outputDir]: output,
          [TRAINER_ENV.baseDir]: mkdtempSync(path.join(stack.dir, 'base-')),
        },
        stdio: 'ignore',
      });
      bare.push(Date.now() - started);
    }

    const before: number[] = [];
    const trainer: number[] = [];
    const after: number[] = [];
    await stack.worker.runUntil(async () => {
      const { handle } = await ensureGermline(stack.client, { name: 'bench', currency: 'usd', taskQueue: 'bench' });
      await updateBudget(handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'bench' });
      for (let i = 0; i < RUNS + 1; i++) {
        const id = `bench-${i}`;
        const t0 = Date.now();
        const run = await stack.client.workflow.start(trainingWorkflow, {
          workflowId: trainingWorkflowId(id),
          taskQueue: 'bench',
          args: [
            {
              version: 1,
              id,
              payer: 'germline/bench',
              currency: 'usd',
              output: { repo: 'germline/bench', branch: 'main' },
              runner: 'local',
              command: STAMPED,
              gpus: 1,
              maxCost: '10000',
              ratePerGpuHour: '240',
              maxDurationSeconds: 3600,
              maxPreemptions: 0,
            },
          ],
        });
        const result = await run.result();
        const t1 = Date.now();
        if (result.state !== 'succeeded') throw new Error(`run ${id} ended ${result.state}`);
        if (i === 0) continue; // the first run warms the workflow cache and the database pool
        const stamp = (name: string) => Number(readFileSync(path.join(stack.dir, 'runs', id, name), 'utf8').trim());
        before.push(stamp('started') - t0);
        trainer.push(stamp('exited') - stamp('started'));
        after.push(t1 - stamp('exited'));
      }
    });

    const runtime = median(trainer);
    console.log(`tiny trainer, ${values.steps} steps; ${RUNS} runs each (medians, ms); journal in ${stack.database}`);
    console.log(`baseline  trainer run bare:                 ${median(bare)} ms`);
    console.log(`          trainer inside a training run:    ${runtime} ms`);
    console.log(
      `before    train -> trainer started:         ${median(before)} ms   ratio to trainer runtime ${(median(before) / runtime).toFixed(3)}`,
    );
    console.log(
      `after     trainer exit -> pushed + settled: ${median(after)} ms   ratio to trainer runtime ${(median(after) / runtime).toFixed(3)}`,
    );
    console.log(
      `total     bare runtime / whole run:         ${(median(bare) / (median(before) + runtime + median(after))).toFixed(3)}`,
    );
  } finally {
    await stack.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
