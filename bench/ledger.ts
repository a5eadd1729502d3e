// npm run bench:ledger [-- --pairs 400 --concurrency 8 --burst 500]
//
// Sustained reserve+settle pairs per second on one germline (each change validated, applied, made
// durable in history and booked in the PostgreSQL journal by its writer), beside a baseline of the
// same number of no-op update pairs on a bare workflow, on the same dev server in the same run.
// Prints the ratio (goal: at least 0.5), then a burst: that many concurrent reserves from a plain
// Temporal client, and the time until every caller has its answer.
import { parseArgs } from 'node:util';
import { type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ensureGermline } from '../temporal/germline-client';
import { startBenchStack } from './support/stack';
import { noopUpdate } from './workflows';
import { depositUpdate, reserveUpdate, settleUpdate } from '../workflows/budget-api';
import { updateBudget } from '../temporal/budget-client';

const { values } = parseArgs({
  options: {
    pairs: { type: 'string', default: '400' },
    concurrency: { type: 'string', default: '8' },
    burst: { type: 'string', default: '500' },
  },
});
const PAIRS = Number(values.pairs);
const CONCURRENCY = Number(values.concurrency);
const BURST = Number(values.burst);

/** `count` concurrent reserves of 5.00 against `count` × 2.00 available: answers by kind, and the seconds until the last. */
async function burst(handle: WorkflowHandle, count: number) {
  const started = process.hrtime.bigint();
  const answers = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      handle.executeUpdate(reserveUpdate, { args: [{ amount: '500', ref: `burst-${i}`, purpose: 'bench' }] }).then(
        () => 'accepted',
        (error: unknown) =>
          error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure ? 'refused' : 'error',
      ),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const count_ = (kind: string) => answers.filter((a) => a === kind).length;
  return { seconds, accepted: count_('accepted'), refused: count_('refused'), errors: count_('error') };
}

/** Runs `pairs` jobs, `concurrency` at a time; returns pairs per second. */
async function measure(pairs: number, concurrency: number, pair: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < pairs) await pair(next++);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return pairs / seconds;
}

async function main(): Promise<void> {
  const { client, worker, database, close } = await startBenchStack();
  await worker.runUntil(async () => {
    const bare = await client.workflow.start('bareUpdateWorkflow', {
      workflowId: `bench/bare-${Date.now()}`,
      taskQueue: 'bench',
    });
    const { handle: germline } = await ensureGermline(client, {
      name: `bench-${Date.now()}`,
      currency: 'usd',
      taskQueue: 'bench',
    });
    await updateBudget(germline, depositUpdate, { amount: String(PAIRS * 100), currency: 'usd', reference: 'bench' });
    // Warm both paths (workflow cache, connections) before timing.
    await bare.executeUpdate(noopUpdate, { args: [null] });

    const baseline = await measure(PAIRS, CONCURRENCY, async () => {
      await bare.executeUpdate(noopUpdate, { args: [null] });
      await bare.executeUpdate(noopUpdate, { args: [null] });
    });
    const ledger = await measure(PAIRS, CONCURRENCY, async (i) => {
      const { reservationId } = await updateBudget(germline, reserveUpdate, {
        amount: '100',
        ref: `pair-${i}`,
        purpose: 'bench',
      });
      await updateBudget(germline, settleUpdate, { reservationId, actual: '40' });
    });

    console.log(`pairs ${PAIRS}, concurrency ${CONCURRENCY}, one germline, journal in ${database}`);
    console.log(`baseline  no-op update pairs on a bare workflow: ${baseline.toFixed(1)} pairs/s`);
    console.log(`ledger    reserve+settle pairs on the germline:  ${ledger.toFixed(1)} pairs/s`);
    console.log(`ratio     ledger / baseline: ${(ledger / baseline).toFixed(3)}`);

    const { handle: burstGermline } = await ensureGermline(client, {
      name: `bench-burst-${Date.now()}`,
      currency: 'usd',
      taskQueue: 'bench',
    });
    await updateBudget(burstGermline, depositUpdate, {
      amount: String(BURST * 200),
      currency: 'usd',
      reference: 'burst',
    });
    const answered = await burst(burstGermline, BURST);
    console.log(
      `burst     ${BURST} concurrent reserves of 5.00 against ${BURST * 2}.00 from a plain client: every answer in ${answered.seconds.toFixed(2)} s ` +
        `(${answered.accepted} accepted, ${answered.refused} refused, ${answered.errors} other errors)`,
    );
    await bare.terminate('benchmark done');
    await germline.terminate('benchmark done');
    await burstGermline.terminate('benchmark done');
  });
  await close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
