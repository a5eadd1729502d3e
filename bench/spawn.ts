// npm run bench:spawn [-- --children 1000 --concurrency 8]
//
// 1,000 children spawned by one germline (guardrails judged, allowance reserved and booked in the
// journal, child started with ABANDON, the child's own books opened) beside 1,000 bare child starts
// by a bare parent on the same server in the same run; prints the ratio and the germline's history
// at the end (it continues as new on the way, carrying its children).
import { parseArgs } from 'node:util';
import { spawnChildUpdate } from '../workflows/child-api';
import { germlineWorkflow } from '../workflows/germline';
import { startBenchStack } from './support/stack';
import { spawnBareUpdate } from './workflows';
import { depositUpdate, statusQuery } from '../workflows/budget-api';
import { germlineWorkflowId } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';

const { values } = parseArgs({
  options: { children: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '8' } },
});
const CHILDREN = Number(values.children);
const CONCURRENCY = Number(values.concurrency);

async function perSecond(count: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await job(next++);
    }),
  );
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function main(): Promise<void> {
  const stack = await startBenchStack();
  try {
    await stack.worker.runUntil(async () => {
      const parent = await stack.client.workflow.start('bareParentWorkflow', {
        workflowId: `bench/parent-${Date.now()}`,
        taskQueue: 'bench',
      });
      const name = `spawn-${Date.now()}`;
      const germline = await stack.client.workflow.start(germlineWorkflow, {
        workflowId: germlineWorkflowId(name),
        taskQueue: 'bench',
        args: [
          {
            name,
            currency: 'usd',
            autonomy: {
              maxChildren: CHILDREN + 1,
              perChildAllowanceCap: null,
              minRunwayDays: 0,
              approvalThreshold: null,
            },
          },
        ],
      });
      await updateBudget(germline, depositUpdate, {
        amount: String(CHILDREN * 100),
        currency: 'usd',
        reference: 'bench',
      });

      const baseline = await perSecond(CHILDREN, (i) => parent.executeUpdate(spawnBareUpdate, { args: [`c${i}`] }));
      const spawned = await perSecond(CHILDREN, (i) =>
        updateBudget(germline, spawnChildUpdate, { name: `c${i}`, allowance: '100', purpose: 'bench' }),
      );

      const described = await germline.describe();
      const status = await germline.query(statusQuery);
      console.log(`${CHILDREN} children, concurrency ${CONCURRENCY}, journal in ${stack.database}`);
      console.log(`baseline  bare child starts by a bare parent: ${baseline.toFixed(1)} /s`);
      console.log(`spawn     children spawned by the germline:   ${spawned.toFixed(1)} /s`);
      console.log(`ratio     spawn / baseline: ${(spawned / baseline).toFixed(3)}`);
      console.log(
        `germline  history of the current run: ${described.historyLength} events, ${described.historySize} bytes; continued as new ${status.generation} times; ${status.openReservations.length} open reservations`,
      );
      await parent.terminate('benchmark done');
    });
  } finally {
    await stack.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
