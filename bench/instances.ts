// npm run bench:instances [-- --runs 10 --tokens 200]
//
// What the gateway adds to talking with an instance: the same streamed prompts through the
// platform's /v1 and straight to the instance's own endpoint, interleaved in one run, as ratios of
// time to first token and of tokens per second (goal: the gateway at 0.9 of direct or better). And
// the wake: from a sleeping instance to its first token through the gateway, beside the instance
// process's own start time (spawn to a ready /v1/models), measured in the same run.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { LocalInstanceRunner } from '../activities/runners/local-instances';
import { listCheckpoints } from '../activities/runners/tiny-trainer/checkpoints';
import { tinyServerCommand, tinyTrainerCommand } from '../activities/runners/tiny-trainer';
import { INSTANCE_ENV, TRAINER_ENV } from '../activities/runners/types';
import { buildPlatform } from '../platform/server';
import { freePort } from '../runtime/embedded/temporal-dev-server';
import { publishCheckpoint } from '../store/checkpoint';
import { updateBudget } from '../temporal/budget-client';
import { ensureGermline } from '../temporal/germline-client';
import { instanceHandle, launchInstance } from '../temporal/instance-client';
import { depositUpdate } from '../workflows/budget-api';
import { instanceStatusQuery, stopInstanceUpdate } from '../workflows/instance-api';
import { germlineWorkflowId } from '../workflows/names';
import { startBenchStack } from './support/stack';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '10' }, tokens: { type: 'string', default: '200' } },
});
const RUNS = Number(values.runs);
const TOKENS = Number(values.tokens);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/**
 * A pause before each measurement: the gateway stores an exchange after its stream has ended (on this
 * process, when the database is PGlite), and that work, part of neither measurement, is let finish
 * before the next one starts.
 */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

/** One streamed completion: milliseconds to the first content, and content characters per second after it. */
async function streamed(baseUrl: string, model: string, seed: number): Promise<{ firstMs: number; perSecond: number }> {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer public' },
    body: JSON.stringify({
      model,
      messages: [{ role: 'user', content: 'The moon ' }],
      max_tokens: TOKENS,
      seed,
      stream: true,
    }),
  });
  if (!response.ok || !response.body)
    throw new Error(`${baseUrl} answered ${response.status}: ${await response.text()}`);
  let first: number | undefined;
  let characters = 0;
  const decoder = new TextDecoder();
  // A read may end inside a line (the bytes come as the connection cuts them): its start waits for the rest.
  let partial = '';
  for await (const bytes of response.body) {
    const lines = (partial + decoder.decode(bytes as Uint8Array, { stream: true })).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const text = (JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]
        ?.delta?.content;
      if (!text) continue;
      first ??= performance.now();
      characters += text.length;
    }
  }
  const ended = performance.now();
  return { firstMs: first! - started, perSecond: characters / ((ended - first!) / 1000) };
}

async function untilState(stack: Awaited<ReturnType<typeof startBenchStack>>, id: string, state: string) {
  for (;;) {
    const status = await instanceHandle(stack.client, id).query(instanceStatusQuery);
    if (status.state === state) return status;
    if (status.state === 'failed' || status.state === 'stopped')
      throw new Error(`${id} ${status.state}: ${status.reason}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The tiny server's own start: spawn to a ready /v1/models. */
async function bareStartMs(modelDir: string): Promise<number> {
  const port = await freePort();
  const [command, ...args] = tinyServerCommand();
  const started = performance.now();
  const child = spawn(command!, args, {
    env: { ...process.env, PORT: String(port), [INSTANCE_ENV.modelDir]: modelDir, [INSTANCE_ENV.modelName]: 'bare' },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${port}/v1/models`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const stack = await startBenchStack({
    instanceRunners: (dir) => ({
      local: new LocalInstanceRunner({ dataDir: path.join(dir, 'instances'), defaultCommand: tinyServerCommand() }),
    }),
  });
  const worker = stack.worker.run();
  const platform = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: 'bench',
    currency: 'usd',
    store: stack.store,
    db: stack.db,
    client: stack.client,
    rateLimitPerMinute: 1_000_000,
  });
  const gateway = await platform.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { handle } = await ensureGermline(stack.client, { name: 'bench', currency: 'usd', taskQueue: 'bench' });
    await updateBudget(handle, depositUpdate, { amount: '100000000', currency: 'usd', reference: 'bench' });
    // A real tiny checkpoint, trained here, is the image.
    const output = mkdtempSync(path.join(stack.dir, 'trained-'));
    const [trainer, ...trainerArgs] = tinyTrainerCommand(['--steps', '200', '--save-every', '200']);
    execFileSync(trainer!, trainerArgs, { env: { ...process.env, [TRAINER_ENV.outputDir]: output }, stdio: 'ignore' });
    const newest = listCheckpoints(output).at(-1)!;
    await publishCheckpoint(stack.store, 'germline/bench', path.join(output, newest.name), { tag: 'main' });

    const id = 'bench-instance';
    await launchInstance(stack.client, 'bench', {
      version: 1,
      id,
      image: { repo: 'germline/bench', reference: 'main' },
      payer: germlineWorkflowId('bench'),
      currency: 'usd',
      visibility: 'public',
      runner: 'local',
      gpus: 1,
      ratePerGpuHour: '200',
      idleTimeoutSeconds: 0,
      maxDurationSeconds: 3600,
      maxCost: '100000',
    });
    const { endpoint } = await untilState(stack, id, 'ready');

    const direct: Array<{ firstMs: number; perSecond: number }> = [];
    const through: Array<{ firstMs: number; perSecond: number }> = [];
    await streamed(endpoint!, 'germline/bench:main', 0); // warm both paths once
    await streamed(gateway, id, 0);
    for (let run = 1; run <= RUNS; run++) {
      await settle();
      direct.push(await streamed(endpoint!, 'germline/bench:main', run));
      await settle();
      through.push(await streamed(gateway, id, run));
    }
    await instanceHandle(stack.client, id).executeUpdate(stopInstanceUpdate, { args: [{ by: 'bench' }] });

    // The wake: an instance that sleeps after a second idle, woken by a request through the gateway.
    const sleeper = 'bench-sleeper';
    await launchInstance(stack.client, 'bench', {
      version: 1,
      id: sleeper,
      image: { repo: 'germline/bench', reference: 'main' },
      payer: germlineWorkflowId('bench'),
      currency: 'usd',
      visibility: 'public',
      runner: 'local',
      gpus: 1,
      ratePerGpuHour: '200',
      idleTimeoutSeconds: 1,
      maxDurationSeconds: 3600,
      maxCost: '100000',
      checkSeconds: 1,
    });
    await untilState(stack, sleeper, 'ready');
    const wakes: number[] = [];
    const starts: number[] = [];
    const modelDir = path.join(output, newest.name);
    for (let run = 0; run < Math.min(RUNS, 3); run++) {
      await untilState(stack, sleeper, 'sleeping');
      wakes.push((await streamed(gateway, sleeper, run)).firstMs);
      starts.push(await bareStartMs(modelDir));
    }
    await instanceHandle(stack.client, sleeper).executeUpdate(stopInstanceUpdate, { args: [{ by: 'bench' }] });

    const d = { first: median(direct.map((r) => r.firstMs)), rate: median(direct.map((r) => r.perSecond)) };
    const g = { first: median(through.map((r) => r.firstMs)), rate: median(through.map((r) => r.perSecond)) };
    console.log(
      `instances: ${RUNS} streamed completions of ${TOKENS} tokens each way, interleaved (${stack.database})`,
    );
    console.log(
      `  time to first token   direct ${d.first.toFixed(1)} ms   gateway ${g.first.toFixed(1)} ms   ratio ${(d.first / g.first).toFixed(2)} (direct/gateway, 1 = no cost)`,
    );
    console.log(
      `  tokens per second     direct ${d.rate.toFixed(0)}   gateway ${g.rate.toFixed(0)}   ratio ${(g.rate / d.rate).toFixed(2)} (gateway/direct; goal >= 0.9)`,
    );
    console.log(
      `  wake to first token   ${median(wakes).toFixed(0)} ms   the server's own start ${median(starts).toFixed(0)} ms   ratio ${(median(wakes) / median(starts)).toFixed(2)}`,
    );
  } finally {
    await platform.close();
    stack.worker.shutdown();
    await worker;
    await stack.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
