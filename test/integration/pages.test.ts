// The server-rendered pages through Fastify's inject (the whole HTTP stack, without a socket) against
// the real parts: PostgreSQL, the Temporal dev server (the germline's books), an OCI layout store.
// A small cookie jar plays the browser: it keeps the session and CSRF cookies and reads the form token
// from the page, as a browser posting a form would.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildDataset } from '../../activities/datasets';
import { publishCheckpoint, tagCheckpoint } from '../../store/checkpoint';
import { setRole } from '../../platform/accounts';
import { buildPlatform } from '../../platform/server';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';
import { safetensorsOf } from '../helpers/content';
import { depositUpdate } from '../../workflows/budget-api';
import { updateBudget } from '../../temporal/budget-client';
import { germlineWorkflowId } from '../../workflows/names';

let env: TestEnvironment;
let app: FastifyInstance;
let germline: Awaited<ReturnType<TestEnvironment['startGermline']>>;
let repository: string;
/** The UTC day now, read only to bracket a request: the page decides what "today" is when it renders. */
const utcDay = () => new Date().toISOString().slice(0, 10);
/** The day this file publishes its daily checkpoint for (test data: the page is asked what it makes of it). */
const today = utcDay();
const dailyTag = `gpc-${today}`;
let nickname: string;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
  germline = await env.startGermline();
  await updateBudget(germline.handle, depositUpdate, { amount: '123456', currency: 'usd', reference: 'seed' });
  repository = `germline/${germline.name}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'pages-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('germline weights'));
  writeFileSync(path.join(dir, 'notes & <readme>.txt'), 'read me');
  const published = await publishCheckpoint(env.store, repository, dir, { tag: 'main' });
  await tagCheckpoint(env.store, repository, 'main', dailyTag);
  nickname = `Page ${uniqueName('otter')}`;
  await env.db.checkpoint.create({
    data: {
      id: `${repository}:${dailyTag}`,
      repository,
      tag: dailyTag,
      day: today,
      status: 'published',
      nickname,
      digest: published.digest,
      size: BigInt(published.size),
    },
  });
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: germline.name,
    currency: 'usd',
    store: env.store,
    db: env.db,
    client: env.client,
    temporalUiUrl: 'http://127.0.0.1:8233',
  });
});

afterAll(async () => {
  await app?.close();
  await env?.close();
});

/** A browser: keeps cookies, finds the CSRF token in the last page, posts urlencoded forms. */
class Browser {
  readonly cookies = new Map<string, string>();
  token = '';
  // Every browser its own address, so the per-address sign-up limit is not what a test meets.
  readonly address = `10.9.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;

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

  /** Posts a form; `_csrf` is the page's token unless the fields give one (or `null`: none). */
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

  async signUp(handle: string, next = '/hub') {
    await this.get('/auth/signup');
    return this.post('/auth/signup', {
      handle,
      email: `${handle}@example.org`,
      password: 'a long enough password',
      next,
    });
  }
}

async function person(role: 'trainer' | 'operator' = 'trainer') {
  const browser = new Browser();
  const handle = uniqueName(role === 'operator' ? 'op' : 'tr');
  expect((await browser.signUp(handle)).statusCode).toBe(303);
  if (role === 'operator') await setRole(env.db, handle, 'operator');
  return Object.assign(browser, { handle });
}

describe('pages render', () => {
  test('home shows what computatrum is and today’s gpc tag with its nickname, linking to its hub page', async () => {
    const before = utcDay();
    const page = await new Browser().get('/');
    const after = utcDay();
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('independent germline');
    // Today's while the page renders on the checkpoint's day; a UTC midnight may pass between the setup and the request.
    const heading = (renderedOn: string) =>
      renderedOn === today ? 'Today’s checkpoint' : `The latest daily checkpoint (${today})`;
    const shown = /<section class="today">\s*<h2>([^<]*)<\/h2>/.exec(page.body)?.[1];
    expect([heading(before), heading(after)]).toContain(shown);
    expect(page.body).toContain(`href="/hub/${repository}#tag-${dailyTag}"`);
    expect(page.body).toContain(nickname);
    for (const link of ['/learn', '/hub', '/marketplace', '/auth/signin?next=%2F'])
      expect(page.body).toContain(`href="${link}"`);
    // Pages allow no script at all, and their stylesheet comes from here.
    expect(page.headers['content-security-policy']).toContain("script-src 'none'");
    const stylesheet = /href="(\/assets\/site\.css\?v=[0-9a-f]+)"/.exec(page.body)![1]!;
    const css = await app.inject({ method: 'GET', url: stylesheet });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(
      (await app.inject({ method: 'GET', url: stylesheet, headers: { 'if-none-match': css.headers.etag as string } }))
        .statusCode,
    ).toBe(304);
  });

  test('learn explains pulling (CLI, skopeo, oras), forking and training, money and daily tags', async () => {
    const page = await new Browser().get('/learn');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`computatrum pull ${repository}:${dailyTag} ./out`);
    expect(page.body).toContain(`skopeo copy --src-tls-verify=false docker://localhost:80/${repository}:${dailyTag}`);
    expect(page.body).toContain('oras pull --plain-http');
    expect(page.body).toContain('computatrum fork');
    expect(page.body).toContain('00:00 UTC');
  });

  test('the hub lists every image with the germline first, and searches', async () => {
    const browser = await person();
    await browser.get(`/hub/${repository}`);
    expect(
      (await browser.post(`/hub/${repository}/fork`, { from: dailyTag, to: `trainers/${browser.handle}/zebra` }))
        .statusCode,
    ).toBe(303);
    const hub = await browser.get('/hub');
    expect(hub.statusCode).toBe(200);
    const germlineAt = hub.body.indexOf(`href="/hub/${repository}"`);
    const forkAt = hub.body.indexOf(`href="/hub/trainers/${browser.handle}/zebra"`);
    expect(germlineAt).toBeGreaterThan(0);
    expect(forkAt).toBeGreaterThan(germlineAt);
    const found = await browser.get('/hub?q=zebra');
    expect(found.body).toContain(`trainers/${browser.handle}/zebra`);
    expect(found.body).not.toMatch(new RegExp(`<td><a href="/hub/${repository}">`));
    const none = await browser.get('/hub?q=%3Cno-such-image%3E');
    expect(none.body).toContain('No image matches your search.');
    expect(none.body).toContain('value="&lt;no-such-image&gt;"');
  });

  test('an image page shows tags, nicknames, sizes, digests, file links, pull commands and lineage', async () => {
    const page = await new Browser().get(`/hub/${repository}`);
    expect(page.statusCode).toBe(200);
    const digest = (await env.store.getManifest(repository, dailyTag))!.digest;
    expect(page.body).toContain(`id="tag-${dailyTag}"`);
    expect(page.body).toContain(nickname);
    expect(page.body).toContain(digest);
    expect(page.body).toContain(`href="/hub/${repository}/resolve/${dailyTag}/model.safetensors" download`);
    // A file name is text in the page and percent-encoded in its link.
    expect(page.body).toContain(`/resolve/${dailyTag}/notes%20%26%20%3Creadme%3E.txt`);
    expect(page.body).toContain('notes &amp; &lt;readme&gt;.txt');
    expect(page.body).toContain(`computatrum pull ${repository}:${dailyTag}`);
    expect(page.body).toContain(`docker://localhost:80/${repository}:${dailyTag}`);
    expect(page.body).toContain('a root checkpoint');
    expect(page.body).toContain('Sign in to comment');
    // The download link is served through the same /hub/* route, as an attachment.
    const file = await app.inject({
      method: 'GET',
      url: `/hub/${repository}/resolve/${dailyTag}/notes%20%26%20%3Creadme%3E.txt`,
    });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-disposition']).toBe('attachment; filename="notes & <readme>.txt"');
    expect(file.body).toBe('read me');
    expect((await new Browser().get('/hub/nobody/here')).statusCode).toBe(404);
    expect((await new Browser().get('/hub/NOT%20a%20name')).statusCode).toBe(404);
  });

  test('lineage: a checkpoint trained from today’s names its parent and links to it', async () => {
    const digest = (await env.store.getManifest(repository, dailyTag))!.digest;
    const dir = mkdtempSync(path.join(tmpdir(), 'pages-child-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('tuned weights'));
    const child = `children/${uniqueName('kid')}`;
    await publishCheckpoint(env.store, child, dir, {
      tag: 'main',
      parent: digest,
      annotations: { 'io.computatrum.metrics': '{"loss":1.25}' },
    });
    const page = await new Browser().get(`/hub/${child}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`trained or forked from <span class="digest">${digest}</span>`);
    expect(page.body).toContain(
      `href="/hub/${repository}#tag-${dailyTag}">${repository}:${dailyTag}</a> “${nickname}”`,
    );
    expect(page.body).toContain('loss = 1.25');
  });

  test('feedback datasets: listed with working download links, and a tag a run trained on one names it in its lineage', async () => {
    // An image, a public instance of it that answered someone (now stopped), and their correction.
    const judged = `children/${uniqueName('judged')}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'pages-judged-'));
    writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('judged weights'));
    const base = await publishCheckpoint(env.store, judged, dir, { tag: 'main' });
    const payer = germlineWorkflowId(germline.name);
    const instance = uniqueName('judged');
    await env.db.instance.create({
      data: {
        id: instance,
        repository: judged,
        reference: 'main',
        digest: base.digest,
        payer,
        visibility: 'public',
        runner: 'local',
        gpus: 1,
        ratePerGpuHour: 3600n,
        currency: 'usd',
        maxCost: 100n,
        idleTimeoutSeconds: 0,
        maxDurationSeconds: 600,
        state: 'stopped',
      },
    });
    const visitor = 'a'.repeat(32);
    const interaction = randomUUID();
    await env.db.interaction.create({
      data: {
        id: interaction,
        instanceId: instance,
        digest: base.digest,
        visitorId: visitor,
        request: { model: instance, messages: [{ role: 'user', content: 'The cat sat on the' }] },
        completion: 'The cat sat on the',
        latencyMs: 12,
      },
    });
    const record = randomUUID();
    await env.db.feedback.create({
      data: {
        id: record,
        interactionId: interaction,
        author: `visitor:${visitor}`,
        visitorId: visitor,
        label: 'bad',
        correction: 'mat.',
      },
    });
    const dataset = await buildDataset(env, { repository: judged, reference: 'main', builtBy: { germline: payer } });
    const short = dataset.digest.slice(0, 19);

    // Its page lists the dataset, and its download links answer the dataset's files.
    const page = await new Browser().get(`/hub/${judged}`);
    expect(page.statusCode).toBe(200);
    const section = page.body.slice(page.body.indexOf('<h2 id="datasets">Feedback datasets</h2>'));
    expect(section).toContain(`<td><code>${short}</code></td><td class="num">1</td>`);
    const link = /href="([^"]+\/preferences\.jsonl)" download/.exec(section)?.[1];
    expect(link).toBe(`/hub/${judged}/resolve/${encodeURIComponent(dataset.digest)}/preferences.jsonl`);
    const file = await app.inject({ method: 'GET', url: link! });
    expect(file.statusCode).toBe(200);
    const rows = file.body
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows).toEqual([
      expect.objectContaining({
        record,
        prompt: [{ role: 'user', content: 'The cat sat on the' }],
        chosen: [{ role: 'assistant', content: 'mat.' }],
        rejected: [{ role: 'assistant', content: 'The cat sat on the' }],
      }),
    ]);
    // The image itself was made by no run here.
    expect(page.body).not.toContain('Trained here by run');

    // A run here learns from the dataset into another image: that tag's lineage names the dataset.
    const learnedDir = mkdtempSync(path.join(tmpdir(), 'pages-learned-'));
    writeFileSync(path.join(learnedDir, 'model.safetensors'), safetensorsOf('weights that learned'));
    const learnedImage = `children/${uniqueName('learned')}`;
    const learned = await publishCheckpoint(env.store, learnedImage, learnedDir, { tag: 'main', parent: base.digest });
    const run = uniqueName('learn');
    await env.db.trainingRun.create({
      data: {
        id: run,
        payer,
        runner: 'local',
        baseRepository: judged,
        baseReference: 'main',
        baseDigest: base.digest,
        outputRepository: learnedImage,
        outputBranch: 'main',
        gpus: 1,
        maxCost: 1000n,
        ratePerGpuHour: 3600n,
        currency: 'usd',
        maxDurationSeconds: 600,
        state: 'succeeded',
        outputDigest: learned.digest,
        datasets: [{ repository: judged, digest: dataset.digest }],
        finishedAt: new Date('2031-01-02T03:04:00Z'),
      },
    });
    const learnedPage = await new Browser().get(`/hub/${learnedImage}`);
    expect(learnedPage.statusCode).toBe(200);
    const tag = /<details id="tag-main"[\s\S]*?<\/details>/.exec(learnedPage.body)?.[0] ?? '';
    expect(tag).toContain(`trained or forked from <span class="digest">${base.digest}</span>`);
    expect(tag).toContain(
      `Trained here by run <code>${run}</code> on 2031-01-02 03:04, learning from 1 feedback dataset: ` +
        `<a href="/hub/${judged}#datasets"><code>${short}</code> of ${judged}</a> (1 record).`,
    );
  });

  test('a fork goes under the trainer’s own name, once; anywhere else is refused', async () => {
    const browser = await person();
    await browser.get(`/hub/${repository}`);
    const forked = await browser.post(`/hub/${repository}/fork`, {
      from: dailyTag,
      to: `trainers/${browser.handle}/coder`,
    });
    expect(forked.statusCode).toBe(303);
    expect(forked.headers.location).toBe(`/hub/trainers/${browser.handle}/coder?done=forked`);
    const page = await browser.get(forked.headers.location as string);
    expect(page.body).toContain('Forked: this is your new repository.');
    // A fork is the same manifest: it shares the daily tag's lineage (a root) and offers to publish it.
    expect(page.body).toContain('Publish as a breed');
    const again = await browser.post(`/hub/${repository}/fork`, {
      from: dailyTag,
      to: `trainers/${browser.handle}/coder`,
    });
    expect(again.statusCode).toBe(409);
    expect(again.body).toContain(`trainers/${browser.handle}/coder:main exists already: choose another name`);
    const elsewhere = await browser.post(`/hub/${repository}/fork`, {
      from: dailyTag,
      to: 'trainers/someone-else/coder',
    });
    expect(elsewhere.statusCode).toBe(403);
    expect(elsewhere.body).toContain(
      `you can fork only under trainers/${browser.handle}/, not trainers/someone-else/coder`,
    );
    expect(await env.store.listTags('trainers/someone-else/coder')).toEqual([]);
  });

  test('account: handle and role, and an API token shown once', async () => {
    const browser = await person();
    const page = await browser.get('/auth/account');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(browser.handle);
    expect(page.body).toContain('trainer');
    const created = await browser.post('/auth/account/tokens', { name: 'laptop <cli>' });
    expect(created.statusCode).toBe(201);
    const token = /<pre id="new-token">(ctr_[A-Za-z0-9_-]+)<\/pre>/.exec(created.body)![1]!;
    expect(
      (await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${token}` } })).json(),
    ).toMatchObject({ account: { handle: browser.handle } });
    const later = await browser.get('/auth/account');
    expect(later.body).not.toContain(token);
    expect(later.body).toContain('laptop &lt;cli&gt;');
    expect((await new Browser().get('/auth/account')).headers.location).toBe('/auth/signin?next=%2Fauth%2Faccount');
  });
});

describe('discussion, recordings and reports', () => {
  test('threads and comments are shown as text, never as markup', async () => {
    const browser = await person();
    await browser.get(`/hub/${repository}`);
    const started = await browser.post(`/hub/${repository}/threads`, {
      title: '<script>alert("title")</script>',
      reference: dailyTag,
      body: 'first <img src=x onerror=alert(1)>',
    });
    expect(started.statusCode).toBe(303);
    expect(started.headers.location).toMatch(new RegExp(`^/hub/${repository}\\?done=thread#thread-`));
    const threadId = /#thread-(.+)$/.exec(started.headers.location as string)![1]!;
    const replied = await browser.post(`/hub/${repository}/threads/${threadId}/comments`, {
      body: 'a reply </div><script>alert(2)</script>',
    });
    expect(replied.statusCode).toBe(303);
    const page = await browser.get(`/hub/${repository}`);
    expect(page.body).toContain('&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;');
    expect(page.body).toContain('first &lt;img src=x onerror=alert(1)&gt;');
    expect(page.body).toContain('a reply &lt;/div&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
    expect(page.body).not.toMatch(/<script|<img/i);

    const empty = await browser.post(`/hub/${repository}/threads`, { title: 'kept title', body: '   ' });
    expect(empty.statusCode).toBe(400);
    expect(empty.body).toContain('the comment is empty');
    expect(empty.body).toContain('value="kept title"');
    const unknown = await browser.post(`/hub/${repository}/threads/no-such-thread/comments`, { body: 'hello' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body).toContain('there is no thread no-such-thread');
  });

  test('a recording (a text transcript) is attached and listed; a report reaches the operator console', async () => {
    const browser = await person();
    await browser.get(`/hub/${repository}`);
    const attached = await browser.post(`/hub/${repository}/recordings`, {
      reference: dailyTag,
      title: 'A chat about otters',
      filename: 'otters.txt',
      content: 'user: hi\nmodel: hello',
    });
    expect(attached.statusCode).toBe(303);
    const page = await browser.get(`/hub/${repository}`);
    expect(page.body).toContain('A chat about otters');
    expect(page.body).toMatch(/href="\/api\/recordings\/[^"]+" download>otters\.txt<\/a>/);
    const bad = await browser.post(`/hub/${repository}/recordings`, {
      reference: dailyTag,
      title: 'escape',
      filename: '../etc/passwd',
      content: 'x',
    });
    expect(bad.statusCode).toBe(400);

    const reason = `weights look tampered ${uniqueName('r')}`;
    const reported = await browser.post(`/hub/${repository}/report`, { reference: dailyTag, reason });
    expect(reported.statusCode).toBe(303);
    expect((await browser.get(reported.headers.location as string)).body).toContain('your report is recorded');
    const operator = await person('operator');
    expect((await operator.get('/operator')).body).toContain(reason);
  });

  test('the public is sent to sign in by every form, and nothing changes', async () => {
    const browser = new Browser();
    // The image page has no forms for the public (only "Sign in to …" links); a token from the sign-in form.
    expect((await browser.get(`/hub/${repository}`)).body).not.toContain('name="_csrf"');
    await browser.get('/auth/signin');
    const before = await env.db.thread.count({ where: { repository } });
    const answer = await browser.post(`/hub/${repository}/threads`, { title: 'anonymous', body: 'hi' });
    expect(answer.statusCode).toBe(303);
    expect(answer.headers.location).toBe(`/auth/signin?next=${encodeURIComponent(`/hub/${repository}`)}`);
    expect(await env.db.thread.count({ where: { repository } })).toBe(before);
  });
});

describe('CSRF', () => {
  test('a form POST without the token, or with a wrong one, is a 403 page and changes nothing', async () => {
    const browser = await person();
    await browser.get(`/hub/${repository}`);
    const before = await env.db.thread.count({ where: { repository } });
    for (const csrf of [null, 'A'.repeat(43), '', browser.token.slice(1)]) {
      const answer = await browser.post(`/hub/${repository}/threads`, { title: 'forged', body: 'forged' }, csrf);
      expect(answer.statusCode).toBe(403);
      expect(answer.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(answer.body).toContain('Nothing was changed');
    }
    // The right token without its cookie (another browser's token) is refused as well.
    const stranger = new Browser();
    stranger.cookies.set('computatrum_session', browser.cookies.get('computatrum_session')!);
    expect(
      (await stranger.post(`/hub/${repository}/threads`, { title: 'forged', body: 'forged' }, browser.token))
        .statusCode,
    ).toBe(403);
    expect(await env.db.thread.count({ where: { repository } })).toBe(before);

    for (const [url, fields] of [
      ['/auth/account/tokens', { name: 'forged' }],
      [`/hub/${repository}/fork`, { from: dailyTag, to: `trainers/${browser.handle}/forged` }],
      [`/hub/${repository}/report`, { reason: 'forged' }],
      ['/marketplace/buy', { repository: 'trainers/x/y' }],
      ['/marketplace/payouts', {}],
      ['/operator/decisions', { id: 'x', action: 'approve' }],
      ['/zookeeper/launch', { image: `${repository}:main`, visibility: 'private', maxCost: '1.00' }],
      ['/zookeeper/some-instance/chat', { conversation: '[]', message: 'forged' }],
      ['/zookeeper/some-instance/record', { conversation: '[]', title: 'forged' }],
      ['/zookeeper/some-instance/stop', {}],
      ['/auth/signout', {}],
    ] as const) {
      expect({ url, status: (await browser.post(url, fields, 'B'.repeat(43))).statusCode }).toEqual({
        url,
        status: 403,
      });
    }
    expect(await env.store.listTags(`trainers/${browser.handle}/forged`)).toEqual([]);
    // Still signed in: the forged sign-out did nothing.
    expect((await browser.get('/auth/account')).statusCode).toBe(200);
  });

  test('sign-up by form: a wrong token is a 403 and makes no account; a form without one gets the JSON API’s 415', async () => {
    const browser = new Browser();
    await browser.get('/auth/signup');
    const handle = uniqueName('forged');
    const forged = await browser.post(
      '/auth/signup',
      { handle, email: `${handle}@example.org`, password: 'a long enough password' },
      'C'.repeat(43),
    );
    expect(forged.statusCode).toBe(403);
    const plain = await browser.post(
      '/auth/signup',
      { handle, email: `${handle}@example.org`, password: 'a long enough password' },
      null,
    );
    expect(plain.statusCode).toBe(415);
    expect(await env.db.account.count({ where: { handle } })).toBe(0);
  });
});

describe('sign up, sign in and sign out by form', () => {
  test('sign-up with the token answers 303 to next with the session cookie', async () => {
    const browser = new Browser();
    const handle = uniqueName('form');
    const answer = await browser.signUp(handle, `/hub/${repository}`);
    expect(answer.statusCode).toBe(303);
    expect(answer.headers.location).toBe(`/hub/${repository}`);
    expect(answer.cookies.find((c) => c.name === 'computatrum_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Lax',
    });
    const page = await browser.get(`/hub/${repository}`);
    expect(page.body).toContain(`${handle}</a> ·`);
    expect(page.body).toContain('Start a thread');
  });

  test.each([
    ['//evil.example', '/hub'],
    ['https://evil.example', '/hub'],
    ['/\\evil.example', '/hub'],
    ['javascript:alert(1)', '/hub'],
    ['/hub\r\nset-cookie: x=1', '/hub'],
    ['/%0d%0aset-cookie:x', '/%0d%0aset-cookie:x'], // percent-encoded: a harmless same-site path
  ])('next %j: the answer goes to %s', async (next, location) => {
    const answer = await new Browser().signUp(uniqueName('next'), next);
    expect(answer.statusCode).toBe(303);
    expect(answer.headers.location).toBe(location);
  });

  test('mistakes are shown on the form again with what was typed; sign in and out', async () => {
    const taken = await person();
    const browser = new Browser();
    await browser.get('/auth/signup');
    const again = await browser.post('/auth/signup', {
      handle: taken.handle,
      email: 'new-<email>@example.org',
      password: 'a long enough password',
    });
    expect(again.statusCode).toBe(409);
    expect(again.body).toContain(`the handle ${taken.handle} is taken`);
    expect(again.body).toContain('value="new-&lt;email&gt;@example.org"');
    const short = await browser.post('/auth/signup', {
      handle: uniqueName('s'),
      email: 's@example.org',
      password: 'short',
    });
    expect(short.statusCode).toBe(400);
    expect(short.body).toContain('a password is at least 10 characters');
    const long = await browser.post('/auth/signup', {
      handle: uniqueName('l'),
      email: 'l@example.org',
      password: 'x'.repeat(200_000),
    });
    expect(long.statusCode).toBe(400);
    expect(long.body).toContain('a password is at most 200 characters');

    const wrong = await browser.post('/auth/signin', { login: taken.handle, password: 'not the password' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain('wrong handle, email or password');
    const overlong = await browser.post('/auth/signin', { login: taken.handle, password: 'x'.repeat(201) });
    expect(overlong.statusCode).toBe(400);
    expect(overlong.body).toContain('a password is at most 200 characters');
    const signedIn = await browser.post('/auth/signin', {
      login: taken.handle,
      password: 'a long enough password',
      next: '/marketplace',
    });
    expect(signedIn.statusCode).toBe(303);
    expect(signedIn.headers.location).toBe('/marketplace');
    expect((await browser.get('/marketplace')).body).toContain(`${taken.handle}</a> ·`);
    const out = await browser.post('/auth/signout', {});
    expect(out.statusCode).toBe(303);
    expect(out.headers.location).toBe('/');
    expect((await browser.get('/auth/account')).statusCode).toBe(303);
  });
});

describe('marketplace', () => {
  test('breeds with price or free link to their hub pages; buying without Stripe says payments are not configured', async () => {
    const seller = await person();
    await seller.get(`/hub/${repository}`);
    const repo = `trainers/${seller.handle}/painter`;
    await seller.post(`/hub/${repository}/fork`, { from: dailyTag, to: repo });
    await seller.get(`/hub/${repo}`);
    const listed = await seller.post(`/hub/${repo}/publish`, { title: 'Painter <b>pro</b>', price: '9.99' });
    expect(listed.statusCode).toBe(303);
    const badPrice = await seller.post(`/hub/${repo}/publish`, { title: 'Painter', price: '9.999' });
    expect(badPrice.statusCode).toBe(400);
    expect(badPrice.body).toContain('9.999');

    const buyer = await person();
    const market = await buyer.get('/marketplace');
    expect(market.statusCode).toBe(200);
    expect(market.body).toContain('Painter &lt;b&gt;pro&lt;/b&gt;');
    expect(market.body).toContain(`href="/hub/${repo}"`);
    expect(market.body).toContain('9.99 USD');
    expect(market.body).toContain('Payments are not configured on this platform');
    const buy = await buyer.post('/marketplace/buy', { repository: repo });
    expect(buy.statusCode).toBe(503);
    expect(buy.body).toContain('Payments are not configured');
    // Not bought: the image page shows the files but no download links.
    const page = await buyer.get(`/hub/${repo}`);
    expect(page.body).toContain('A paid breed: buy it to download its files.');
    expect(page.body).not.toContain(`href="/hub/${repo}/resolve/`);
    expect((await new Browser().get('/marketplace')).body).toContain('Sign in to buy');
  });
});

describe('operator console', () => {
  test('the public is sent to sign in, a trainer is refused, an operator sees the books', async () => {
    // The zookeeper is everyone's now (zookeeper-pages.test.ts): it sends no one away, and links no console.
    const zookeeper = await new Browser().get('/zookeeper');
    expect(zookeeper.statusCode).toBe(200);
    expect(zookeeper.body).not.toContain('href="/operator"');

    const publicAnswer = await new Browser().get('/operator');
    expect(publicAnswer.statusCode).toBe(303);
    expect(publicAnswer.headers.location).toBe('/auth/signin?next=%2Foperator');
    const trainer = await person();
    const refused = await trainer.get('/operator');
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain('Operators only');
    expect(refused.body).not.toContain('Operator</a>');

    const operator = await person('operator');
    const page = await operator.get('/operator');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('1,234.56 USD');
    expect(page.body).toContain(
      `href="http://127.0.0.1:8233/namespaces/default/workflows/germline%2F${germline.name}"`,
    );
    expect(page.body).toContain('Nothing awaits approval.');
    expect(page.body).toContain('href="/operator" aria-current="page"');
    // A decision awaiting approval is listed with its approve and reject buttons.
    const decisionId = `${germline.name}/7/0`;
    await env.db.decision.create({
      data: {
        id: decisionId,
        germline: germline.name,
        policy: 'rules',
        observationDigest: 'sha256:x',
        proposal: { kind: 'spawn', child: 'coder', allowance: '1000', purpose: 'programming <code>' },
        why: 'room for one more',
        outcome: 'awaiting-approval',
        reason: 'above the approval threshold',
      },
    });
    const awaiting = await operator.get('/operator');
    expect(awaiting.body).toContain('spawn coder (programming &lt;code&gt;) with an allowance of 10.00 USD');
    expect(awaiting.body).toContain(`<input type="hidden" name="id" value="${decisionId}">`);
    expect(awaiting.body).toContain('value="approve">Approve</button>');
    // Approving a decision that waits no more is a refusal on the page, not a failure.
    const approve = await operator.post('/operator/decisions', { id: `${germline.name}/999/0`, action: 'approve' });
    expect(approve.statusCode).toBe(404);
    expect(approve.body).toContain(`no decision ${germline.name}/999/0 awaits approval`);
  });

  test('without Temporal the operator console says so instead of failing', async () => {
    const bare = await buildPlatform({
      logger: pino({ level: 'silent' }),
      checks: [],
      germline: germline.name,
      currency: 'usd',
      store: env.store,
      db: env.db,
    });
    try {
      const operator = await person('operator');
      const page = await bare.inject({
        method: 'GET',
        url: '/operator',
        headers: { cookie: `computatrum_session=${operator.cookies.get('computatrum_session')}` },
      });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('not connected to Temporal');
      expect(page.body).toContain('Recent training runs');
    } finally {
      await bare.close();
    }
  });
});

test('a refusal before the page (too many requests) is a page too, with when to come back', async () => {
  const limited = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: germline.name,
    store: env.store,
    db: env.db,
    rateLimitPerMinute: 2,
  });
  try {
    for (let i = 0; i < 2; i++)
      expect((await limited.inject({ method: 'GET', url: '/learn', remoteAddress: '10.1.2.3' })).statusCode).toBe(200);
    const refused = await limited.inject({ method: 'GET', url: '/learn', remoteAddress: '10.1.2.3' });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(refused.headers['retry-after']).toBeDefined();
    expect(refused.body).toContain('too many requests: at most 2 per minute');
  } finally {
    await limited.close();
  }
});
