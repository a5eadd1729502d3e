// The hub against real parts: PostgreSQL for threads, comments, recordings and reports, an OCI
// layout store for the images and the recordings' artifacts, the whole Fastify app through inject.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { publishCheckpoint } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { type ImageManifest, OCI_INDEX } from '../../store/types';
import { RECORDING_ARTIFACT } from '../../store/recording';
import { buildPlatform } from '../../platform/server';
import { type GraphQLAnswer, graphqlAs, type Headers, signUpAccount } from '../helpers/accounts';
import { PROTOCOL_0_PICKLE, safetensorsOf } from '../helpers/content';
import { uniqueName } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

let app: FastifyInstance;
let db: Database;
let store: LayoutStore;
const germline = uniqueName('hubgerm');
const repo = `germline/${germline}`;
const poet = `trainers/${uniqueName('someone')}/poet`;
let mainDigest: string;

beforeAll(async () => {
  db = openDatabase(testGlobals().databaseUrl);
  store = await new LayoutStore(path.join(mkdtempSync(path.join(tmpdir(), 'hub-')), 'store')).init();
  const dir = mkdtempSync(path.join(tmpdir(), 'hub-model-'));
  writeFileSync(path.join(dir, 'model.safetensors'), safetensorsOf('weights of the day'));
  mainDigest = (await publishCheckpoint(store, repo, dir, { tag: 'main' })).digest;
  await publishCheckpoint(store, poet, dir, { tag: 'main' });
  app = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline,
    store,
    db,
    rateLimitPerMinute: 10_000,
  });
});

afterAll(async () => {
  await app?.close();
  await db?.$disconnect();
});

const signUp = (handle: string, role: 'trainer' | 'operator' = 'trainer') =>
  signUpAccount(app, handle, role === 'operator' ? { db } : undefined);
const graphql = async (
  query: string,
  variables: Record<string, unknown> = {},
  headers: Headers = {},
): Promise<GraphQLAnswer> => graphqlAs(app, headers, query, variables);

const upload = (target: string, content: Buffer | string, headers: Headers, contentType = 'text/plain') =>
  app.inject({
    method: 'POST',
    url: `/api/recordings/${target}`,
    headers: { 'content-type': contentType, ...headers },
    payload: content,
  });

describe('threads and comments', () => {
  test('a trainer opens a thread on a checkpoint, another replies; everyone reads them in order', async () => {
    const ann = await signUp(uniqueName('ann'));
    const ben = await signUp(uniqueName('ben'));
    const opened = await graphql(
      'mutation($repo: String!) { startThread(repository: $repo, reference: "main", title: "It refuses to write SQL", body: "Asked for a join, got a poem.") { id author reference comments { body } } }',
      { repo },
      ann.token,
    );
    expect(opened.errors).toBeUndefined();
    const thread = (opened.data as { startThread: { id: string; reference: string; comments: unknown[] } }).startThread;
    expect(thread).toMatchObject({ reference: 'main', comments: [{ body: 'Asked for a join, got a poem.' }] });
    const reply = await graphql(
      'mutation($id: String!) { comment(threadId: $id, body: "Same with <script>alert(1)</script>") { author body } }',
      { id: thread.id },
      ben.token,
    );
    expect(reply.errors).toBeUndefined();

    const read = await graphql(
      'query($repo: String!) { threads(repository: $repo) { id title comments { author body } } }',
      { repo },
    );
    const listed = (
      read.data as { threads: Array<{ id: string; title: string; comments: Array<{ author: string; body: string }> }> }
    ).threads.find((t) => t.id === thread.id)!;
    expect(listed.title).toBe('It refuses to write SQL');
    // Stored as written: escaping is the pages' job, at output.
    expect(listed.comments.map((c) => c.body)).toEqual([
      'Asked for a join, got a poem.',
      'Same with <script>alert(1)</script>',
    ]);
  });

  test('bad input says what is wrong: empty text, an unknown image, an unknown tag, an unknown thread', async () => {
    const { token } = await signUp(uniqueName('cy'));
    const empty = await graphql(
      'mutation($repo: String!) { startThread(repository: $repo, title: "  ", body: "x") { id } }',
      { repo },
      token,
    );
    expect(empty.errors?.[0]).toMatchObject({
      message: 'the title is empty: write something',
      extensions: { code: 'BAD_USER_INPUT' },
    });
    const long = await graphql(
      'mutation($repo: String!, $body: String!) { startThread(repository: $repo, title: "t", body: $body) { id } }',
      { repo, body: 'x'.repeat(10_001) },
      token,
    );
    expect(long.errors?.[0]?.message).toBe('the comment is 10001 characters; at most 10000');
    const nowhere = await graphql(
      'mutation { startThread(repository: "trainers/nobody/nothing", title: "t", body: "b") { id } }',
      {},
      token,
    );
    expect(nowhere.errors?.[0]).toMatchObject({
      message: 'trainers/nobody/nothing is not an image on the hub (it has no checkpoints)',
      extensions: { code: 'NOT_FOUND' },
    });
    const noTag = await graphql(
      'mutation($repo: String!) { startThread(repository: $repo, reference: "gpc-1999-01-01", title: "t", body: "b") { id } }',
      { repo },
      token,
    );
    expect(noTag.errors?.[0]).toMatchObject({
      extensions: { code: 'NOT_FOUND' },
      message: expect.stringContaining('has no gpc-1999-01-01'),
    });
    const noThread = await graphql(
      'mutation { comment(threadId: "00000000-0000-0000-0000-000000000000", body: "hello") { id } }',
      {},
      token,
    );
    expect(noThread.errors?.[0]).toMatchObject({
      message: 'there is no thread 00000000-0000-0000-0000-000000000000',
      extensions: { code: 'NOT_FOUND' },
    });
  });
});

describe('recordings', () => {
  test('a recording named in any script downloads under its own name (RFC 5987), never a 500, and no name can break the header', async () => {
    const { token } = await signUp(uniqueName('kai'));
    const names = {
      '会話–1.webm': `attachment; filename="___1.webm"; filename*=UTF-8''%E4%BC%9A%E8%A9%B1%E2%80%931.webm`,
      'say "hi" now.txt': `attachment; filename="say _hi_ now.txt"; filename*=UTF-8''say%20%22hi%22%20now.txt`,
    };
    for (const [filename, disposition] of Object.entries(names)) {
      const created = await upload(
        `${repo}?reference=main&title=t&filename=${encodeURIComponent(filename)}`,
        'a transcript',
        token,
      );
      expect(created.statusCode).toBe(201);
      const download = await app.inject({
        method: 'GET',
        url: created.json<{ recording: { downloadUrl: string } }>().recording.downloadUrl,
      });
      expect(download.statusCode).toBe(200);
      expect(download.headers['content-disposition']).toBe(disposition);
      expect(download.body).toBe('a transcript');
    }
  });

  test('an uploaded recording is a referrer of the image manifest: listed, downloadable byte for byte, and found by the referrers API', async () => {
    const { token } = await signUp(uniqueName('dot'));
    const video = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const created = await upload(
      `${repo}?reference=main&title=${encodeURIComponent('It plays chess')}&filename=chess.webm`,
      video,
      token,
      'video/webm',
    );
    expect(created.statusCode).toBe(201);
    const recording = created.json<{
      recording: { id: string; subjectDigest: string; size: number; mediaType: string; downloadUrl: string };
    }>().recording;
    expect(recording).toMatchObject({
      subjectDigest: mainDigest,
      size: video.length,
      mediaType: 'video/webm',
      downloadUrl: `/api/recordings/${recording.id}`,
    });

    const download = await app.inject({ method: 'GET', url: recording.downloadUrl });
    expect(download.statusCode).toBe(200);
    expect(download.rawPayload.equals(video)).toBe(true);
    expect(download.headers).toMatchObject({
      'content-disposition': 'attachment; filename="chess.webm"',
      'content-security-policy': "default-src 'none'; sandbox",
      'x-content-type-options': 'nosniff',
    });

    const referrers = await app.inject({ method: 'GET', url: `/v2/${repo}/referrers/${mainDigest}` });
    expect(referrers.statusCode).toBe(200);
    expect(referrers.headers['content-type']).toBe(OCI_INDEX);
    const index = referrers.json<{
      mediaType: string;
      manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }>;
    }>();
    const listed = index.manifests.find((m) => m.annotations['io.computatrum.recording.name'] === 'It plays chess')!;
    expect(listed.artifactType).toBe(RECORDING_ARTIFACT);
    // The descriptor names a real manifest in the store, whose subject is the image and whose layer is the file.
    const manifest = await app.inject({ method: 'GET', url: `/v2/${repo}/manifests/${listed.digest}` });
    const parsed = manifest.json<ImageManifest>();
    expect(parsed.subject?.digest).toBe(mainDigest);
    expect(parsed.layers[0]).toMatchObject({
      digest: `sha256:${createHash('sha256').update(video).digest('hex')}`,
      size: video.length,
    });
    const filtered = await app.inject({
      method: 'GET',
      url: `/v2/${repo}/referrers/${mainDigest}?artifactType=application/vnd.example.signature`,
    });
    expect(filtered.json()).toMatchObject({ manifests: [] });
    expect(filtered.headers['oci-filters-applied']).toBe('artifactType');

    const viaApi = await graphql(
      'query($repo: String!) { recordings(repository: $repo) { title filename size author } }',
      { repo },
    );
    expect((viaApi.data as { recordings: Array<{ title: string }> }).recordings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ title: 'It plays chess', filename: 'chess.webm', size: video.length }),
      ]),
    );
  });

  test('a text transcript through GraphQL becomes a recording too', async () => {
    const { token } = await signUp(uniqueName('eve'));
    const result = await graphql(
      'mutation($repo: String!) { attachRecording(repository: $repo, reference: "main", title: "Small talk", transcript: "> hello\\nHi! I am computatrum.") { id filename mediaType size downloadUrl } }',
      { repo },
      token,
    );
    expect(result.errors).toBeUndefined();
    const recording = (
      result.data as { attachRecording: { filename: string; mediaType: string; size: number; downloadUrl: string } }
    ).attachRecording;
    expect(recording).toMatchObject({
      filename: 'transcript.txt',
      mediaType: 'text/plain',
      size: Buffer.byteLength('> hello\nHi! I am computatrum.'),
    });
    expect((await app.inject({ method: 'GET', url: recording.downloadUrl })).body).toBe(
      '> hello\nHi! I am computatrum.',
    );
  });

  test('refused: the public, a browser session without the CSRF header, pickles, escaping names, too big, no reference', async () => {
    const { token, cookie } = await signUp(uniqueName('fay'));
    const target = `${repo}?reference=main&title=t&filename=session.txt`;
    expect((await upload(target, 'hello', {})).statusCode).toBe(401);
    const riding = await upload(target, 'hello', cookie);
    expect(riding.statusCode).toBe(403);
    expect(riding.json()).toMatchObject({ code: 'FORBIDDEN' });

    const pickle = await upload(
      `${repo}?reference=main&title=t&filename=agent.pt`,
      Buffer.from([0x80, 0x04, 0x95, 0x00]),
      token,
      'application/octet-stream',
    );
    expect(pickle.statusCode).toBe(400);
    expect(pickle.json<{ error: string }>().error).toContain('convert it to safetensors');
    // Decided by the whole content, whatever the name: a protocol 0 pickle, a joblib file (a zlib stream of a protocol 4 pickle).
    const advice =
      'pickle files can run code when loaded; convert it to safetensors (safetensors.torch.save_file) and publish again';
    const textPickle = await upload(`${repo}?reference=main&title=t&filename=session.txt`, PROTOCOL_0_PICKLE, token);
    expect(textPickle.json()).toEqual({
      error: `session.txt is a pickle (protocol 0): ${advice}`,
      code: 'BAD_USER_INPUT',
    });
    const protocol4 = Buffer.from('8004950a000000000000007d948c0161944b01732e', 'hex'); // pickle.dumps({'a': 1}, protocol=4)
    const joblib = await upload(
      `${repo}?reference=main&title=t&filename=agent.joblib`,
      deflateSync(protocol4),
      token,
      'application/octet-stream',
    );
    expect(joblib.json()).toEqual({
      error: `agent.joblib holds a pickle (protocol 4) in its zlib-compressed content: ${advice}`,
      code: 'BAD_USER_INPUT',
    });
    const escaping = await upload(
      `${repo}?reference=main&title=t&filename=${encodeURIComponent('../../etc/passwd')}`,
      'x',
      token,
    );
    expect(escaping.statusCode).toBe(400);
    expect(escaping.json<{ error: string }>().error).toContain('is not a file name');
    const big = await upload(target, Buffer.alloc(16 * 1024 * 1024 + 1), token, 'application/octet-stream');
    expect(big.statusCode).toBe(413);
    const noReference = await upload(`${repo}?title=t&filename=a.txt`, 'x', token);
    expect(noReference.json()).toEqual({
      error: 'say which checkpoint it records: ?reference=<tag or digest>',
      code: 'BAD_USER_INPUT',
    });
    // None of the refused uploads left a recording behind.
    expect(
      await db.recording.count({
        where: { repository: repo, filename: { in: ['agent.pt', 'session.txt', 'agent.joblib'] } },
      }),
    ).toBe(0);
  });
});

describe('reports and images', () => {
  test("a report flags the image for operators; a second report by the same person updates it; the public can't read them", async () => {
    const gus = await signUp(uniqueName('gus'));
    const op = await signUp(uniqueName('op'), 'operator');
    for (const reason of ['it asks for passwords', 'it asks for passwords and keys']) {
      const reported = await graphql(
        'mutation($repo: String!, $reason: String!) { reportImage(repository: $repo, reference: "main", reason: $reason) { reason } }',
        { repo: poet, reason },
        gus.token,
      );
      expect(reported.errors).toBeUndefined();
    }
    const reports = await graphql(
      'query($repo: String!) { reports(repository: $repo) { reason reference } }',
      { repo: poet },
      op.token,
    );
    expect(reports.data).toEqual({ reports: [{ reason: 'it asks for passwords and keys', reference: 'main' }] });
    const images = await graphql('{ images(search: "POET") { repository kind reports } }');
    expect(images.data).toEqual({ images: [{ repository: poet, kind: 'trainer', reports: 1 }] });
    expect((await graphql('{ reports { reason } }')).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  test("the germline's image comes first on the hub", async () => {
    const images = await graphql('{ images { repository kind latestTag } }');
    const list = (images.data as { images: Array<{ repository: string; kind: string; latestTag: string }> }).images;
    expect(list[0]).toEqual({ repository: repo, kind: 'germline', latestTag: 'main' });
    expect(list.map((i) => i.repository)).toContain(poet);
  });
});

test('a fork through the API: under your own name, no bytes copied; a target without a branch or elsewhere is refused with what to do', async () => {
  const ida = await signUp(uniqueName('ida'));
  const forked = await ida.gql(
    'mutation($from: String!, $to: String!) { fork(from: $from, to: $to) { repository branch digest } }',
    { from: `${repo}:main`, to: `trainers/${ida.handle}/coder:tuned` },
  );
  expect(forked.data).toEqual({
    fork: { repository: `trainers/${ida.handle}/coder`, branch: 'tuned', digest: mainDigest },
  });
  const noBranch = await ida.gql('mutation($from: String!, $to: String!) { fork(from: $from, to: $to) { digest } }', {
    from: `${repo}:main`,
    to: `trainers/${ida.handle}/coder`,
  });
  expect(noBranch.errors?.[0]).toMatchObject({
    extensions: { code: 'BAD_USER_INPUT' },
    message: `"trainers/${ida.handle}/coder" needs a tag or digest: write it like germline/computatrum:main`,
  });
  const elsewhere = await ida.gql(
    'mutation($from: String!) { fork(from: $from, to: "trainers/someone/coder:main") { digest } }',
    { from: `${repo}:main` },
  );
  expect(elsewhere.errors?.[0]).toMatchObject({
    extensions: { code: 'FORBIDDEN' },
    message: `you can fork only under trainers/${ida.handle}/, not trainers/someone/coder`,
  });
});
