// Online reinforcement end to end, on the real engine with real parts only: the tiny trainer trains
// a germline head, the tiny model's server serves it publicly, a person chats through the gateway
// and corrects an answer, the germline's dataset is built from it, a training run learns from it
// (reserved, charged and settled in the budget), the day is tagged, and the new gpc tag's lineage
// names the dataset and the record, and the record names the tag. The served model then gives the
// corrected answer.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildDataset } from '../../activities/datasets';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { tinyServerCommand } from '../../activities/runners/tiny-trainer';
import { INTERACTION_HEADER } from '../../platform/gateway';
import { updateBudget } from '../../temporal/budget-client';
import type { GermlineHandle } from '../../temporal/germline-client';
import { launchInstance } from '../../temporal/instance-client';
import { startTrainingRun } from '../../temporal/training-client';
import { type TickReport, setAutonomyUpdate, tickUpdate } from '../../workflows/autonomy-api';
import { depositUpdate, statusQuery } from '../../workflows/budget-api';
import { dailyGpcWorkflow } from '../../workflows/daily-gpc';
import { datasetBuildsWorkflow } from '../../workflows/maintenance';
import type { learnWorkflow } from '../../workflows/learn';
import { germlineWorkflowId, learnWorkflowId } from '../../workflows/names';
import { trainingRequest } from '../../workflows/training-api';
import { germlineInstanceRequest } from '../helpers/instances';
import { signUpAccount, type TestAccount } from '../helpers/accounts';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

jest.setTimeout(180_000);

const PROMPT = 'The cat ';
const CORRECTION = 'sat on the mat.';
const DEFAULTS = { runner: 'local' as const, ratePerGpuHour: 3600n, maxDurationSeconds: 600, maxPreemptions: 0 };

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let baseUrl: string;
let germline: string;
let handle: GermlineHandle;
let repository: string;
let alice: TestAccount;

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-loop-')),
    defaultCommand: tinyServerCommand(),
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  germline = started.name;
  handle = started.handle;
  repository = `germline/${germline}`;
  await updateBudget(started.handle, depositUpdate, { amount: '100000', currency: 'usd', reference: 'seed' });
  app = await testPlatform(env, germline);
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  alice = await signUpAccount(app, uniqueName('alice'));
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

/** Trains a run to its end and answers its result. */
async function train(id: string, extra: { base?: boolean; datasets?: Array<{ repo: string; reference: string }> }) {
  const request = trainingRequest(DEFAULTS, {
    id,
    payer: germlineWorkflowId(germline),
    currency: 'usd',
    ...(extra.base ? { base: { repo: repository, reference: 'main' } } : {}),
    ...(extra.datasets ? { datasets: extra.datasets } : {}),
    output: { repo: repository, branch: 'main' },
    maxCost: 1000n,
  });
  return (await startTrainingRun(env.client, env.taskQueue, request)).result();
}

/** Serves `main` publicly with the tiny model's server; answers the instance id once it is ready. */
async function serveMain(): Promise<string> {
  const request = germlineInstanceRequest(germline, { id: uniqueName('loop'), maxCost: '10000', leaseSeconds: 60 });
  await launchInstance(env.client, env.taskQueue, request);
  await eventually(
    async () => {
      const row = await env.db.instance.findUnique({ where: { id: request.id } });
      return row?.state === 'ready' && row.endpoint ? true : undefined;
    },
    `instance ${request.id} ready`,
    60_000,
  );
  return request.id;
}

async function ask(instance: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      model: instance,
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: CORRECTION.length,
      temperature: 0,
    }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: Array<{ message: { content: string } }> };
  return { interaction: response.headers.get(INTERACTION_HEADER)!, answer: body.choices[0]!.message.content };
}

test('a correction given on the zookeeper is learned, and the next gpc tag names it in its lineage, every cent in the books', async () => {
  expect((await train(uniqueName('base'), {})).state).toBe('succeeded');
  const before = await serveMain();
  const asked = await ask(before, alice.token);
  expect(asked.answer).not.toBe(CORRECTION);

  const given = await alice.gql<{ giveFeedback: { id: string } }>(
    'mutation ($i: String!, $c: String!) { giveFeedback(interaction: $i, label: "bad", correction: $c) { id } }',
    { i: asked.interaction, c: CORRECTION },
  );
  const record = given.data!.giveFeedback.id;
  // A handful of corrections: the same answer, asked again.
  for (let n = 0; n < 3; n++) {
    const again = await ask(before, alice.token);
    await alice.gql(
      'mutation ($i: String!, $c: String!) { giveFeedback(interaction: $i, label: "bad", correction: $c) { id } }',
      {
        i: again.interaction,
        c: CORRECTION,
      },
    );
  }
  const dataset = await buildDataset(env, {
    repository,
    reference: 'main',
    builtBy: { germline: germlineWorkflowId(germline) },
  });
  expect(dataset.records.records).toContain(record);
  // The dataset-builds schedule's run gathers the same unlearned feedback: the same dataset, not a second one.
  const scheduled = await env.client.workflow.execute(datasetBuildsWorkflow, {
    workflowId: uniqueName('dataset-builds'),
    taskQueue: env.taskQueue,
    args: [{ germline }],
  });
  expect(scheduled).toEqual({ datasets: [`${repository}@${dataset.digest}`] });

  const spentBefore = BigInt((await handle.query(statusQuery)).spent);
  const runId = uniqueName('learn');
  const learned = await train(runId, { base: true, datasets: [{ repo: repository, reference: dataset.digest }] });
  expect(learned).toMatchObject({ state: 'succeeded', datasets: [`${repository}@${dataset.digest}`] });
  const status = await handle.query(statusQuery);
  expect(BigInt(status.spent) - spentBefore).toBe(BigInt(learned.cost!));
  expect(status.openReservations.filter((r) => r.purpose.includes(runId))).toEqual([]);

  // The day is tagged: its lineage walks to the dataset and the record, and back.
  const day = await env.client.workflow.execute(dailyGpcWorkflow, {
    workflowId: uniqueName('daily'),
    taskQueue: env.taskQueue,
    args: [{ germline, day: '2031-01-02' }],
  });
  expect(day).toMatchObject({ status: 'published', digest: learned.outputDigest });
  const lineage = await alice.gql<{
    dailyCheckpoints: Array<{
      tag: string;
      trainingRun: {
        id: string;
        datasets: Array<{ digest: string; feedback: Array<{ id: string; interactionId: string }> }>;
      };
    }>;
  }>('{ dailyCheckpoints { tag trainingRun { id datasets { digest feedback { id interactionId } } } } }');
  const tagged = lineage.data!.dailyCheckpoints.find((c) => c.tag === 'gpc-2031-01-02')!;
  expect(tagged.trainingRun.id).toBe(runId);
  expect(tagged.trainingRun.datasets.map((d) => d.digest)).toEqual([dataset.digest]);
  expect(tagged.trainingRun.datasets[0]!.feedback).toContainEqual({ id: record, interactionId: asked.interaction });
  const manifest = JSON.parse((await env.store.getManifest(repository, 'gpc-2031-01-02'))!.bytes.toString('utf8')) as {
    annotations: Record<string, string>;
  };
  expect(JSON.parse(manifest.annotations['io.computatrum.datasets']!)).toEqual([`${repository}@${dataset.digest}`]);
  const back = await alice.gql<{
    interactions: Array<{ id: string; feedback: Array<{ learnedBy: Array<{ tag: string }> }> }>;
  }>(`{ interactions(instanceId: "${before}") { id feedback { learnedBy { tag } } } }`);
  // alice does not own the germline's instance: she reads her feedback through the record itself.
  expect(back.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  const operator = await signUpAccount(app, uniqueName('op'), { db: env.db });
  const seen = await operator.gql<{
    interactions: Array<{ id: string; feedback: Array<{ learnedBy: Array<{ tag: string }> }> }>;
  }>(`{ interactions(instanceId: "${before}") { id feedback { learnedBy { tag } } } }`);
  const judged = seen.data!.interactions.find((i) => i.id === asked.interaction)!;
  expect(judged.feedback[0]!.learnedBy.map((c) => c.tag)).toContain('gpc-2031-01-02');

  // The model serving the new head gives the corrected answer.
  const after = await serveMain();
  expect((await ask(after)).answer).toBe(CORRECTION);
});

test('the germline closes the loop by itself: enough new feedback, a tick proposes to learn, the run is paid and promoted past the eval gate, every step a decision', async () => {
  await updateBudget(handle, setAutonomyUpdate, {
    tickIntervalSeconds: null,
    maxChildren: 0,
    rules: { feedbackThreshold: 2, runCost: '1000' },
    evalGate: { metric: 'loss', atMost: 100 },
  });
  const instance = await serveMain();
  const tick = () => handle.executeUpdate(tickUpdate, { args: [] });
  const learnOf = (report: TickReport) => report.decisions.find((d) => d.proposal?.kind === 'learn');

  // One new record is below the threshold: nothing to learn yet.
  const first = await ask(instance);
  await alice.gql('mutation ($i: String!) { giveFeedback(interaction: $i, label: "good") { id } }', {
    i: (await ask(instance, alice.token)).interaction,
  });
  expect(first.interaction).toBeTruthy();
  expect(learnOf(await tick())).toBeUndefined();

  await alice.gql(
    'mutation ($i: String!, $c: String!) { giveFeedback(interaction: $i, label: "bad", correction: $c) { id } }',
    {
      i: (await ask(instance, alice.token)).interaction,
      c: CORRECTION,
    },
  );
  // A dataset an operator builds by hand teaches nothing by itself: the records still wait to be learned.
  await buildDataset(env, { repository, reference: 'main', builtBy: { germline: germlineWorkflowId(germline) } });
  const report = await tick();
  const decided = learnOf(report)!;
  expect(decided).toMatchObject({ outcome: 'executed', proposal: { kind: 'learn', records: 2, maxCost: '1000' } });
  const runId = /started learn\/(\S+):/.exec(decided.reason)![1]!;

  // The run learns and is promoted; its outcome is a decision beside the one that started it.
  const learned = await env.client.workflow.getHandle<typeof learnWorkflow>(learnWorkflowId(runId)).result();
  expect(learned).toMatchObject({ outcome: 'promoted', run: { state: 'succeeded' } });
  expect((await env.store.getManifest(repository, 'main'))!.digest).toBe(learned.run!.outputDigest);
  const outcome = await env.db.decision.findUnique({ where: { id: `${decided.id}/outcome` } });
  expect(outcome).toMatchObject({ outcome: 'executed', reason: expect.stringContaining('is the head now') });
  const run = await env.db.trainingRun.findUnique({ where: { id: runId } });
  expect(run).toMatchObject({ payer: germlineWorkflowId(germline), state: 'succeeded' });
  expect(run!.cost).not.toBeNull();

  // What it learned is held by a dataset now: the next tick has nothing new to learn.
  expect(learnOf(await tick())).toBeUndefined();

  // A gate the run cannot pass keeps the head where it is, and says why.
  await updateBudget(handle, setAutonomyUpdate, { evalGate: { metric: 'loss', atMost: 0.0001 } });
  for (let n = 0; n < 2; n++) {
    await alice.gql('mutation ($i: String!) { giveFeedback(interaction: $i, label: "good") { id } }', {
      i: (await ask(instance, alice.token)).interaction,
    });
  }
  const head = (await env.store.getManifest(repository, 'main'))!.digest;
  const gated = learnOf(await tick())!;
  const gatedRun = /started learn\/(\S+):/.exec(gated.reason)![1]!;
  const refused = await env.client.workflow.getHandle<typeof learnWorkflow>(learnWorkflowId(gatedRun)).result();
  expect(refused).toMatchObject({ outcome: 'not-promoted', reason: expect.stringContaining('fails the eval gate') });
  expect((await env.store.getManifest(repository, 'main'))!.digest).toBe(head);
  expect(await env.db.decision.findUnique({ where: { id: `${gated.id}/outcome` } })).toMatchObject({
    outcome: 'refused',
  });
});
