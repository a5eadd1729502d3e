// Money under load through the gateway: fifty concurrent chats with an instance whose leases renew
// every second are all answered, and the payer is charged for the instance's seconds only, never
// more than it reserved: the ledger shows one settle per lease and the journal agrees.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { depositUpdate, ledgerQuery, statusQuery } from '../../workflows/budget-api';
import { instanceStatusQuery, stopInstanceUpdate } from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { reconciledBooks } from '../helpers/budget';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

test('fifty concurrent chats while leases renew every second: all answered, the payer charged the seconds only, never past what was reserved', async () => {
  const runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-gateway-money-')),
    defaultCommand: ECHO_INSTANCE,
  });
  const env = await testEnvironment({ instanceRunners: { local: runner } });
  try {
    await env.startWorker();
    const { name, handle } = await env.startGermline();
    await updateBudget(handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
    const dir = mkdtempSync(path.join(tmpdir(), 'gateway-money-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${name}`));
    await publishCheckpoint(env.store, `germline/${name}`, dir, { tag: 'main' });
    const app = await testPlatform(env, name);
    const baseURL = `${await app.listen({ port: 0, host: '127.0.0.1' })}/v1`;
    const id = uniqueName('busy');
    await launchInstance(env.client, env.taskQueue, {
      version: 1,
      id,
      image: { repo: `germline/${name}`, reference: 'main' },
      payer: germlineWorkflowId(name),
      currency: 'usd',
      visibility: 'public',
      runner: 'local',
      gpus: 1,
      // One cent per GPU-second.
      ratePerGpuHour: '3600',
      idleTimeoutSeconds: 0,
      maxDurationSeconds: 3600,
      maxCost: '100000',
      leaseSeconds: 1,
      checkSeconds: 1,
    });
    await eventually(async () => {
      const row = await env.db.instance.findUnique({ where: { id } });
      return row?.state === 'ready' && row.endpoint ? true : undefined;
    }, 'the instance ready');

    const openai = new OpenAI({ baseURL, apiKey: 'anonymous', maxRetries: 0 });
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        openai.chat.completions.create({ model: id, messages: [{ role: 'user', content: `question ${i}` }] }),
      ),
    );
    expect(answers.map((a) => a.choices[0]!.message.content)).toEqual(
      Array.from({ length: 50 }, (_, i) => `question ${i}`),
    );
    await eventually(
      async () =>
        (await instanceHandle(env.client, id).query(instanceStatusQuery)).billedSeconds >= 2 ? true : undefined,
      'two leases',
    );

    const stopped = await instanceHandle(env.client, id).executeUpdate(stopInstanceUpdate, { args: [{ by: 'op' }] });
    expect(BigInt(stopped.cost)).toBe(BigInt(stopped.billedSeconds));
    const budget = await handle.query(statusQuery);
    expect(budget).toMatchObject({ spent: stopped.cost, reserved: '0' });
    const ledger = await handle.query(ledgerQuery, 500);
    const reserves = ledger.filter((e) => e.kind === 'reserve');
    const settles = ledger.filter((e) => e.kind === 'settle');
    expect(settles).toHaveLength(reserves.length);
    // Every settle within its own reservation: nothing was spent that was not reserved first.
    for (const settle of settles) {
      const reserve = reserves.find((r) => r.reservationId === settle.reservationId)!;
      expect(BigInt(settle.spent!)).toBeLessThanOrEqual(BigInt(reserve.amount));
    }
    expect((await reconciledBooks(env.db, handle, name)).agrees).toBe(true);
    expect(await env.db.interaction.count({ where: { instanceId: id } })).toBe(50);
    await app.close();
  } finally {
    for (const left of await runner.list()) await runner.stop(left);
    await env.close();
  }
});
