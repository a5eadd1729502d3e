// npm run bench:spawn [-- --children 10000 --wave 500 --concurrency 8 --minutes 30]
//
// Children spawned by one germline (guardrails judged, allowance reserved and booked in the journal,
// child started with ABANDON, the child's own books opened), in waves: each wave's spawns are timed
// beside as many bare child starts by a bare parent on the same server, then the wave's children
// retire (untimed) and the germline settles them. The germline continues as new on the way, archiving
// its ended children in PostgreSQL; at the end it is pushed through one more continue-as-new and the
// bench prints the spawn ratio (goal >= 0.5) and the size of the state each run carried into the next
// (goal <= 64 KB once the ended children are archived). `--minutes` stops after the wave that passes it.
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { defaultPayloadConverter } from '@temporalio/common';
import { retireUpdate, spawnChildUpdate } from '../workflows/child-api';
import { germlineWorkflow } from '../workflows/germline';
import type { GermlineInput } from '../workflows/germline-api';
import { startBenchStack } from './support/stack';
import { spawnBareUpdate } from './workflows';
import { depositUpdate, setPolicyUpdate, statusQuery } from '../workflows/budget-api';
import { childWorkflowId, germlineWorkflowId } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';

const { values } = parseArgs({
  options: {
    children: { type: 'string', default: '10000' },
    wave: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '8' },
    minutes: { type: 'string' },
  },
});
const CHILDREN = Number(values.children);
const WAVE = Math.min(Number(values.wave), CHILDREN);
const CONCURRENCY = Number(values.concurrency);
const DEADLINE = values.minutes ? Date.now() + Number(values.minutes) * 60_000 : Infinity;

/** Runs `job` for `from`..`to`-1 on CONCURRENCY callers; returns the seconds it took. */
async function timed(from: number, to: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = from;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < to) await job(next++);
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The size of the input each run of the workflow continued as new with (and the children in it), oldest first. */
async function carriedSizes(
  client: Client,
  workflowId: string,
  firstRunId: string,
): Promise<Array<{ bytes: number; children: number }>> {
  const sizes: Array<{ bytes: number; children: number }> = [];
  for (let runId: string | undefined = firstRunId; runId;) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const continued = history.events?.find(
      (e) => e.workflowExecutionContinuedAsNewEventAttributes,
    )?.workflowExecutionContinuedAsNewEventAttributes;
    if (!continued) break;
    const payload = continued.input!.payloads![0]!;
    const carried = defaultPayloadConverter.fromPayload<GermlineInput>(payload);
    sizes.push({ bytes: payload.data!.length, children: carried.children?.length ?? 0 });
    runId = continued.newExecutionRunId ?? undefined;
  }
  return sizes;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const stack = await startBenchStack();
  try {
    await stack.worker.runUntil(async () => {
      const name = `spawn-${Date.now()}`;
      const germline = await stack.client.workflow.start(germlineWorkflow, {
        workflowId: germlineWorkflowId(name),
        taskQueue: 'bench',
        args: [
          {
            name,
            currency: 'usd',
            autonomy: { maxChildren: WAVE + 1, perChildAllowanceCap: null, minRunwayDays: 0, approvalThreshold: null },
            decider: { policy: 'rules', tickIntervalSeconds: null },
          },
        ],
      });
      await updateBudget(germline, depositUpdate, {
        amount: String(CHILDREN * 100),
        currency: 'usd',
        reference: 'bench',
      });

      let baselineSeconds = 0;
      let spawnSeconds = 0;
      let done = 0;
      while (done < CHILDREN && Date.now() < DEADLINE) {
        const end = Math.min(done + WAVE, CHILDREN);
        // A bare parent per wave: one for all of them would pass the server's history limit.
        const parent = await stack.client.workflow.start('bareParentWorkflow', {
          workflowId: `bench/parent-${Date.now()}`,
          taskQueue: 'bench',
        });
        baselineSeconds += await timed(done, end, (i) => parent.executeUpdate(spawnBareUpdate, { args: [`c${i}`] }));
        spawnSeconds += await timed(done, end, (i) =>
          updateBudget(germline, spawnChildUpdate, { name: `c${i}`, allowance: '100', purpose: 'bench' }),
        );
        await timed(done, end, (i) =>
          stack.client.workflow
            .getHandle(childWorkflowId(name, `c${i}`))
            .executeUpdate(retireUpdate, { args: ['bench'] }),
        );
        await parent.terminate('wave done');
        await until(
          async () => (await germline.query(statusQuery)).openReservations.length === 0,
          'the germline to settle the retired wave',
        );
        done = end;
        console.log(`  ${done} children spawned and retired`);
      }

      // One more continue-as-new after the last wave ended: the state it carries is what stays.
      const generation = (await germline.query(statusQuery)).generation;
      for (let i = 0; (await germline.query(statusQuery)).generation === generation; i++) {
        if (i >= 20_000) throw new Error('the germline did not continue as new');
        await updateBudget(germline, setPolicyUpdate, { dailySpendCap: null });
      }
      const sizes = await carriedSizes(stack.client, germline.workflowId, germline.firstExecutionRunId);
      const described = await germline.describe();
      const status = await germline.query(statusQuery);
      const archived = await stack.db.archivedChild.count({ where: { germline: name } });

      const baseline = done / baselineSeconds;
      const spawned = done / spawnSeconds;
      console.log(`${done} children in waves of ${WAVE}, concurrency ${CONCURRENCY}, journal in ${stack.database}`);
      console.log(`baseline  bare child starts by a bare parent: ${baseline.toFixed(1)} /s`);
      console.log(`spawn     children spawned by the germline:   ${spawned.toFixed(1)} /s`);
      console.log(`ratio     spawn / baseline: ${(spawned / baseline).toFixed(3)}   (goal >= 0.5)`);
      const last = sizes.at(-1) ?? { bytes: 0, children: 0 };
      console.log(
        `carried   last continue-as-new input (every child ended): ${kb(last.bytes)}, ${last.children} children   (goal <= 64 KB)`,
      );
      console.log(
        `          each run's, oldest first: ${sizes.map((s) => `${kb(s.bytes)} (${s.children} children)`).join(', ')}`,
      );
      console.log(`          ${archived} ended children are archived in PostgreSQL`);
      console.log(
        `germline  history of the current run: ${described.historyLength} events, ${described.historySize} bytes; continued as new ${status.generation} times; ${status.openReservations.length} open reservations`,
      );
    });
  } finally {
    await stack.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
