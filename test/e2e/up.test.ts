// `npm start` as an operator runs it: the real `computatrum up` process on the embedded default
// (Temporal dev server + PGlite), driven by the real `computatrum` CLI, stopped with Ctrl-C.
import { freePort } from '../../runtime/embedded/temporal-dev-server';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cli, startUp, upEnvironment } from '../helpers/computatrum-up';
import { eventually } from '../helpers/eventually';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';
import { safetensorsOf } from '../helpers/content';

// The npm-start test drives about fifty CLI starts (about 3 s each here); beside the rest of the suite
// on two cores it took 350-430 s, alone 156 s.
jest.setTimeout(600_000);

test('npm start brings up Temporal with its UI, PostgreSQL, the worker, the platform and the germline; Ctrl-C stops it all; a second start finds the money', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'computatrum-up-'));
  // This germline starts with nothing (no opening balance, so no genesis run): the amounts below are its own.
  const env: NodeJS.ProcessEnv = {
    ...(await upEnvironment(dataDir, uniqueName('smoke'))),
    COMPUTATRUM_OPENING_BALANCE: '0',
    COMPUTATRUM_GENESIS_MAX_COST: '0',
  };
  const platform = `http://127.0.0.1:${env.PLATFORM_PORT}`;
  const temporalUi = `http://127.0.0.1:${env.TEMPORAL_UI_PORT}`;

  const up = await startUp(env);
  expect(up.output()).toContain(`Temporal Web UI  ${temporalUi}/namespaces/default/workflows`);
  expect(up.output()).toContain(`data folder      ${dataDir}`);

  const health = await fetch(`${platform}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ status: 'ok', checks: { temporal: 'ok', database: 'ok' } });
  expect((await fetch(temporalUi)).status).toBe(200);

  const deposit = await cli(env, 'deposit', '100.00', '--reference', 'r1');
  expect(deposit).toMatchObject({ code: 0, stdout: expect.stringContaining('deposited 100.00 USD') });
  const refused = await cli(env, 'deposit', '1.234', '--reference', 'r2');
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('amount "1.234" has 3 decimals; USD has at most 2');
  const reconciled = await cli(env, 'reconcile');
  expect(reconciled).toMatchObject({ code: 0, stdout: expect.stringContaining('journal and workflow agree') });

  // A training run with the bundled tiny trainer: cap reserved, checkpoint on the branch, exact charge.
  const germlineRepo = `germline/${env.COMPUTATRUM_GERMLINE}`;
  const train = await cli(env, 'train', '--branch', 'trained', '--max-cost', '1.00', '--id', 'first-run');
  expect(train).toMatchObject({
    code: 0,
    stdout: expect.stringMatching(/first-run: succeeded, cost \d+\.\d\d USD for \d+ GPU-seconds/),
  });
  expect(train.stdout).toContain(`${germlineRepo}:trained -> sha256:`);
  const trainedRun = JSON.parse((await cli(env, 'run', 'first-run', '--json')).stdout) as {
    state: string;
    cost: string;
    outputDigest: string;
    step: number;
  };
  expect(trainedRun).toMatchObject({ state: 'succeeded', step: 300, outputDigest: expect.stringMatching(/^sha256:/) });
  expect((await cli(env, 'runs')).stdout).toMatch(/first-run\s+succeeded\s+germline\/\S+:trained\s+300/);
  const ledgerAfterTraining = (await cli(env, 'ledger')).stdout;
  expect(ledgerAfterTraining).toMatch(/reserve\s+1\.00 USD\s+\S+\s+training\/first-run/);
  expect(ledgerAfterTraining).toMatch(/settle\s+1\.00 USD\s+\d+\.\d\d USD\s+\S+\s+training\/first-run/);

  // The trained checkpoint served by the bundled tiny model's server, paid lease by lease, to the second.
  const launched = await cli(
    env,
    'launch',
    `${germlineRepo}:trained`,
    '--public',
    '--max-cost',
    '1.00',
    '--id',
    'talk',
  );
  expect(launched).toMatchObject({ code: 0, stdout: expect.stringContaining('talk: ready') });
  const endpoint = /endpoint\s+(\S+)/.exec(launched.stdout)![1]!;
  const answer = (await (
    await fetch(`${endpoint}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: `${germlineRepo}:trained`,
        messages: [{ role: 'user', content: 'The ' }],
        max_tokens: 20,
      }),
    })
  ).json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  expect(answer.choices[0]!.message.content).toHaveLength(20);
  expect((await cli(env, 'instances')).stdout).toMatch(/talk\s+ready\s+germline\/\S+:trained/);
  const stopped = await cli(env, 'stop', 'talk', '--reason', 'e2e');
  expect(stopped.stdout).toMatch(
    /talk: stopped \(stopped by operator \(cli\): e2e\)\n.*\n.*\n\s+cost\s+\d+\.\d\d USD for \d+ s; 0\.00 USD reserved now/,
  );
  const relaunched = await cli(env, 'launch', `${germlineRepo}:trained`, '--max-cost', '1.00', '--id', 'talk');
  expect(relaunched).toMatchObject({
    code: 1,
    stderr: expect.stringContaining('an instance with id talk exists already'),
  });
  const instanceCost = Math.round(Number(/cost\s+(\d+\.\d\d) USD/.exec(stopped.stdout)![1]) * 100);
  const ledgerAfterInstance = (await cli(env, 'ledger')).stdout;
  expect(ledgerAfterInstance).toMatch(/reserve\s+\d+\.\d\d USD\s+\S+\s+instance\/talk\/lease\/1/);
  expect(ledgerAfterInstance).toMatch(/settle\s+\d+\.\d\d USD\s+\d+\.\d\d USD\s+\S+\s+instance\/talk\/lease\/1/);

  const tooExpensive = await cli(env, 'train', '--branch', 'trained', '--max-cost', '500.00');
  expect(tooExpensive.code).toBe(1);
  expect(tooExpensive.stderr).toMatch(/short by 40\d\.\d\d USD/);

  // A child: spawned within the guardrails, listed, retired with its allowance returned.
  const spawned = await cli(env, 'spawn', 'coder', '--allowance', '5.00', '--purpose', 'programming');
  expect(spawned).toMatchObject({ code: 0, stdout: expect.stringContaining('spawned coder with 5.00 USD') });
  expect((await cli(env, 'children')).stdout).toMatch(/coder\s+active\s+5\.00 USD\s+programming/);
  expect((await cli(env, 'child', 'coder')).stdout).toContain('allowance   5.00 USD: spent 0.00 USD');
  const childRun = await cli(
    env,
    'train',
    '--child',
    'coder',
    '--branch',
    'main',
    '--max-cost',
    '1.00',
    '--id',
    'child-run',
  );
  expect(childRun).toMatchObject({ code: 0, stdout: expect.stringContaining('children/coder:main -> sha256:') });
  const childRunCost = (JSON.parse((await cli(env, 'run', 'child-run', '--json')).stdout) as { cost: string }).cost;
  expect((await cli(env, 'child', 'coder', '--json')).stdout).toContain(`"spent": "${childRunCost}"`);
  const retiredChild = await cli(env, 'retire', 'coder', '--reason', 'demo done');
  expect(retiredChild).toMatchObject({ code: 0, stdout: expect.stringContaining('child coder of germline/') });
  expect(retiredChild.stdout).toContain('(retired)');
  const tooRich = await cli(env, 'spawn', 'animator', '--allowance', '900.00');
  expect(tooRich.code).toBe(1);
  expect(tooRich.stderr).toContain('available-funds: needs 900.00 USD');

  // Autonomy: the operator sets the rules and a threshold; a tick proposes a spawn, which waits for approval.
  const autonomy = await cli(
    env,
    'autonomy',
    '--tick-interval',
    'off',
    '--purposes',
    'tutor',
    '--allowance-percent',
    '1',
    '--run-cost',
    '0.10',
    '--approval-threshold',
    '0.50',
  );
  expect(autonomy).toMatchObject({
    stderr: '',
    code: 0,
    stdout: expect.stringContaining('approval threshold  0.50 USD'),
  });
  const tick = await cli(env, 'tick');
  expect(tick.stdout).toMatch(/awaiting-approval\s+spawn tutor with 0\.9\d USD/);
  const decisionId = /^(\S+\/1\/0)\s/m.exec(tick.stdout)![1]!;
  expect((await cli(env, 'decisions', '--awaiting')).stdout).toContain(decisionId);
  const approved = await cli(env, 'approve', decisionId, '--by', 'operator-e2e');
  expect(approved).toMatchObject({
    code: 0,
    stdout: expect.stringContaining(`${decisionId}: approved — approved by operator-e2e: spawned child/`),
  });
  expect((await cli(env, 'decision', decisionId)).stdout).toMatch(
    /ok\s+max-children\s+0 of at most 8 children are funded/,
  );
  expect((await cli(env, 'children')).stdout).toMatch(/tutor\s+active/);
  expect((await cli(env, 'pause', '--child', 'tutor', '--reason', 'audit')).stdout).toContain('child tutor paused');
  expect((await cli(env, 'child', 'tutor')).stdout).toContain('(paused)');
  expect((await cli(env, 'resume', '--child', 'tutor')).stdout).toContain('child tutor resumed');
  expect((await cli(env, 'pause', '--child', 'nobody')).stderr).toContain('no running child nobody');
  const tutorAllowance = Number(
    (JSON.parse((await cli(env, 'children', '--json')).stdout) as Array<{ name: string; allowance: string }>).find(
      (c) => c.name === 'tutor',
    )!.allowance,
  );
  // "none" lifts a cap or a threshold.
  expect((await cli(env, 'autonomy', '--approval-threshold', 'none')).stdout).toContain('approval threshold  none');
  expect((await cli(env, 'policy', 'set', '--daily-cap', '500.00')).stdout).toContain(
    'daily spend cap:       500.00 USD',
  );
  expect((await cli(env, 'policy', 'set', '--daily-cap', 'none')).stdout).toContain('daily spend cap:       no cap');
  // The schedules, as configured and as Temporal runs them; a changed expression is reported until `up` applies it.
  const schedules = await cli(env, 'schedules', '--next', '2');
  expect(schedules.stdout).toContain(
    `daily-gpc/${env.COMPUTATRUM_GERMLINE}  the daily gpc tag  COMPUTATRUM_DAILY_TAG_CRON="0 0 * * *" (UTC)`,
  );
  expect(schedules.stdout).toMatch(
    /next, as configured: +\d{4}-\d\d-\d\dT00:00:00Z, \d{4}-\d\d-\d\dT00:00:00Z\n {2}Temporal runs it so\./,
  );
  // The upkeep beside it, each on its own Temporal Schedule; payouts are the platform's, off without Stripe.
  expect(schedules.stdout).toContain(
    `probe-sweep/${env.COMPUTATRUM_GERMLINE}  the probe sweep (breed versions and the newest gpc tag never probed)  COMPUTATRUM_PROBE_SWEEP_CRON="30 1 * * *" (UTC)`,
  );
  expect(schedules.stdout).toContain(
    `dataset-builds/${env.COMPUTATRUM_GERMLINE}  the dataset builds (feedback not learned yet)  COMPUTATRUM_DATASET_BUILD_CRON="0 3 * * *" (UTC)`,
  );
  expect(schedules.stdout.match(/Temporal runs it so\./g)).toHaveLength(3);
  expect(schedules.stdout).toMatch(
    /COMPUTATRUM_PAYOUTS_CRON="0 6 \* \* \*" \(UTC\)\n.*T06:00:00Z.*\n {2}off: Stripe is not configured/,
  );
  const changed = await cli({ ...env, COMPUTATRUM_DAILY_TAG_CRON: '30 2 * * *' }, 'schedules');
  expect(changed.stdout).toMatch(
    /Temporal runs it at: .*T00:00:00Z.*\(`computatrum up` updates it to the configured expression\)/,
  );
  const wrong = await cli({ ...env, COMPUTATRUM_DAILY_TAG_CRON: '0 25 * * *' }, 'schedules');
  expect(wrong.code).toBe(2);
  expect(wrong.stderr).toContain('COMPUTATRUM_DAILY_TAG_CRON');

  // The platform: a person signs up, an operator role is given from the CLI, and the GraphQL API answers by role.
  const signup = await fetch(`${platform}/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ handle: 'ops', email: 'ops@example.org', password: 'a long password' }),
  });
  expect(signup.status).toBe(201);
  const sessionCookie = signup.headers.get('set-cookie')!.split(';')[0]!;
  const books = () =>
    fetch(`${platform}/api/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: sessionCookie },
      body: JSON.stringify({ query: '{ germline { name books { available } } }' }),
    }).then(
      (r) =>
        r.json() as Promise<{
          data: { germline: { books: { available: string } | null } };
          errors?: Array<{ extensions: { code: string } }>;
        }>,
    );
  expect((await books()).errors?.[0]?.extensions.code).toBe('FORBIDDEN');
  expect((await cli(env, 'account-role', 'ops', 'operator')).stdout).toContain('ops is now an operator');
  expect((await books()).data.germline.books?.available).toMatch(/^\d+$/);

  // A checkpoint pushed to the germline head becomes today's gpc tag, with a nickname.
  const checkpoint = mkdtempSync(path.join(tmpdir(), 'computatrum-ckpt-'));
  const weights = safetensorsOf(randomBytes(200_000));
  writeFileSync(path.join(checkpoint, 'model.safetensors'), weights);
  const push = await cli(env, 'push', checkpoint, `${germlineRepo}:main`);
  expect(push).toMatchObject({ code: 0, stdout: expect.stringContaining(`${germlineRepo}:main -> sha256:`) });
  // The schedule tags the UTC day it runs on: read the day before and after the trigger (a midnight
  // may fall between them), and then use the tag it made.
  const utcDay = () => new Date().toISOString().slice(0, 10);
  const dayBefore = utcDay();
  expect((await cli(env, 'daily')).code).toBe(0);
  const candidates = [...new Set([`gpc-${utcDay()}`, `gpc-${dayBefore}`])];
  const tagged = (parsed: { tags: Array<{ tag: string; nickname: string | null }> }) =>
    candidates.find((tag) => parsed.tags.some((t) => t.tag === tag && t.nickname));
  const listing = await eventually(
    async () => {
      const tags = await cli(env, 'tags', germlineRepo, '--json');
      const parsed = JSON.parse(tags.stdout) as { tags: Array<{ tag: string; nickname: string | null }> };
      return tagged(parsed) ? parsed : undefined;
    },
    `${candidates.join(' or ')} to be tagged`,
    60_000,
  );
  const today = tagged(listing)!;
  expect(listing.tags.find((t) => t.tag === today)!.nickname).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
  const pulled = mkdtempSync(path.join(tmpdir(), 'computatrum-pulled-'));
  const pull = await cli(env, 'pull', `${germlineRepo}:${today}`, pulled);
  expect(pull).toMatchObject({ code: 0, stdout: expect.stringContaining(`1 files, ${weights.length} bytes verified`) });
  expect(readFileSync(path.join(pulled, 'model.safetensors')).equals(weights)).toBe(true);
  const fork = await cli(env, 'fork', `${germlineRepo}:${today}`, 'trainers/alice/coder:main');
  expect(fork).toMatchObject({ code: 0, stdout: expect.stringContaining('no bytes copied') });
  // The home page and the hub show today's checkpoint by its nickname.
  const nickname = listing.tags.find((t) => t.tag === today)!.nickname!;
  for (const page of ['/', `/hub/${germlineRepo}`]) {
    const html = await (await fetch(`${platform}${page}`)).text();
    expect(html).toContain(nickname);
  }
  const missing = await cli(env, 'pull', `${germlineRepo}:gpc-1999-01-01`, pulled);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain(`${germlineRepo} has no gpc-1999-01-01; its tags are:`);

  up.process.kill('SIGINT');
  expect(await up.exited).toBe(0);
  expect(up.output()).toContain('computatrum stopped.');
  await expect(fetch(temporalUi)).rejects.toThrow(); // the dev server went down with it

  const again = await startUp(env);
  try {
    const status = await cli(env, 'status', '--json');
    expect(status.code).toBe(0);
    // The tutor's allowance stays reserved for it across the restart.
    expect(JSON.parse(status.stdout)).toMatchObject({
      deposited: '10000',
      available: String(10000 - Number(trainedRun.cost) - instanceCost - Number(childRunCost) - tutorAllowance),
      reserved: String(tutorAllowance),
    });
    const ledger = await cli(env, 'ledger');
    expect(ledger.stdout).toMatch(/1\s+\S+ \S+\s+deposit\s+100\.00 USD\s+r1/);
  } finally {
    again.process.kill('SIGINT');
    expect(await again.exited).toBe(0);
  }
});

test('with TEMPORAL_ADDRESS and DATABASE_URL set, up starts no embedded parts and uses the given ones', async () => {
  const globals = testGlobals();
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-cluster-')), uniqueName('cluster'));
  env.TEMPORAL_ADDRESS = globals.temporalAddress;
  env.DATABASE_URL = globals.databaseUrl;
  env.COMPUTATRUM_TASK_QUEUE = uniqueName('cluster');
  const up = await startUp(env);
  try {
    expect(up.output()).not.toContain('Temporal Web UI');
    expect(up.output()).toContain(`Temporal         ${globals.temporalAddress}`);
    expect(up.output()).toContain('database         (DATABASE_URL)');
    await expect(fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}`)).rejects.toThrow(); // no dev server of its own
    const deposit = await cli(env, 'deposit', '12.5', '--reference', 'cluster-1');
    expect(deposit.stdout).toContain('deposited 12.50 USD');
    expect((await cli(env, 'reconcile')).stdout).toContain('journal and workflow agree');
  } finally {
    up.process.kill('SIGINT');
    expect(await up.exited).toBe(0);
  }
});

test('a split deployment: `up --only worker` and `up --only platform` share Temporal and PostgreSQL', async () => {
  const globals = testGlobals();
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-split-')), uniqueName('split'));
  Object.assign(env, {
    TEMPORAL_ADDRESS: globals.temporalAddress,
    DATABASE_URL: globals.databaseUrl,
    COMPUTATRUM_TASK_QUEUE: uniqueName('split'),
    TEMPORAL_UI_URL: 'https://temporal.example.org',
  });
  // The worker answers its probes on its own address (as its own pod would).
  const workerPort = String(await freePort());
  const worker = await startUp({ ...env, PLATFORM_PORT: workerPort }, '--only', 'worker');
  const platform = await startUp(
    { ...env, COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'computatrum-split-web-')) },
    '--only',
    'platform',
  );
  try {
    expect(worker.output()).toContain('computatrum is up (worker only)');
    expect(worker.output()).not.toContain('platform         http');
    expect(platform.output()).toContain(`platform         http://127.0.0.1:${env.PLATFORM_PORT}`);
    expect((await cli(env, 'deposit', '3.00', '--reference', 'split-1')).stdout).toContain('deposited 3.00 USD');
    // The platform process reads the germline the worker process runs.
    const answer = await fetch(`http://127.0.0.1:${env.PLATFORM_PORT}/api/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ germline { name state } }' }),
    });
    expect(await answer.json()).toEqual({ data: { germline: { name: env.COMPUTATRUM_GERMLINE, state: 'funded' } } });
    const health = await (await fetch(`http://127.0.0.1:${env.PLATFORM_PORT}/healthz`)).json();
    expect(health).toMatchObject({ status: 'ok', temporalUi: 'https://temporal.example.org' });
    for (const port of [env.PLATFORM_PORT, workerPort])
      expect((await fetch(`http://127.0.0.1:${port}/livez`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${env.PLATFORM_PORT}/readyz`)).json()).toMatchObject({
      status: 'ok',
      checks: { temporal: 'ok', database: 'ok' },
    });
    expect(await (await fetch(`http://127.0.0.1:${workerPort}/readyz`)).json()).toEqual({
      status: 'ok',
      part: 'worker',
      checks: { temporal: 'ok', database: 'ok', worker: 'ok' },
    });
  } finally {
    platform.process.kill('SIGINT');
    worker.process.kill('SIGINT');
    expect([await platform.exited, await worker.exited]).toEqual([0, 0]);
  }
});

test('one part alone needs the shared services', async () => {
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-alone-')), 'nobody');
  const result = await cli(env, 'up', '--only', 'platform');
  expect(result.code).toBe(2);
  expect(result.stderr).toContain(
    'up --only platform runs beside the other part, so it needs the shared services: set TEMPORAL_ADDRESS and DATABASE_URL',
  );
});

test('the CLI says what to do when nothing is running', async () => {
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-down-')), 'nobody');
  const result = await cli(env, 'status');
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(`cannot reach Temporal at 127.0.0.1:${env.TEMPORAL_DEV_PORT}`);
  expect(result.stderr).toContain('is `computatrum up` running');
});

test.each([
  [['deposit', 'abc', '--reference', 'x'], 'amount "abc" is not a number: write it like 12.50 or 1,000.00'],
  [['deposit', '-5', '--reference', 'x'], 'amount "-5" is negative'],
  [['deposit', '0', '--reference', 'x'], 'amount "0" is zero'],
  [['deposit', '12.345', '--reference', 'x'], 'has 3 decimals; USD has at most 2'],
  [['deposit', '10.00'], "required option '--reference <reference>' not specified"],
  [['policy', 'set'], 'nothing to set: give --daily-cap and/or --per-reservation-cap'],
  [['policy', 'set', '--daily-cap', 'lots'], 'amount "lots" is not a number'],
  [['autonomy', '--min-runway-days', 'soon'], '--min-runway-days must be a whole number of at least 0, got "soon"'],
  [
    ['autonomy', '--eval-gate', 'loss<2'],
    '"loss<2" is not an eval gate: write it like loss<=2.5 or accuracy>=0.9, or none',
  ],
  [['autonomy', '--policy', 'oracle'], '--policy is rules or http'],
  [['ledger', '--limit', '0'], '--limit must be a positive whole number'],
  [['frobnicate'], "unknown command 'frobnicate'"],
  [
    ['run', 'germline/computatrum:main'],
    '"germline/computatrum:main" is an image, and `run` shows a training run: to serve the image, `computatrum launch germline/computatrum:main --max-cost <amount>`',
  ],
  [['up', '--only', 'database'], '--only is platform or worker'],
  [['train', '--branch', 'x'], "required option '--max-cost <amount>' not specified"],
  [['spawn', 'coder'], "required option '--allowance <amount>' not specified"],
  [['leave', 'coder', '--reason', 'x'], "required option '--owner <handle>' not specified"],
  [['train', '--branch', 'x', '--max-cost', '1.00', '--gpus', '0'], '--gpus must be a whole number of at least 1'],
  [
    ['train', '--branch', 'x', '--max-cost', '1.00', '--max-duration', 'forever'],
    '"forever" is not a duration: write it like 90m, 2h or 1d',
  ],
  [['train', '--branch', 'x', '--max-cost', '1.00', '--runner', 'slurm'], '--runner is local or kubernetes'],
  [
    ['train', '--branch', 'x', '--max-cost', '1.00', '--id', 'Bad_Id'],
    'run id "Bad_Id" must be lowercase letters, digits and dashes',
  ],
])('bad arguments are refused before anything is sent: computatrum %s', async (args, message) => {
  const env = await upEnvironment(mkdtempSync(path.join(tmpdir(), 'computatrum-args-')), 'nobody');
  const result = await cli(env, ...args);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain(message);
});
