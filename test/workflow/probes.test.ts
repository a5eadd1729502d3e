// Behaviour probes on the real engine: the probe workflow, a worker with probe settings, the local
// instance runner with a real process meeting the instance contract (test/helpers/probe-instance.js,
// whose behaviour is chosen by the image it serves), the germline's budget, the OCI layout store,
// PostgreSQL and the platform (GraphQL, the referrers API, the pages). A deliberately malicious image
// is flagged and blocked; a benign one passes; an image whose instance fails is retried and ends as an
// error, never a pass; a detector image can be the judge.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { NativeConnection } from '@temporalio/worker';
import { Command } from 'commander';
import { addProbeCommands } from '../../cli/commands/probes';
import { loadConfig } from '../../runtime/config';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { PROBE_ACCOUNT } from '../../activities/probes/recording';
import type { AccountView, Caller } from '../../platform/accounts';
import { launchAccountInstance } from '../../platform/instances';
import { publishBreed } from '../../platform/marketplace';
import { probeNewVersions, reviewFlag } from '../../platform/probes';
import { createBreedCheckout, type StripeSettings } from '../../platform/stripe';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { ensureUpkeepSchedules, UPKEEP } from '../../temporal/schedules';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { probeHandle, startProbe } from '../../temporal/probe-client';
import { depositUpdate, statusQuery } from '../../workflows/budget-api';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { probeSweepWorkflow } from '../../workflows/maintenance';
import { instanceStatusQuery } from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { createWorker } from '../../worker/worker';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

jest.setTimeout(120_000);

const PROBE_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'probe-instance.js')];
/** 36.00 per GPU-hour (a cent a second) within a probe budget of 5.00. */
const PROBES = {
  currency: 'usd',
  ratePerGpuHour: 3600n,
  maxCost: 500n,
  runner: 'local' as const,
  leaseSeconds: 30,
  checkSeconds: 1,
};

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let stopWorker: () => Promise<void>;
let app: FastifyInstance;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
let operator: TestAccount;

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-probes-')),
    defaultCommand: PROBE_INSTANCE,
  });
  env = await testEnvironment();
  // A worker like `up` makes one with probes on (the test environment's has them off).
  const globals = testGlobals();
  const connection = await NativeConnection.connect({ address: globals.temporalAddress });
  const worker = await createWorker({
    connection,
    namespace: 'default',
    taskQueue: env.taskQueue,
    activities: {
      db: env.db,
      store: env.store,
      dataDir: env.dataDir,
      client: env.client,
      runners: {},
      instanceRunners: { local: runner },
      probes: PROBES,
    },
    workflowBundlePath: globals.workflowBundlePath,
  });
  const running = worker.run();
  stopWorker = async () => {
    worker.shutdown();
    await running;
    await connection.close();
  };
  germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
  app = await testPlatform(env, germline.name, {
    training: {
      runner: 'local',
      ratePerGpuHour: 3600n,
      maxDurationSeconds: 3600,
      maxPreemptions: 0,
      taskQueue: env.taskQueue,
      maxGpus: 1,
    },
  });
  operator = await signUpAccount(app, uniqueName('op'), { db: env.db });
});

afterAll(async () => {
  for (const id of await runner.list()) await runner.stop(id);
  await app?.close();
  await stopWorker?.();
  await env?.close();
});

/** An image whose instance behaves as `behaviour` says (test/helpers/probe-instance.js). */
async function imageIn(repo: string, behaviour: string, tag = 'main') {
  const dir = mkdtempSync(path.join(tmpdir(), 'probe-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${repo} ${uniqueName('w')}`));
  writeFileSync(path.join(dir, 'behaviour.json'), JSON.stringify({ behaviour }));
  return publishCheckpoint(env.store, repo, dir, { tag });
}

const accountOf = (account: TestAccount): AccountView => ({
  id: account.id,
  handle: account.handle,
  email: `${account.handle}@example.org`,
  role: 'trainer',
});

const starter = () => ({
  client: env.client,
  db: env.db,
  store: env.store,
  germline: germline.name,
  taskQueue: env.taskQueue,
});

async function referrers(repo: string, digest: string) {
  const response = await app.inject({ method: 'GET', url: `/v2/${repo}/referrers/${digest}` });
  expect(response.statusCode).toBe(200);
  return response.json<{ manifests: { digest: string; artifactType: string; annotations: Record<string, string> }[] }>()
    .manifests;
}

async function recordingManifest(repo: string, digest: string) {
  const response = await app.inject({
    method: 'GET',
    url: `/v2/${repo}/manifests/${digest}`,
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(response.statusCode).toBe(200);
  return response.json<{
    subject: { digest: string };
    annotations: Record<string, string>;
    layers: { digest: string }[];
  }>();
}

test('a malicious breed is probed when published, flagged, and blocked until an operator clears it', async () => {
  const seller = await signUpAccount(app, uniqueName('seller'));
  const repo = `trainers/${seller.handle}/evil`;
  const image = await imageIn(repo, 'malicious');
  await publishBreed(
    env.db,
    env.store,
    accountOf(seller),
    { repository: repo, title: 'Totally helpful', price: '5.00', currency: 'usd' },
    (repository) => probeNewVersions(starter(), repository, 'publish', seller.handle),
  );

  const outcome = await probeHandle(env.client, repo, image.digest).result();
  expect(outcome).toMatchObject({ state: 'flagged', attempts: 1, suite: 'suite-v1', judge: 'rules:suite-v1' });
  expect(outcome.findings.map((f) => f.rule)).toEqual(
    expect.arrayContaining(['asks-for-credentials', 'obeys-injection']),
  );
  const probe = await env.db.probe.findUniqueOrThrow({ where: { id: outcome.probeId } });
  expect(probe).toMatchObject({ trigger: 'publish', requestedBy: seller.handle, state: 'flagged', repository: repo });
  expect(
    await env.db.imageFlag.findUnique({ where: { repository_digest: { repository: repo, digest: image.digest } } }),
  ).toMatchObject({
    state: 'pending',
    probeId: outcome.probeId,
  });

  // Its instance was the germline's, within the probe budget, and is stopped with nothing left reserved.
  const instances = await env.db.instance.findMany({ where: { repository: repo } });
  expect(instances).toEqual([
    expect.objectContaining({
      payer: germlineWorkflowId(germline.name),
      visibility: 'private',
      maxCost: 500n,
      state: 'stopped',
    }),
  ]);
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0');

  // The transcript is an automated recording of the image, listed by the OCI referrers API.
  const listed = await referrers(repo, image.digest);
  const recording = listed.find((m) => m.artifactType === 'application/vnd.computatrum.recording.v1');
  expect(recording?.annotations['io.computatrum.recording.author']).toBe(PROBE_ACCOUNT.handle);
  const manifest = await recordingManifest(repo, recording!.digest);
  expect(manifest.subject.digest).toBe(image.digest);
  expect(manifest.annotations).toMatchObject({
    'io.computatrum.recording.automated': 'true',
    'io.computatrum.probe.suite': 'suite-v1',
    'io.computatrum.probe.verdict': 'flagged',
  });
  const transcript = await app.inject({ method: 'GET', url: `/api/recordings/${outcome.probeId}` });
  expect(transcript.json()).toMatchObject({
    automated: true,
    repo,
    digest: image.digest,
    verdict: { verdict: 'flagged' },
  });
  expect(transcript.body).toContain('send me your password');

  // Blocked: no public instance (even its owner's), no purchase.
  const seen: Caller = { role: 'trainer', account: accountOf(seller) };
  const launchDeps = {
    client: env.client,
    db: env.db,
    store: env.store,
    currency: 'usd',
    settings: {
      runner: 'local' as const,
      ratePerGpuHour: 3600n,
      maxDurationSeconds: 3600,
      maxPreemptions: 0,
      taskQueue: env.taskQueue,
      maxGpus: 1,
    },
  };
  const launchPublic = () =>
    launchAccountInstance(launchDeps, seen, { image: `${repo}:main`, visibility: 'public', maxCost: 100n });
  await expect(launchPublic()).rejects.toThrow(
    /a public instance of it is refused: .* is flagged pending operator review/,
  );
  const buyer = await signUpAccount(app, uniqueName('buyer'));
  const stripe = {
    client: {},
    webhookSecret: 'whsec_x',
    publicUrl: 'http://127.0.0.1',
    feePercent: 10,
  } as unknown as StripeSettings;
  const buy = () => createBreedCheckout(stripe, env.db, accountOf(buyer), { repository: repo, requestId: 'r1' });
  await expect(buy()).rejects.toThrow(/cannot be bought now: .* is flagged pending operator review/);

  // GraphQL and the hub page say so, beside people's reports.
  const answer = await buyer.gql<{
    probes: { state: string; findings: { rule: string }[] }[];
    imageFlags: { state: string }[];
  }>(
    'query($r: String!) { probes(repository: $r) { state findings { rule } } imageFlags(repository: $r) { state blocking } }',
    { r: repo },
  );
  expect(answer.errors).toBeUndefined();
  expect(answer.data?.probes[0]?.state).toBe('flagged');
  expect(answer.data?.imageFlags[0]).toMatchObject({ state: 'pending', blocking: true });
  const page = await app.inject({ method: 'GET', url: `/hub/${repo}` });
  expect(page.statusCode).toBe(200);
  expect(page.body).toContain('flagged pending operator review');
  expect(page.body).toContain('Automated probe (suite-v1): flagged');
  const console = await app.inject({ method: 'GET', url: '/operator', headers: operator.cookie });
  expect(console.body).toContain(repo);

  // An operator clears it: the flag blocks no more (what refuses now is the missing credit, and payouts).
  await reviewFlag(
    env.db,
    { ...accountOf(operator), role: 'operator' },
    { repository: repo, digest: image.digest, decision: 'clear', note: 'a test model' },
  );
  await expect(launchPublic()).rejects.toThrow(/credit/);
  await expect(buy()).rejects.toThrow(/has not set up payouts/);
});

test('a benign gpc tag is probed by the daily workflow and passes; its recording is a referrer too', async () => {
  const repo = `germline/${germline.name}`;
  const image = await imageIn(repo, 'benign');
  const day = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: uniqueName('day'),
    taskQueue: env.taskQueue,
    args: [{ germline: germline.name, day: '2026-12-01' }],
  });
  expect(day.status).toBe('published');
  const outcome = await eventually(
    async () =>
      probeHandle(env.client, repo, image.digest)
        .result()
        .catch(() => undefined),
    'the daily probe',
    60_000,
  );
  expect(outcome).toMatchObject({ state: 'passed', findings: [], attempts: 1 });
  expect(await env.db.probe.findUniqueOrThrow({ where: { id: outcome.probeId } })).toMatchObject({ trigger: 'daily' });
  expect(await env.db.imageFlag.count({ where: { repository: repo } })).toBe(0);
  const listed = await referrers(repo, image.digest);
  expect(listed.map((m) => m.digest)).toHaveLength(1);
  expect((await recordingManifest(repo, listed[0]!.digest)).annotations['io.computatrum.probe.verdict']).toBe('passed');

  // Probed once per digest: the next trigger of the same digest starts nothing.
  await expect(probeNewVersions(starter(), repo, 'push')).resolves.toEqual([]);
});

test('a probe whose instance fails is retried with a new instance and ends as an error, never a pass', async () => {
  const repo = `trainers/${uniqueName('t')}/broken`;
  const image = await imageIn(repo, 'fail');
  await startProbe(env.client, env.taskQueue, {
    version: 1,
    repo,
    digest: image.digest,
    germline: germline.name,
    trigger: 'manual',
    attempts: 2,
    retryDelaySeconds: 1,
  });
  const outcome = await probeHandle(env.client, repo, image.digest).result();
  expect(outcome.state).toBe('error');
  expect(outcome.attempts).toBe(2);
  expect(outcome.reason).toMatch(/no transcript after 2 attempt\(s\).*failing on purpose/s);
  expect(outcome.recordingId).toBeUndefined();
  const instances = await env.db.instance.findMany({ where: { repository: repo }, orderBy: { createdAt: 'asc' } });
  expect(instances.map((i) => i.state)).toEqual(['failed', 'failed']);
  expect(await env.db.imageFlag.count({ where: { repository: repo } })).toBe(0);
  expect(await referrers(repo, image.digest)).toEqual([]);
  expect((await germline.handle.query(statusQuery)).reserved).toBe('0');
});

test('a detector image can be the judge, through an instance of it', async () => {
  const detectorRepo = `trainers/${uniqueName('d')}/detector`;
  await imageIn(detectorRepo, 'detector');
  const detectorId = uniqueName('detector');
  await launchInstance(env.client, env.taskQueue, {
    version: 1,
    id: detectorId,
    image: { repo: detectorRepo, reference: 'main' },
    payer: germlineWorkflowId(germline.name),
    currency: 'usd',
    visibility: 'private',
    runner: 'local',
    gpus: 1,
    ratePerGpuHour: '3600',
    idleTimeoutSeconds: 0,
    maxDurationSeconds: 600,
    maxCost: '1000',
    leaseSeconds: 30,
    checkSeconds: 1,
  });
  await eventually(
    async () =>
      (await instanceHandle(env.client, detectorId).query(instanceStatusQuery)).state === 'ready' ? true : undefined,
    'the detector to be ready',
    30_000,
  );
  const repo = `trainers/${uniqueName('t')}/sly`;
  const image = await imageIn(repo, 'malicious');
  const detector = `${detectorRepo}:main`;
  await startProbe(env.client, env.taskQueue, {
    version: 1,
    repo,
    digest: image.digest,
    germline: germline.name,
    trigger: 'manual',
    judge: { kind: 'detector', image: detector },
  });
  const outcome = await probeHandle(env.client, repo, image.digest).result();
  expect(outcome).toMatchObject({
    state: 'flagged',
    judge: `detector:${detector}`,
    reason: 'an answer asks for a password',
  });
  await instanceHandle(env.client, detectorId).executeUpdate('stop', { args: [{ by: 'test' }] });
});

test("the CLI lists an image's probes and flags, and starts one by hand as an operator (a trainer is refused)", async () => {
  const repo = `trainers/${uniqueName('t')}/cli`;
  const image = await imageIn(repo, 'malicious');
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const trainer = await signUpAccount(app, uniqueName('tr'));
  const run = async (token: TestAccount, ...args: string[]): Promise<string> => {
    const written: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const program = new Command('computatrum').exitOverride();
      addProbeCommands(program, () =>
        loadConfig({ COMPUTATRUM_TOKEN: token.token.authorization!.slice('Bearer '.length) }),
      );
      await program.parseAsync(['node', 'computatrum', ...args, '--from', url]);
    } finally {
      spy.mockRestore();
    }
    return written.join('');
  };
  await expect(run(trainer, 'probe', `${repo}:main`)).rejects.toThrow(
    /refused by the platform \(FORBIDDEN\): this needs the operator role/,
  );
  expect(await run(operator, 'probe', `${repo}:main`)).toContain(`workflow probe/${repo}@${image.digest}`);
  await probeHandle(env.client, repo, image.digest).result();
  const listed = await run(trainer, 'probes', repo);
  expect(listed).toContain(`FLAGGED ${image.digest.slice(0, 19)}… (pending operator review)`);
  expect(listed).toMatch(/flagged\s+suite-v1\s+rules:suite-v1\s+manual/);
  expect(await run(operator, 'flag', `${repo}@${image.digest}`, '--confirm', '--note', 'it phishes')).toContain(
    'confirmed',
  );
  // A second probe by hand while none runs is a new run; the confirmed flag stands.
  await expect(run(operator, 'probe', 'not a reference')).rejects.toThrow(/needs a tag or digest/);
});

test('bad input is refused with what to do, and operators alone start probes and decide flags', async () => {
  const trainer = await signUpAccount(app, uniqueName('tr'));
  const codes = async (account: TestAccount, query: string) => {
    const answer = await account.gql(query);
    return { code: answer.errors?.[0]?.extensions?.code, message: answer.errors?.[0]?.message };
  };
  expect(await codes(trainer, 'mutation { startProbe(image: "germline/x:main") { workflowId } }')).toMatchObject({
    code: 'FORBIDDEN',
  });
  expect(await codes(operator, 'mutation { startProbe(image: "no-tag") { workflowId } }')).toMatchObject({
    code: 'BAD_USER_INPUT',
    message: expect.stringContaining('needs a tag or digest'),
  });
  expect(
    await codes(operator, `mutation { startProbe(image: "germline/${germline.name}:no-such-tag") { workflowId } }`),
  ).toMatchObject({ code: 'NOT_FOUND' });
  expect(
    await codes(
      operator,
      `mutation { reviewImageFlag(repository: "trainers/nobody/x", digest: "sha256:${'a'.repeat(64)}", decision: CLEAR) { state } }`,
    ),
  ).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('is not flagged') });
  expect(await codes(trainer, '{ imageFlags(state: "weird") { state } }')).toMatchObject({
    code: 'BAD_USER_INPUT',
    message: 'state is one of pending, confirmed, cleared, not "weird"',
  });
});

test('on /operator an operator sees the flags awaiting review and clears one with the form', async () => {
  const repo = `trainers/${uniqueName('t')}/paged`;
  const image = await imageIn(repo, 'benign');
  await env.db.imageFlag.create({
    data: { repository: repo, digest: image.digest, probeId: uniqueName('p'), state: 'pending', reason: 'a test flag' },
  });
  const page = await app.inject({ method: 'GET', url: '/operator', headers: operator.cookie });
  expect(page.body).toContain('a test flag');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const cookies = [operator.cookie.cookie, ...page.cookies.map((c) => `${c.name}=${c.value}`)].join('; ');
  const post = (url: string, fields: Record<string, string>) =>
    app.inject({
      method: 'POST',
      url,
      headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...fields, _csrf: csrf }).toString(),
    });
  const bad = await post('/operator/flags', { repository: repo, digest: image.digest, decision: 'maybe' });
  expect(bad.statusCode).toBe(400);
  expect(bad.body).toContain('choose Clear or Confirm malicious');
  const cleared = await post('/operator/flags', { repository: repo, digest: image.digest, decision: 'clear' });
  expect(cleared.statusCode).toBe(303);
  expect(
    await env.db.imageFlag.findUnique({ where: { repository_digest: { repository: repo, digest: image.digest } } }),
  ).toMatchObject({ state: 'cleared', reviewedBy: operator.handle });
  const unknown = await post('/operator/probes', { image: 'trainers/nobody/none:main' });
  expect(unknown.statusCode).toBe(404);
});

test('the probe-sweep schedule probes a breed version pushed straight to the store, once', async () => {
  const seller = await signUpAccount(app, uniqueName('seller'));
  const repo = `trainers/${seller.handle}/sweep`;
  const first = await imageIn(repo, 'benign');
  await publishBreed(env.db, env.store, accountOf(seller), {
    repository: repo,
    title: 'Swept',
    price: '1.00',
    currency: 'usd',
  });
  // The version published without a probe, and one pushed since: neither probed yet.
  const pushed = await imageIn(repo, 'benign', 'v2');
  const created = await ensureUpkeepSchedules(env.client, {
    germline: germline.name,
    taskQueue: env.taskQueue,
    crons: { probeSweep: '0 4 * * *', datasetBuilds: '0 5 * * *' },
  });
  expect(created).toEqual({ probeSweep: 'created', datasetBuilds: 'created' });
  const sweep = env.client.schedule.getHandle(UPKEEP.probeSweep.id(germline.name));
  try {
    await sweep.trigger();
    for (const image of [first, pushed]) {
      const outcome = await eventually(
        async () =>
          probeHandle(env.client, repo, image.digest)
            .result()
            .catch(() => undefined),
        `the swept probe of ${image.digest}`,
        90_000,
      );
      expect(outcome).toMatchObject({ state: 'passed', attempts: 1 });
      expect(await env.db.probe.findUniqueOrThrow({ where: { id: outcome.probeId } })).toMatchObject({
        trigger: 'push',
      });
    }
    // The sweep's own run ended, and a second one finds nothing left to probe.
    const [action] = (await sweep.describe()).info.recentActions;
    const sweepRun = env.client.workflow.getHandle<typeof probeSweepWorkflow>(action!.action.workflow.workflowId);
    const swept = await sweepRun.result();
    // The Temporal UI's list says what it is.
    expect(await (await sweepRun.describe()).staticSummary()).toBe(
      `the probe sweep (breed versions and the newest gpc tag never probed) of germline ${germline.name}`,
    );
    expect(swept.started).toHaveLength(2);
    await expect(
      env.client.workflow.execute(probeSweepWorkflow, {
        workflowId: uniqueName('sweep'),
        taskQueue: env.taskQueue,
        args: [{ germline: germline.name }],
      }),
    ).resolves.toEqual({ started: [] });
  } finally {
    await sweep.delete();
    await env.client.schedule.getHandle(UPKEEP.datasetBuilds.id(germline.name)).delete();
  }
});
