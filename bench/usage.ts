// npm run bench:usage [-- --connections 16 --warmup 1 --duration 4 --rounds 10 --allotment 1000000]
//
// What per-use metering costs the gateway: requests per second of short, non-streamed chats to one
// instance of a priced breed (trainers/<owner>/echo), by its owner, who calls free (no metering), and
// by another account paying from ample credit (metered: the call's worst case held on an allotment
// before the instance sees it, what it used charged after: two SQL statements a call, and an
// allotment workflow now and then), in one run through the same gateway (goal: priced / free >= 0.9).
// The instance is the tests' echo instance (a real process), so the gateway is what is measured.
// PostgreSQL: DATABASE_URL when set (CI: the machine's PostgreSQL, database `test`), otherwise a fresh
// PGlite in a temp folder, as `npm start` runs it (PGlite runs on the platform's thread: its SQL is the
// platform's CPU). The load comes from a separate process (this file, forked), closed-loop over
// keep-alive connections; the paths alternate (free, priced, priced, free, ...) after a warm-up each,
// and the median of the rounds' ratios is reported, beside the platform process's CPU time per
// request. At the end the open allotments are closed and the books checked: every priced call charged
// once at its price, the allotments settled for what they metered, the credit spent that, the trainer
// and the fee shared it, and the credit's journal agrees with its workflow. With PGlite, a few requests
// may fail (counted as errors) where its socket server garbles concurrent connections' queries
// (electric-sql/pglite#1046), most often while an allotment is settled and the next one opened.
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { journalBalances, reconcile } from '../activities/journal';
import { LocalInstanceRunner } from '../activities/runners/local-instances';
import { MICROS_PER_MINOR, microsToMinor } from '../db/usage';
import { creditHandle } from '../platform/credit';
import { CHARGE_HEADER, INTERACTION_HEADER } from '../platform/gateway';
import { buildPlatform } from '../platform/server';
import { publishCheckpoint } from '../store/checkpoint';
import { updateBudget } from '../temporal/budget-client';
import { ensureGermline } from '../temporal/germline-client';
import { instanceHandle, launchInstance } from '../temporal/instance-client';
import { closeAllotmentSignal } from '../workflows/allotment-api';
import { depositUpdate, statusQuery } from '../workflows/budget-api';
import { stopInstanceUpdate } from '../workflows/instance-api';
import { allotmentWorkflowId, creditBook, germlineWorkflowId, probeWorkflowId } from '../workflows/names';
import { type BenchStack, startBenchStack } from './support/stack';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '1' },
    duration: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '10' },
    allotment: { type: 'string', default: '1000000' },
  },
});
const CONNECTIONS = Number(values.connections);
const WARMUP_MS = Number(values.warmup) * 1000;
const DURATION_MS = Number(values.duration) * 1000;
const ROUNDS = Number(values.rounds);
/** Minor units an allotment reserves: large, so the credit workflow is seldom asked. */
const ALLOTMENT_MINOR = BigInt(values.allotment);
const ALLOTMENT_SECONDS = 60;
const GOAL = 0.9;
/** A request not answered in this long counts as an error (a stalled database must not hang a round). */
const ANSWER_TIMEOUT_MS = 10_000;
/** Set in the forked load process. */
const LOADER_ENV = 'COMPUTATRUM_BENCH_USAGE_LOADER';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'test', 'helpers', 'echo-instance.js')];

// ---------------------------------------------------------------------------------------------------
// The load process: bench/support/load.ts's closed loop, with a bearer token and the charge header checked.

interface UsageLoadJob {
  url: string;
  body: string;
  authorization: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** A success is a 200 echo answer that carries the charge header (priced) or does not (free). */
  charged: boolean;
}

interface UsageLoadResult {
  /** Requests started in the measured window (and answered). */
  requests: number;
  /** Successes of the whole job, the warm-up's too: every one a priced path's is charged. */
  succeeded: number;
  errors: number;
  firstError?: string;
  seconds: number;
  latenciesMs: number[];
}

function post(
  agent: http.Agent,
  url: URL,
  body: Buffer,
  authorization: string,
): Promise<{ status: number; charge: boolean; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length, authorization },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            charge: response.headers[CHARGE_HEADER] !== undefined,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.setTimeout(ANSWER_TIMEOUT_MS, () =>
      request.destroy(new Error(`no answer in ${ANSWER_TIMEOUT_MS / 1000} s`)),
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function runLoad(job: UsageLoadJob): Promise<UsageLoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const url = new URL(job.url);
  const body = Buffer.from(job.body);
  const latenciesMs: number[] = [];
  let errors = 0;
  let succeeded = 0;
  let firstError: string | undefined;
  const now = () => performance.now();
  const measureFrom = now() + job.warmupMs;
  const measureUntil = measureFrom + job.durationMs;
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      while (now() < measureUntil) {
        const started = now();
        let ok: boolean;
        try {
          const answer = await post(agent, url, body, job.authorization);
          ok = answer.status === 200 && answer.body.startsWith('{"id":"chatcmpl-echo') && answer.charge === job.charged;
          if (!ok) firstError ??= `${answer.status} charge header ${answer.charge} ${answer.body.slice(0, 200)}`;
        } catch (error) {
          ok = false;
          firstError ??= (error as Error).message;
        }
        if (ok) succeeded++;
        if (started < measureFrom) continue;
        if (ok) latenciesMs.push(now() - started);
        else errors++;
      }
    }),
  );
  const seconds = (now() - measureFrom) / 1000;
  agent.destroy();
  return {
    requests: latenciesMs.length + errors,
    succeeded,
    errors,
    seconds,
    latenciesMs,
    ...(firstError ? { firstError } : {}),
  };
}

function serveLoads(): void {
  process.on('message', (job: UsageLoadJob) => {
    runLoad(job).then(
      (result) => process.send!(result),
      (error: unknown) =>
        process.send!({
          requests: 0,
          succeeded: 0,
          errors: 1,
          firstError: String(error),
          seconds: 0,
          latenciesMs: [],
        } satisfies UsageLoadResult),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------
// The measurement.

interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  /** CPU time of this process (the platform, the worker, and PGlite when embedded) per answered request. */
  cpuUs: number;
  succeeded: number;
  errors: number;
  firstError?: string;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function measure(
  loader: { child: ChildProcess; exited: Promise<never> },
  job: Omit<UsageLoadJob, 'connections'>,
): Promise<Measurement> {
  const cpu = process.cpuUsage();
  const answer = once(loader.child, 'message') as Promise<[UsageLoadResult]>;
  loader.child.send({ ...job, connections: CONNECTIONS } satisfies UsageLoadJob);
  const [result] = await Promise.race([answer, loader.exited]);
  const { user, system } = process.cpuUsage(cpu);
  const latencies = Float64Array.from(result.latenciesMs).sort();
  return {
    rps: result.seconds > 0 ? result.requests / result.seconds : 0,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUs: (user + system) / Math.max(1, result.succeeded + result.errors),
    succeeded: result.succeeded,
    errors: result.errors,
    ...(result.firstError ? { firstError: result.firstError } : {}),
  };
}

/** A safetensors file holding `text` as its one tensor's bytes: a checkpoint the store accepts. */
function safetensorsOf(text: string): Buffer {
  const weights = Buffer.from(text);
  const header = Buffer.from(
    JSON.stringify({ weights: { dtype: 'U8', shape: [weights.length], data_offsets: [0, weights.length] } }).padEnd(64),
  );
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header, weights]);
}

/** What PGlite's socket server may do under concurrent connections, said when the database stops answering. */
let stallHint = '';

/** `promise`, or an error saying that `what` did not answer in `ms`. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s${stallHint}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await within(30_000, what, probe());
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * The books once the run is over: the open allotments closed and settled, every priced call charged
 * once at its price, the allotments settled for what they metered (rounded up once each), the credit
 * spent that, the owner's earnings and the fee share it, and the credit's journal agrees with its workflow.
 */
async function checkBooks(
  stack: BenchStack,
  run: {
    owner: string;
    payer: string;
    credit: Awaited<ReturnType<typeof creditHandle>>;
    pricedCalls: number;
    perCall: bigint;
  },
): Promise<boolean> {
  const { owner, payer, credit, pricedCalls, perCall } = run;
  const open = await stack.db.usageAllotment.findMany({
    where: { handle: payer, state: { in: ['opening', 'open'] } },
  });
  for (const row of open)
    await stack.client.workflow.getHandle(allotmentWorkflowId(row.id)).signal(closeAllotmentSignal);
  const allotments = await until(
    'the allotments settled',
    async () => {
      const rows = await stack.db.usageAllotment.findMany({ where: { handle: payer } });
      return rows.every((row) => ['settled', 'refused'].includes(row.state)) ? rows : undefined;
    },
    60_000,
  ).catch(() => undefined);
  if (!allotments) {
    // An allotment waits for its calls still held: one whose charge never finished is released only after 15 minutes.
    const rows = await within(10_000, 'the database', stack.db.usageAllotment.findMany({ where: { handle: payer } }));
    const held = await within(
      10_000,
      'the database',
      stack.db.usageCharge.count({ where: { payerHandle: payer, state: 'held' } }),
    );
    console.log(
      `books: NOT settled after 60 s: allotments ${rows.map((row) => row.state).join(', ')}; ${held} calls still held ` +
        `(their charge failed to finish: see the errors above)${stallHint}`,
    );
    return false;
  }
  const settled = allotments.filter((row) => row.state === 'settled');
  const charges = await stack.db.usageCharge.groupBy({
    by: ['state'],
    where: { payerHandle: payer },
    _count: true,
    _sum: { amount: true },
  });
  const chargedRow = charges.find((c) => c.state === 'charged');
  const chargedCalls = chargedRow?._count ?? 0;
  const chargedMicros = chargedRow?._sum.amount ?? 0n;
  const others = charges.filter((c) => c.state !== 'charged').map((c) => `${c._count} ${c.state}`);
  const used = settled.reduce((sum, row) => sum + row.used, 0n);
  const spent = settled.reduce((sum, row) => sum + (row.spent ?? 0n), 0n);
  const fee = settled.reduce((sum, row) => sum + (row.fee ?? 0n), 0n);
  const roundedUp = settled.reduce((sum, row) => sum + microsToMinor(row.used), 0n);
  const earned =
    (await stack.db.earning.aggregate({ where: { handle: owner }, _sum: { amount: true } }))._sum.amount ?? 0n;
  const books = await until('the credit journal booked', async () => {
    const status = await credit.query(statusQuery);
    return status.journalPending > 0
      ? undefined
      : { status, reconciliation: reconcile(status, await journalBalances(stack.db, creditBook(payer))) };
  });
  const checks = [
    [
      `${pricedCalls} priced calls answered, ${chargedCalls} charged`,
      chargedCalls === pricedCalls && others.length === 0,
    ],
    [
      `charged ${chargedMicros} micros = ${chargedCalls} x ${perCall}`,
      chargedMicros === BigInt(chargedCalls) * perCall,
    ],
    [`the allotments metered ${used} micros`, used === chargedMicros],
    [`settled for ${spent} minor units (each rounded up once)`, spent === roundedUp],
    [
      `the credit spent ${books.status.spent}, reserves ${books.status.reserved}`,
      BigInt(books.status.spent) === spent && books.status.reserved === '0',
    ],
    [`the owner earned ${earned} + the fee ${fee}`, earned + fee === spent],
    ['the credit journal agrees with its workflow', books.reconciliation.agrees],
  ] as const;
  const reconciled = checks.every(([, ok]) => ok);
  console.log(
    `allotments: ${allotments.length} opened (${settled.length} settled${allotments.length > settled.length ? `, ${allotments.length - settled.length} refused` : ''}) ` +
      `for ${pricedCalls} priced calls (${MICROS_PER_MINOR} micros a minor unit)${others.length ? `; charges also ${others.join(', ')}` : ''}`,
  );
  console.log(
    `books: ${reconciled ? 'reconciled' : 'NOT reconciled'}: ${checks.map(([what, ok]) => `${what} ${ok ? 'ok' : 'WRONG'}`).join('; ')}`,
  );
  return reconciled;
}

async function main(): Promise<void> {
  let runner: LocalInstanceRunner | undefined;
  const stack = await startBenchStack({
    instanceRunners: (dir) => ({
      local: (runner = new LocalInstanceRunner({
        dataDir: path.join(dir, 'instances'),
        defaultCommand: ECHO_INSTANCE,
      })),
    }),
  });
  const worker = stack.worker.run();
  if (stack.database === 'PGlite')
    stallHint =
      " (PGlite's socket server can garble or stall concurrent connections' queries, electric-sql/pglite#1046: rerun, or set DATABASE_URL)";
  // Unique per run: reruns on a shared database (DATABASE_URL) never collide.
  const run = `${Date.now().toString(36)}-${randomUUID().slice(0, 4)}`;
  const germline = `bench-usage-${run}`;
  const platform = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    currency: 'usd',
    store: stack.store,
    db: stack.db,
    client: stack.client,
    rateLimitPerMinute: Number.MAX_SAFE_INTEGER,
    // Training settings (its task queue) and a Temporal client are what turn metering on.
    training: {
      runner: 'local',
      ratePerGpuHour: 200n,
      maxDurationSeconds: 600,
      maxPreemptions: 0,
      taskQueue: 'bench',
      maxGpus: 1,
    },
    feePercent: 10,
    usage: { allotmentMinor: ALLOTMENT_MINOR, allotmentSeconds: ALLOTMENT_SECONDS },
  });
  const gateway = await platform.listen({ host: '127.0.0.1', port: 0 });
  const child = fork(__filename, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [LOADER_ENV]: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`the load process stopped (${signal ?? `exit code ${code}`})`)),
    ),
  );
  exited.catch(() => undefined); // it matters only while a round waits on it
  const loader = { child, exited };
  try {
    const { handle } = await ensureGermline(stack.client, { name: germline, currency: 'usd', taskQueue: 'bench' });
    await updateBudget(handle, depositUpdate, { amount: '100000000', currency: 'usd', reference: 'bench' });

    /** An account signed up through /auth/signup, with an API token. */
    const signUp = async (name: string) => {
      const accountHandle = `${name}-${run}`;
      const signed = await platform.inject({
        method: 'POST',
        url: '/auth/signup',
        payload: { handle: accountHandle, email: `${accountHandle}@example.org`, password: 'correct horse battery' },
      });
      if (signed.statusCode !== 201) throw new Error(`sign-up answered ${signed.statusCode}: ${signed.body}`);
      const session = signed.cookies.find((c) => c.name === 'computatrum_session')!.value;
      const created = await platform.inject({
        method: 'POST',
        url: '/auth/tokens',
        headers: { cookie: `computatrum_session=${session}` },
        payload: { name: 'bench' },
      });
      const authorization = `Bearer ${created.json<{ token: string }>().token}`;
      const gql = async (query: string, variables: Record<string, unknown>) => {
        const answer = (
          await platform.inject({
            method: 'POST',
            url: '/api/graphql',
            headers: { 'content-type': 'application/json', authorization },
            payload: JSON.stringify({ query, variables }),
          })
        ).json<{ errors?: Array<{ message: string }> }>();
        if (answer.errors) throw new Error(`${query}: ${answer.errors.map((e) => e.message).join('; ')}`);
      };
      return { handle: accountHandle, authorization, gql };
    };

    // The owner publishes and prices the breed: 0.01 USD in, 0.03 USD out per 1,000 tokens.
    const owner = await signUp('owner');
    const breed = `trainers/${owner.handle}/echo`;
    const image = mkdtempSync(path.join(stack.dir, 'image-'));
    writeFileSync(path.join(image, 'model.safetensors'), safetensorsOf(`weights of ${breed}`));
    await publishCheckpoint(stack.store, breed, image, { tag: 'main' });
    await owner.gql('mutation($r: String!) { publishBreed(repository: $r, title: "Echo") { repository } }', {
      r: breed,
    });
    // Publishing starts a behaviour probe of the image, which this worker (no probe settings) cannot
    // run: ended at once, it is no part of what is measured.
    const { digest } = (await stack.store.getManifest(breed, 'main'))!;
    await stack.client.workflow
      .getHandle(probeWorkflowId(breed, digest))
      .terminate('the bench measures the gateway')
      .catch(() => undefined);
    await owner.gql(
      'mutation($r: String!) { priceBreed(repository: $r, inputPer1k: "0.01", outputPer1k: "0.03") { repository } }',
      { r: breed },
    );
    // The payer: another account, with ample credit.
    const payer = await signUp('payer');
    const credit = await creditHandle(stack.client, 'bench', payer.handle, 'usd');
    await updateBudget(credit, depositUpdate, { amount: '100000000', currency: 'usd', reference: 'bench' });

    // One public instance of the priced breed, launched (and paid for) by the germline.
    const id = `bench-usage-${run}`;
    await launchInstance(stack.client, 'bench', {
      version: 1,
      id,
      image: { repo: breed, reference: 'main' },
      payer: germlineWorkflowId(germline),
      currency: 'usd',
      visibility: 'public',
      runner: 'local',
      gpus: 1,
      ratePerGpuHour: '200',
      idleTimeoutSeconds: 0,
      maxDurationSeconds: 3600,
      maxCost: '100000',
    });
    await until('the instance ready', async () => {
      const row = await stack.db.instance.findUnique({ where: { id } });
      if (row?.state === 'failed' || row?.state === 'stopped') throw new Error(`${id} ${row.state}: ${row.reason}`);
      return row?.state === 'ready' && row.endpoint ? row : undefined;
    });

    const url = `${gateway}/v1/chat/completions`;
    const body = JSON.stringify({ model: id, messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 16 });
    const paths = [
      { name: 'free', label: `free    (the breed's owner)`, authorization: owner.authorization, charged: false },
      {
        name: 'priced',
        label: 'priced  (another account, from credit)',
        authorization: payer.authorization,
        charged: true,
      },
    ] as const;

    // One call each way first: the priced one is charged (its price per call, from its charge), the free one not.
    let pricedCalls = 0;
    let perCall = 0n;
    for (const p of paths) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: p.authorization },
        body,
      });
      if (response.status !== 200)
        throw new Error(`the ${p.name} path answered ${response.status}: ${await response.text()}`);
      const charge = await stack.db.usageCharge.findUnique({
        where: { id: response.headers.get(INTERACTION_HEADER)! },
      });
      if (Boolean(charge) !== p.charged || (response.headers.get(CHARGE_HEADER) !== null) !== p.charged)
        throw new Error(`the ${p.name} path was ${charge ? '' : 'not '}charged`);
      if (charge) {
        perCall = charge.amount;
        pricedCalls++;
      }
    }

    console.log(
      `usage: ${breed} priced 0.01 / 0.03 USD per 1,000 tokens in / out, one echo instance; ${stack.database}; ` +
        `${CONNECTIONS} keep-alive connections from 1 load process; ${ROUNDS} rounds of ${WARMUP_MS / 1000} s warm-up + ` +
        `${DURATION_MS / 1000} s per path, alternating; allotments of ${ALLOTMENT_MINOR} minor units for ${ALLOTMENT_SECONDS} s; ` +
        `a priced call ${perCall} micros`,
    );
    const results: Record<(typeof paths)[number]['name'], Measurement[]> = { free: [], priced: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // free, priced, priced, free, ...: a drift over the run (tables growing, the machine's other
      // work) falls on both paths alike.
      for (const p of round % 2 ? [...paths].reverse() : paths) {
        await within(10_000, 'the database', stack.db.$queryRaw`SELECT 1`);
        const m = await measure(loader, {
          url,
          body,
          authorization: p.authorization,
          charged: p.charged,
          warmupMs: WARMUP_MS,
          durationMs: DURATION_MS,
        });
        results[p.name].push(m);
        if (p.charged) pricedCalls += m.succeeded;
        if (m.errors > 0) console.log(`  ${p.name} round ${round + 1}: ${m.errors} errors, the first: ${m.firstError}`);
      }
    }

    const summary = (name: (typeof paths)[number]['name']) => ({
      rps: median(results[name].map((m) => m.rps)),
      p50: median(results[name].map((m) => m.p50)),
      p99: median(results[name].map((m) => m.p99)),
      cpuUs: median(results[name].map((m) => m.cpuUs)),
      errors: results[name].reduce((sum, m) => sum + m.errors, 0),
      rounds: results[name].map((m) => m.rps.toFixed(0)).join(' '),
    });
    console.log(
      `${'path'.padEnd(42)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'cpu µs/req'.padStart(12)}${'errors'.padStart(8)}   req/s per round`,
    );
    const free = summary('free');
    const priced = summary('priced');
    for (const [p, s] of [
      [paths[0], free],
      [paths[1], priced],
    ] as const) {
      console.log(
        `${p.label.padEnd(42)}${s.rps.toFixed(1).padStart(10)}${s.p50.toFixed(2).padStart(10)}${s.p99.toFixed(2).padStart(10)}${s.cpuUs.toFixed(0).padStart(12)}${String(s.errors).padStart(8)}   ${s.rounds}`,
      );
    }
    // Each round's two paths ran back to back, under the same load from the rest of the machine: the
    // ratio is taken per round, and its median reported.
    const perRound = results.priced.map((m, i) => m.rps / results.free[i]!.rps);
    const ratio = median(perRound);
    console.log(
      `ratio    req/s priced / free: ${ratio.toFixed(3)}, the median of the rounds' (goal >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}; ` +
        `per round ${perRound.map((r) => r.toFixed(2)).join(' ')}; of the medians ${(priced.rps / free.rps).toFixed(3)}); ` +
        `p99 priced / free: ${(priced.p99 / free.p99).toFixed(2)}x; ` +
        `server CPU per request priced - free: ${(priced.cpuUs - free.cpuUs).toFixed(0)} µs, ` +
        `free / priced ${(free.cpuUs / priced.cpuUs).toFixed(3)} (the ratio where the platform's CPU is what runs out; steadier on a busy machine)`,
    );

    if (!(await checkBooks(stack, { owner: owner.handle, payer: payer.handle, credit, pricedCalls, perCall })))
      process.exitCode = 1;
    await instanceHandle(stack.client, id).executeUpdate(stopInstanceUpdate, { args: [{ by: 'bench' }] });
  } finally {
    child.disconnect();
    // The instance's process too, however the run ended; and nothing waits long on a stalled database.
    for (const id of (await runner?.list()) ?? []) await runner!.stop(id);
    await within(15_000, 'closing the platform', platform.close()).catch(() => undefined);
    if (stack.worker.getState() === 'RUNNING') stack.worker.shutdown();
    await within(30_000, 'stopping the worker', worker).catch(() => undefined);
    await within(30_000, 'closing the stack', stack.close()).catch(() => undefined);
  }
}

if (process.env[LOADER_ENV]) serveLoads();
else
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
