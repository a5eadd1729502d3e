// npm run bench:ledger [-- --pairs 400 --concurrency 8]
//
// Sustained reserve+settle pairs per second on one germline (each change validated, applied and
// booked in the PostgreSQL journal before it is answered), beside a baseline of the same number of
// no-op update pairs on a bare workflow, on the same dev server in the same run. Prints the ratio.
import { parseArgs } from 'node:util';
import { ensureGermline, updateGermline } from '../worker/germline-client';
import { depositUpdate, reserveUpdate, settleUpdate } from '../workflows/germline-api';
import { startBenchStack } from './support/stack';
import { noopUpdate } from './workflows';

const { values } = parseArgs({
  options: { pairs: { type: 'string', default: '400' }, concurrency: { type: 'string', default: '8' } },
});
const PAIRS = Number(values.pairs);
const CONCURRENCY = Number(values.concurrency);

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
    const bare = await client.workflow.start('bareUpdateWorkflow', { workflowId: `bench/bare-${Date.now()}`, taskQueue: 'bench' });
    const { handle: germline } = await ensureGermline(client, { name: `bench-${Date.now()}`, currency: 'usd', taskQueue: 'bench' });
    await updateGermline(germline, depositUpdate, { amount: String(PAIRS * 100), currency: 'usd', reference: 'bench' });
    // Warm both paths (workflow cache, connections) before timing.
    await bare.executeUpdate(noopUpdate, { args: [null] });

    const baseline = await measure(PAIRS, CONCURRENCY, async () => {
      await bare.executeUpdate(noopUpdate, { args: [null] });
      await bare.executeUpdate(noopUpdate, { args: [null] });
    });
    const ledger = await measure(PAIRS, CONCURRENCY, async (i) => {
      const { reservationId } = await updateGermline(germline, reserveUpdate, { amount: '100', ref: `pair-${i}`, purpose: 'bench' });
      await updateGermline(germline, settleUpdate, { reservationId, actual: '40' });
    });

    console.log(`pairs ${PAIRS}, concurrency ${CONCURRENCY}, one germline, journal in ${database}`);
    console.log(`baseline  no-op update pairs on a bare workflow: ${baseline.toFixed(1)} pairs/s`);
    console.log(`ledger    reserve+settle pairs on the germline:  ${ledger.toFixed(1)} pairs/s`);
    console.log(`ratio     ledger / baseline: ${(ledger / baseline).toFixed(3)}`);
    await bare.terminate('benchmark done');
    await germline.terminate('benchmark done');
  });
  await close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
