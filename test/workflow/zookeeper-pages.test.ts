// The zookeeper's pages (the people's client of hosted instances) on the real engine: the instance
// workflow with the local instance runner serving test/helpers/echo-instance.js (it echoes the last
// user message), trainers' credit workflows, the gateway behind the chat form, PostgreSQL and an OCI
// layout store. A small cookie jar plays a browser without scripts: it keeps the session and CSRF
// cookies and posts the pages' urlencoded forms with the token read from the last page.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LocalInstanceRunner } from '../../activities/runners/local-instances';
import { creditHandle } from '../../platform/credit';
import { publishCheckpoint } from '../../store/checkpoint';
import { updateBudget } from '../../temporal/budget-client';
import { depositUpdate } from '../../workflows/budget-api';
import { safetensorsOf } from '../helpers/content';
import { eventually } from '../helpers/eventually';
import { testPlatform } from '../helpers/platform';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

const ECHO_INSTANCE = [process.execPath, path.join(__dirname, '..', 'helpers', 'echo-instance.js')];

jest.setTimeout(120_000);

let env: TestEnvironment;
let runner: LocalInstanceRunner;
let app: FastifyInstance;
let repository: string;
let image: string;
/** A trainer with credit, and their public and private instances (ready before the tests). */
let tia: Awaited<ReturnType<typeof trainerWithCredit>>;
let shown: string;
let hidden: string;

/** A browser without scripts: keeps cookies, finds the CSRF token in the last page, posts urlencoded forms. */
class Browser {
  readonly cookies = new Map<string, string>();
  token = '';
  readonly address = `10.8.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;

  private remember(response: Awaited<ReturnType<FastifyInstance['inject']>>) {
    for (const cookie of response.cookies) {
      if (cookie.maxAge === 0) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    const field = /name="_csrf" value="([^"]+)"/.exec(response.body);
    if (field) this.token = field[1]!;
    return response;
  }

  private get cookieHeader() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async get(url: string) {
    return this.remember(
      await app.inject({ method: 'GET', url, headers: { cookie: this.cookieHeader }, remoteAddress: this.address }),
    );
  }

  async post(url: string, fields: Record<string, string>, csrf: string | null = this.token) {
    const body = new URLSearchParams({ ...fields, ...(csrf === null ? {} : { _csrf: csrf }) }).toString();
    return this.remember(
      await app.inject({
        method: 'POST',
        url,
        headers: { cookie: this.cookieHeader, 'content-type': 'application/x-www-form-urlencoded' },
        payload: body,
        remoteAddress: this.address,
      }),
    );
  }

  handle = '';

  async signUp(handle: string) {
    this.handle = handle;
    await this.get('/auth/signup');
    const answer = await this.post('/auth/signup', {
      handle,
      email: `${handle}@example.org`,
      password: 'a long enough password',
      next: '/zookeeper',
    });
    expect(answer.statusCode).toBe(303);
    return this;
  }
}

/** What the page's hidden conversation field holds (the html tag escapes its quotes). */
function conversationOf(body: string): unknown {
  const value = /<form[^>]*id="chat-form"[\s\S]*?name="conversation" value="([^"]*)"/.exec(body)?.[1];
  if (value === undefined) throw new Error('the page has no chat form');
  return JSON.parse(
    value
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&'),
  );
}

/** A trainer signed in through the form, with `amount` minor units of credit. */
async function trainerWithCredit(amount: string) {
  const handle = uniqueName('tr');
  const browser = await new Browser().signUp(handle);
  await updateBudget(await creditHandle(env.client, env.taskQueue, handle, 'usd'), depositUpdate, {
    amount,
    currency: 'usd',
    reference: uniqueName('paid'),
  });
  return browser;
}

/** Launches through the zookeeper's form; answers the new instance's id. */
async function launchByForm(browser: Browser, visibility: 'public' | 'private'): Promise<string> {
  await browser.get(`/zookeeper?image=${encodeURIComponent(image)}`);
  const answer = await browser.post('/zookeeper/launch', { image, visibility, maxCost: '5.00', idleMinutes: '10' });
  expect({ status: answer.statusCode, body: answer.statusCode === 303 ? '' : answer.body }).toEqual({
    status: 303,
    body: '',
  });
  const id = /^\/zookeeper\?done=launched#instance-(.+)$/.exec(answer.headers.location as string)?.[1];
  expect(id).toBeDefined();
  return id!;
}

const ready = (id: string) =>
  eventually(
    async () => ((await env.db.instance.findUnique({ where: { id } }))?.state === 'ready' ? true : undefined),
    `instance ${id} to be ready`,
    30_000,
  );

beforeAll(async () => {
  runner = new LocalInstanceRunner({
    dataDir: mkdtempSync(path.join(tmpdir(), 'computatrum-zookeeper-')),
    defaultCommand: ECHO_INSTANCE,
  });
  env = await testEnvironment({ instanceRunners: { local: runner } });
  await env.startWorker();
  const germline = await env.startGermline();
  repository = `germline/${germline.name}`;
  image = `${repository}:main`;
  const dir = mkdtempSync(path.join(tmpdir(), 'zookeeper-image-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf(`weights of ${germline.name}`));
  await publishCheckpoint(env.store, repository, dir, { tag: 'main' });
  app = await testPlatform(env, germline.name, {
    training: {
      taskQueue: env.taskQueue,
      ratePerGpuHour: 3600n,
      runner: 'local',
      maxDurationSeconds: 600,
      maxPreemptions: 0,
      maxGpus: 1,
    },
  });
  tia = await trainerWithCredit('5000');
  shown = await launchByForm(tia, 'public');
  hidden = await launchByForm(tia, 'private');
  await Promise.all([ready(shown), ready(hidden)]);
});

afterAll(async () => {
  await app?.close();
  for (const id of (await runner?.list()) ?? []) await runner.stop(id);
  await env?.close();
});

test('anyone, without signing in, sees the public instances and their chat pages; only the chat page may run a script', async () => {
  const visitor = new Browser();
  const page = await visitor.get('/zookeeper');
  expect(page.statusCode).toBe(200);
  expect(page.body).toContain(`<a href="/zookeeper/${shown}">${shown}</a>`);
  expect(page.body).toContain(`<a href="/hub/${repository}">${image}</a>`);
  expect(page.body).not.toContain(hidden);
  expect(page.body).toContain('Sign in to launch an instance');
  expect(page.body).not.toContain('id="launch-form"');
  expect(page.headers['content-security-policy']).toContain("script-src 'none'");
  // The nav offers the zookeeper to everyone, the operators' console to no one but operators.
  expect(page.body).toContain('href="/zookeeper" aria-current="page"');
  expect(page.body).not.toContain('href="/operator"');

  const chat = await visitor.get(`/zookeeper/${shown}`);
  expect(chat.statusCode).toBe(200);
  expect(chat.body).toContain(`action="/zookeeper/${shown}/chat"`);
  expect(chat.body).toContain('Sign in</a> to save a conversation');
  const csp = chat.headers['content-security-policy'] as string;
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain("'unsafe-inline'");
  const script = /<script src="(\/assets\/chat\.js\?v=[0-9a-f]+)" defer><\/script>/.exec(chat.body)?.[1];
  expect(script).toBeDefined();
  const served = await app.inject({ method: 'GET', url: script! });
  expect(served.statusCode).toBe(200);
  expect(served.headers['content-type']).toBe('text/javascript; charset=utf-8');
  expect(served.body).toContain("fetch('/v1/chat/completions'");
  // Every other page still runs no script.
  for (const url of ['/', '/hub', `/hub/${repository}`, '/auth/signin'])
    expect({ url, csp: (await visitor.get(url)).headers['content-security-policy'] }).toEqual({
      url,
      csp: expect.stringContaining("script-src 'none'"),
    });
});

test("a chat page is not found for someone else's private instance, nor an unknown one", async () => {
  const stranger = await new Browser().signUp(uniqueName('str'));
  for (const [who, browser] of [
    ['a stranger', stranger],
    ['the public', new Browser()],
  ] as const) {
    for (const id of [hidden, 'no-such-instance', 'Not..An..Id']) {
      const page = await browser.get(`/zookeeper/${encodeURIComponent(id)}`);
      expect({ who, id, status: page.statusCode }).toEqual({ who, id, status: 404 });
      expect(page.body).toContain('No such instance');
    }
  }
  // Nor can it be talked to through the form.
  await stranger.get(`/zookeeper/${shown}`);
  const post = await stranger.post(`/zookeeper/${hidden}/chat`, { conversation: '[]', message: 'hello?' });
  expect(post.statusCode).toBe(404);
  // Its owner sees it, with its cost so far and a Stop button.
  const own = await tia.get('/zookeeper');
  expect(own.body).toMatch(new RegExp(`<tr id="instance-${hidden}">[\\s\\S]*?private[\\s\\S]*?USD`));
  expect(own.body).toContain(`action="/zookeeper/${hidden}/stop"`);
  expect((await tia.get(`/zookeeper/${hidden}`)).statusCode).toBe(200);
});

test('without scripts the chat is a form: the server asks the gateway and shows the answer; the conversation can be saved as a recording', async () => {
  const visitor = new Browser();
  await visitor.get(`/zookeeper/${shown}`);
  const first = await visitor.post(`/zookeeper/${shown}/chat`, { conversation: '[]', message: 'Hello <zoo>' });
  expect(first.statusCode).toBe(200);
  expect(first.body).toContain('<div class="content">Hello &lt;zoo&gt;</div>');
  expect(conversationOf(first.body)).toEqual([
    { role: 'user', content: 'Hello <zoo>' },
    { role: 'assistant', content: 'Hello <zoo>' },
  ]);
  const second = await visitor.post(`/zookeeper/${shown}/chat`, {
    conversation: JSON.stringify(conversationOf(first.body)),
    message: 'and again',
  });
  expect(second.statusCode).toBe(200);
  expect(conversationOf(second.body)).toEqual([
    { role: 'user', content: 'Hello <zoo>' },
    { role: 'assistant', content: 'Hello <zoo>' },
    { role: 'user', content: 'and again' },
    { role: 'assistant', content: 'and again' },
  ]);
  // The gateway recorded both exchanges, for an anonymous visitor.
  const interactions = await env.db.interaction.findMany({
    where: { instanceId: shown },
    orderBy: { createdAt: 'asc' },
  });
  expect(interactions.map((i) => [i.callerHandle, i.completion])).toEqual(
    expect.arrayContaining([
      [null, 'Hello <zoo>'],
      [null, 'and again'],
    ]),
  );
  // The answer just given carries its exchange's id, for the page's script to offer feedback on it.
  const answered = [...second.body.matchAll(/<li class="message assistant" data-interaction="([^"]+)">/g)];
  expect(answered).toHaveLength(1);
  expect(await env.db.interaction.findUnique({ where: { id: answered[0]![1]! } })).toMatchObject({
    instanceId: shown,
    completion: 'and again',
  });
  expect(second.body).toContain('feedback trains the next models');

  // Bounded: an overlong conversation or an empty message is refused on the page, and nothing is asked.
  const count = await env.db.interaction.count({ where: { instanceId: shown } });
  const long = await visitor.post(`/zookeeper/${shown}/chat`, {
    conversation: JSON.stringify(Array.from({ length: 41 }, () => ({ role: 'user', content: 'x' }))),
    message: 'hi',
  });
  expect(long.statusCode).toBe(413);
  expect(long.body).toContain('start a new one');
  const empty = await visitor.post(`/zookeeper/${shown}/chat`, { conversation: '[]', message: '  ' });
  expect(empty.statusCode).toBe(400);
  const broken = await visitor.post(`/zookeeper/${shown}/chat`, { conversation: '{"role":', message: 'hi' });
  expect(broken.statusCode).toBe(400);
  expect(await env.db.interaction.count({ where: { instanceId: shown } })).toBe(count);

  // The public must sign in to save it; a signed-in person saves it as a transcript on the hub page.
  const anonymousSave = await visitor.post(`/zookeeper/${shown}/record`, {
    conversation: JSON.stringify(conversationOf(second.body)),
    title: 'zoo',
  });
  expect(anonymousSave.statusCode).toBe(303);
  expect(anonymousSave.headers.location).toBe(`/auth/signin?next=${encodeURIComponent(`/zookeeper/${shown}`)}`);
  const saver = await new Browser().signUp(uniqueName('rec'));
  await saver.get(`/zookeeper/${shown}`);
  const title = `Echoes ${uniqueName('t')}`;
  const saved = await saver.post(`/zookeeper/${shown}/record`, {
    conversation: JSON.stringify(conversationOf(second.body)),
    title,
  });
  expect(saved.statusCode).toBe(303);
  expect(saved.headers.location).toBe(`/hub/${repository}?done=recording#recordings`);
  const hub = await saver.get(`/hub/${repository}`);
  expect(hub.body).toContain(title);
  const recording = await env.db.recording.findFirstOrThrow({ where: { title } });
  const download = await app.inject({ method: 'GET', url: `/api/recordings/${recording.id}` });
  expect(download.headers['content-type']).toContain('text/plain');
  expect(download.body).toContain(`A conversation with instance ${shown} of ${image}`);
  expect(download.body).toContain('You:\nHello <zoo>');
  expect(download.body).toContain(`${shown}:\nand again`);
  const nothing = await saver.post(`/zookeeper/${shown}/record`, { conversation: '[]', title });
  expect(nothing.statusCode).toBe(400);
  expect(nothing.body).toContain('the conversation is empty');
});

test('launching: the public is sent to sign in; a trainer without credit sees the refusal on the form; a stop by its owner', async () => {
  const visitor = new Browser();
  await visitor.get('/auth/signin');
  const anonymous = await visitor.post('/zookeeper/launch', { image, visibility: 'private', maxCost: '1.00' });
  expect(anonymous.statusCode).toBe(303);
  expect(anonymous.headers.location).toBe(`/auth/signin?next=${encodeURIComponent('/zookeeper#launch')}`);

  const broke = await new Browser().signUp(uniqueName('brk'));
  await broke.get('/zookeeper');
  const refused = await broke.post('/zookeeper/launch', {
    image,
    visibility: 'public',
    maxCost: '2.50',
    idleMinutes: '5',
  });
  expect(refused.statusCode).toBe(400);
  expect(refused.body).toMatch(/<p class="error" role="alert">your credit has 0\.00 USD available: add credit/);
  // The form again, with what was typed.
  expect(refused.body).toContain(`id="launch-image" name="image" required maxlength="300" value="${image}"`);
  expect(refused.body).toContain('<option value="public" selected>');
  expect(refused.body).toContain('value="2.50"');
  const badCost = await broke.post('/zookeeper/launch', { image, visibility: 'private', maxCost: 'lots' });
  expect(badCost.statusCode).toBe(400);
  expect(badCost.body).toContain('not a number');
  const badIdle = await broke.post('/zookeeper/launch', {
    image,
    visibility: 'private',
    maxCost: '1.00',
    idleMinutes: 'soon',
  });
  expect(badIdle.statusCode).toBe(400);
  expect(badIdle.body).toContain('whole minutes');
  expect(await env.db.instance.count({ where: { ownerHandle: broke.handle } })).toBe(0);

  // The hub page offers Run to signed-in people (the launch form, prefilled) and lists public instances.
  const hub = await tia.get(`/hub/${repository}`);
  expect(hub.body).toContain(`<a href="/zookeeper/${shown}">${shown}</a>`);
  expect(hub.body).not.toContain(`/zookeeper/${hidden}`);
  const run = /<a class="button" id="run" href="([^"]+)">Run<\/a>/.exec(hub.body)?.[1];
  expect(run).toBe(`/zookeeper?image=${encodeURIComponent(image)}#launch`);
  expect((await tia.get(run!.replace(/#.*$/, ''))).body).toContain(
    `name="image" required maxlength="300" value="${image}"`,
  );
  expect((await new Browser().get(`/hub/${repository}`)).body).toContain('Sign in to run an instance of this image');

  // A stranger may not stop it; its owner does, and it is billed what it used.
  const stranger = await new Browser().signUp(uniqueName('str'));
  await stranger.get('/zookeeper');
  const notYours = await stranger.post(`/zookeeper/${shown}/stop`, {});
  expect(notYours.statusCode).toBe(403);
  expect(notYours.body).toContain(`only its owner or an operator may stop instance ${shown}`);
  const id = await launchByForm(tia, 'private');
  await tia.get('/zookeeper');
  const stopped = await tia.post(`/zookeeper/${id}/stop`, {});
  expect(stopped.statusCode).toBe(303);
  expect(stopped.headers.location).toBe(`/zookeeper?done=stopped#instance-${id}`);
  await eventually(
    async () => ((await env.db.instance.findUnique({ where: { id } }))?.state === 'stopped' ? true : undefined),
    `instance ${id} to be stopped`,
  );
  const after = await tia.get('/zookeeper?done=stopped');
  expect(after.body).toContain('Stopped: its last lease is settled');
  expect(after.body).toMatch(new RegExp(`<tr id="instance-${id}">[\\s\\S]*?stopped`));
});
