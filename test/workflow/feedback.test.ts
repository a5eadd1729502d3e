// Feedback on instances' answers, and the datasets built from it, on the real engine: a platform on a
// real port, a worker, echo instances (test/helpers/echo-instance.js) launched through the instance
// workflow, real exchanges through the gateway. Who may give feedback on which answer, one record per
// person per answer, refusals, hiding; then datasets: deterministic, exactly the records given, what
// a private instance was told kept to its owner, listed by the referrers API, copied by skopeo.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildDataset, DatasetError } from '../../activities/datasets';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { INTERACTION_HEADER } from '../../platform/gateway';
import { publishCheckpoint } from '../../store/checkpoint';
import { DATASET_ARTIFACT, DATASET_FILES, type DatasetRecords } from '../../store/dataset';
import { materializeCheckpoint } from '../../store/materialize';
import { updateBudget } from '../../temporal/budget-client';
import { launchInstance } from '../../temporal/instance-client';
import { depositUpdate } from '../../workflows/budget-api';
import type { InstanceRequest } from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { germlineInstanceRequest } from '../helpers/instances';
import { graphqlAs, signUpAccount, type TestAccount } from '../helpers/accounts';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(90_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let baseUrl: string;
let repository: string;
let alice: TestAccount;
let bob: TestAccount;
let operator: TestAccount;
const ids = { pub: '', priv: '' };
const tokenOf = (account: TestAccount) => account.token.authorization!.slice('Bearer '.length);

const request = (overrides: Partial<InstanceRequest> = {}): InstanceRequest =>
  germlineInstanceRequest(repository.slice('germline/'.length), { id: uniqueName('fb'), ...overrides });

/** One exchange through the gateway; answers the interaction id the gateway returned. */
async function chat(instance: string, text: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: instance, messages: [{ role: 'user', content: text }] }),
  });
  expect(response.status).toBe(200);
  return response.headers.get(INTERACTION_HEADER)!;
}

const GIVE = `mutation ($interaction: String!, $label: String!, $correction: String, $comment: String) {
  giveFeedback(interaction: $interaction, label: $label, correction: $correction, comment: $comment) {
    id interactionId author label correction comment hidden
  }
}`;

type Given = { giveFeedback: { id: string; label: string; correction: string | null; hidden: boolean } };

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-feedback-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const started = await env.startGermline();
  repository = `germline/${started.name}`;
  await updateBudget(started.handle, depositUpdate, { amount: '1000000', currency: 'usd', reference: 'seed' });
  const dir = mkdtempSync(path.join(tmpdir(), 'feedback-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${repository}`));
  await publishCheckpoint(env.store, repository, dir, { tag: 'main' });

  app = await testPlatform(env, started.name);
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  alice = await signUpAccount(app, uniqueName('alice'));
  bob = await signUpAccount(app, uniqueName('bob'));
  operator = await signUpAccount(app, uniqueName('op'), { db: env.db });

  const pub = request({});
  const priv = request({ visibility: 'private', owner: alice.handle });
  ids.pub = pub.id;
  ids.priv = priv.id;
  await launchInstance(env.client, env.taskQueue, pub);
  await launchInstance(env.client, env.taskQueue, priv);
  await eventually(async () => {
    const rows = await env.db.instance.findMany({ where: { id: { in: [ids.pub, ids.priv] } } });
    return rows.length === 2 && rows.every((row) => row.state === 'ready' && row.endpoint) ? true : undefined;
  }, 'the instances ready');
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test('feedback: one record per person per answer, on the answers one may read; refusals say what was wrong', async () => {
  const alicePublic = await chat(ids.pub, 'the capital of France', alice.token);
  const bobPublic = await chat(ids.pub, 'two and two', bob.token);

  const first = await alice.gql<Given>(GIVE, { interaction: alicePublic, label: 'good' });
  expect(first.data?.giveFeedback).toMatchObject({ label: 'good', correction: null, hidden: false });
  // A second one replaces the first: same record, new content.
  const second = await alice.gql<Given>(GIVE, {
    interaction: alicePublic,
    label: 'bad',
    correction: '  Paris.  ',
    comment: 'it only echoed',
  });
  expect(second.data?.giveFeedback).toMatchObject({
    id: first.data!.giveFeedback.id,
    label: 'bad',
    correction: 'Paris.',
  });
  expect(await env.db.feedback.count({ where: { interactionId: alicePublic } })).toBe(1);

  // Someone else's exchange is not theirs to judge (and not even found); nor is a made-up one.
  const foreign = await bob.gql(GIVE, { interaction: alicePublic, label: 'bad' });
  expect(foreign.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
  expect(foreign.errors?.[0]?.message).toContain('x-computatrum-interaction');
  expect((await bob.gql(GIVE, { interaction: 'no-such-exchange', label: 'bad' })).errors?.[0]).toMatchObject({
    extensions: { code: 'NOT_FOUND' },
  });
  const meh = await bob.gql(GIVE, { interaction: bobPublic, label: 'meh' });
  expect(meh.errors?.[0]).toMatchObject({
    message: 'label "meh" is not one of: good, bad',
    extensions: { code: 'BAD_USER_INPUT' },
  });
  const huge = await bob.gql(GIVE, { interaction: bobPublic, label: 'bad', correction: 'x'.repeat(100_000) });
  expect(huge.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(huge.errors?.[0]?.message).toContain('the correction is 100000 characters; at most 20000');
  const anonymous = await graphqlAs(app, {}, GIVE, { interaction: bobPublic, label: 'bad' });
  expect(anonymous.errors?.[0]).toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
  expect(await env.db.feedback.count({ where: { interactionId: bobPublic } })).toBe(0);

  // An operator hides a record: its author and the operators see it hidden; it is in no later dataset.
  const bobs = await bob.gql<Given>(GIVE, { interaction: bobPublic, label: 'bad', comment: 'spam spam spam' });
  const hidden = await operator.gql<{ hideFeedback: { hidden: boolean } }>(
    `mutation ($id: String!) { hideFeedback(id: $id, reason: "spam") { hidden } }`,
    { id: bobs.data!.giveFeedback.id },
  );
  expect(hidden.data?.hideFeedback.hidden).toBe(true);
  expect(
    (await alice.gql(`mutation { hideFeedback(id: "${bobs.data!.giveFeedback.id}", reason: "x") { id } }`)).errors?.[0],
  ).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
  const seen = await operator.gql<{
    interactions: Array<{ id: string; feedback: Array<{ label: string; hidden: boolean }> }>;
  }>(`{ interactions(instanceId: "${ids.pub}") { id feedback { label hidden } } }`);
  const feedbackOf = (id: string) => seen.data!.interactions.find((i) => i.id === id)!.feedback;
  expect(feedbackOf(alicePublic)).toEqual([{ label: 'bad', hidden: false }]);
  expect(feedbackOf(bobPublic)).toEqual([{ label: 'bad', hidden: true }]);
});

test('a dataset holds exactly the visible feedback, the same records give the same digest, and a private instance’s exchanges stay with its owner', async () => {
  const asked = await chat(ids.pub, 'finish this: the cat sat on the', alice.token);
  await alice.gql(GIVE, { interaction: asked, label: 'bad', correction: 'mat.' });
  const secret = await chat(ids.priv, 'my secret plan', alice.token);
  await alice.gql(GIVE, { interaction: secret, label: 'good' });

  const since = new Date(0);
  const germline = { germline: germlineWorkflowId(repository.slice('germline/'.length)) };
  const built = await buildDataset(env, { repository, reference: 'main', builtBy: germline, since });
  const again = await buildDataset(env, { repository, reference: 'main', builtBy: germline, since });
  expect(again.digest).toBe(built.digest);
  expect(again.created).toBe(false);

  // Public exchanges only, no hidden record: alice's two on the public instance.
  const records = await env.db.feedback.findMany({
    where: { authorHandle: alice.handle },
    select: { id: true, interactionId: true },
  });
  const publicRecords = records
    .filter((r) => r.interactionId !== secret)
    .map((r) => r.id)
    .sort();
  expect(built.records.records).toEqual(publicRecords);
  const folder = mkdtempSync(path.join(tmpdir(), 'dataset-'));
  await materializeCheckpoint(env.store, repository, built.digest, folder);
  const listed = JSON.parse(readFileSync(path.join(folder, DATASET_FILES.records), 'utf8')) as DatasetRecords;
  expect(listed.records).toEqual(publicRecords);
  const lines = (file: string) =>
    readFileSync(path.join(folder, file), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(lines(DATASET_FILES.preferences)).toEqual(
    expect.arrayContaining([
      expect.objectContaining({
        prompt: [{ role: 'user', content: 'finish this: the cat sat on the' }],
        chosen: [{ role: 'assistant', content: 'mat.' }],
      }),
    ]),
  );
  expect(JSON.stringify(lines(DATASET_FILES.transcripts))).toContain('mat.');
  for (const file of Object.values(DATASET_FILES))
    expect(readFileSync(path.join(folder, file), 'utf8')).not.toContain('secret');
  expect(lines(DATASET_FILES.labelled)).toHaveLength(publicRecords.length);

  // Nothing new since the newest dataset: nothing to build, said so.
  await expect(buildDataset(env, { repository, reference: 'main', builtBy: germline })).rejects.toThrow(DatasetError);
  await expect(buildDataset(env, { repository, reference: 'main', builtBy: germline })).rejects.toThrow(
    /no new feedback on germline\/\S+@sha256:\w+ since/,
  );

  // Through GraphQL the records show what the files show; who gave them and their comments only to operators.
  const DATASET_FEEDBACK = `{ datasets(repository: "${repository}") { digest feedback { author comment correction } } }`;
  type Listed = {
    datasets: Array<{ digest: string; feedback: Array<{ author: string | null; comment: string | null }> }>;
  };
  const shown = (answer: { data?: Listed | null }) =>
    answer.data!.datasets.find((d) => d.digest === built.digest)!.feedback;
  expect(shown(await bob.gql<Listed>(DATASET_FEEDBACK)).every((f) => f.author === null && f.comment === null)).toBe(
    true,
  );
  expect(shown(await operator.gql<Listed>(DATASET_FEEDBACK))).toContainEqual(
    expect.objectContaining({ author: alice.handle, comment: 'it only echoed' }),
  );

  // Its owner's build takes the private exchange too.
  const owners = await buildDataset(env, { repository, reference: 'main', builtBy: { account: alice.handle }, since });
  expect(owners.records.records).toHaveLength(publicRecords.length + 1);

  // The referrers API lists the datasets beside the image; skopeo copies one.
  const referrers = (await (
    await fetch(
      `${baseUrl}/v2/${repository}/referrers/${built.subjectDigest}?artifactType=${encodeURIComponent(DATASET_ARTIFACT)}`,
    )
  ).json()) as { manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }> };
  expect(referrers.manifests.map((m) => m.digest).sort()).toEqual([built.digest, owners.digest].sort());
  expect(referrers.manifests.find((m) => m.digest === built.digest)!.annotations).toMatchObject({
    'io.computatrum.dataset.records': String(publicRecords.length),
  });
  const copied = mkdtempSync(path.join(tmpdir(), 'skopeo-dataset-'));
  await promisify(execFile)('skopeo', [
    'copy',
    '--src-tls-verify=false',
    `docker://${baseUrl.replace('http://', '')}/${repository}@${built.digest}`,
    `oci:${copied}:dataset`,
  ]);
  expect(readdirSync(path.join(copied, 'blobs', 'sha256'))).toContain(built.digest.slice('sha256:'.length));
});

/** POST /v1/feedback as the caller `headers` make. */
async function feedback(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${baseUrl}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** The real CLI against this platform, with no token unless given. */
async function cli(args: string[], token?: string) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    COMPUTATRUM_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'feedback-cli-')),
    PLATFORM_HOST: '127.0.0.1',
    PLATFORM_PORT: new URL(baseUrl).port,
  };
  delete env.COMPUTATRUM_TOKEN;
  delete env.COMPUTATRUM_CONFIG;
  if (token) env.COMPUTATRUM_TOKEN = token;
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [path.join(__dirname, '..', '..', 'bin', 'computatrum.js'), ...args],
      { env },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test('right after a /v1 call: an anonymous visitor judges their own exchange by its id (and only theirs), the CLI too; bad input says what was wrong', async () => {
  const mine = await chat(ids.pub, 'an anonymous question');
  const given = await feedback({ interaction: mine, label: 'bad', correction: 'a better answer' });
  expect(given).toMatchObject({
    status: 200,
    body: { object: 'feedback', interaction: mine, label: 'bad', correction: 'a better answer' },
  });
  // The same visitor again: the record is replaced, not doubled.
  const again = await feedback({ interaction: mine, label: 'good' });
  expect(again.body).toMatchObject({ id: given.body.id, label: 'good', correction: null });
  const row = await env.db.feedback.findUnique({ where: { id: given.body.id as string } });
  expect(row).toMatchObject({ authorHandle: null, visitorId: expect.stringMatching(/^[0-9a-f]{32}$/) });
  const exchange = await env.db.interaction.findUnique({ where: { id: mine } });
  expect(row!.visitorId).toBe(exchange!.visitorId);

  // Someone else's exchange does not exist for an anonymous visitor.
  const alices = await chat(ids.pub, 'alice asks', alice.token);
  expect(await feedback({ interaction: alices, label: 'bad' })).toMatchObject({
    status: 404,
    body: { error: { type: 'not_found_error', message: expect.stringContaining(`no interaction ${alices}`) } },
  });
  expect(await feedback({ interaction: alices, label: 'good' }, alice.token)).toMatchObject({ status: 200 });

  expect(await feedback({ interaction: mine })).toMatchObject({
    status: 400,
    body: { error: { message: expect.stringContaining('label (good or bad) are required') } },
  });
  expect(await feedback({ interaction: mine, label: 'bad', correction: 'x'.repeat(1_000_000) })).toMatchObject({
    status: 413,
    body: { error: { message: expect.stringContaining('a correction is at most 20000 characters') } },
  });
  const form = await fetch(`${baseUrl}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...alice.cookie },
    body: `interaction=${alices}&label=bad`,
  });
  expect(form.status).toBe(415);

  // The CLI, anonymously from the same address, and as alice.
  const byCli = await cli(['feedback', mine, '--bad', '--correction', 'said better']);
  expect(byCli).toMatchObject({ code: 0, stdout: expect.stringContaining(`on ${mine}: bad, with a correction`) });
  expect((await env.db.feedback.findUnique({ where: { id: given.body.id as string } }))!.correction).toBe(
    'said better',
  );
  const neither = await cli(['feedback', mine]);
  expect(neither).toMatchObject({ code: 2, stderr: expect.stringContaining('give one of --good or --bad') });
  const unknown = await cli(['feedback', 'no-such-exchange', '--good'], tokenOf(alice));
  expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('no interaction no-such-exchange') });
});

test('anonymous feedback is rate limited per visitor, answered the OpenAI way', async () => {
  const mine = await chat(ids.pub, 'one more question');
  const answers: number[] = [];
  for (let n = 0; n < 25; n++)
    answers.push((await feedback({ interaction: mine, label: n % 2 ? 'good' : 'bad' })).status);
  expect(answers.filter((s) => s === 200).length).toBeLessThanOrEqual(20);
  const limited = await feedback({ interaction: mine, label: 'good' });
  expect(limited).toMatchObject({ status: 429, body: { error: { type: 'rate_limit_error' } } });
});
