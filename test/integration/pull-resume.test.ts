// `computatrum pull`'s resume, measured by the serving side: a proxy in front of the platform's /v2/
// counts the bytes it really wrote for each request and records its Range header, cuts the first
// download of the big file after a fixed number of body bytes, and the test checks from those
// counts (not from what pull reports about itself) that the second attempt asked only for the rest.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openDatabase, type Database } from '../../db/prisma';
import { publishCheckpoint, type Published } from '../../store/checkpoint';
import { LayoutStore } from '../../store/layout';
import { pullCheckpoint } from '../../store/pull';
import { buildPlatform } from '../../platform/server';
import { testGlobals } from '../setup/globals';
import { uniqueName } from '../helpers/temporal';

const BIG = 'weights.safetensors';
const SMALL = 'config.json';
/** Tensor bytes of the big file, behind its safetensors header. */
const TENSOR_BYTES = 3 * 1024 * 1024 + 12_345;
/** Body bytes of the big blob the proxy writes before it cuts the connection: not a chunk boundary. */
const CUT_AT = 1_234_567;

let db: Database;
let platform: FastifyInstance;
let platformUrl: string;
let source: string;
let published: Published;
let repo: string;
let bigSize: number;

/** A valid safetensors file of one U8 tensor of random bytes (the store refuses anything else named .safetensors). */
function safetensorsOf(bytes: number): Buffer {
  let header = JSON.stringify({ weight: { dtype: 'U8', shape: [bytes], data_offsets: [0, bytes] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, Buffer.from(header), randomBytes(bytes)]);
}

/** One request as the proxy served it: what was asked, what was answered, and the body bytes it wrote. */
interface Served {
  path: string;
  range: string | undefined;
  status: number;
  contentRange: string | undefined;
  bytes: number;
  cut: boolean;
}

/**
 * A proxy in front of the platform that records every request it serves with the body bytes it
 * actually wrote to the socket. `cutBlob` names a blob path whose next response is cut after
 * `cutAfter` body bytes (the socket is destroyed once those bytes are flushed to it).
 */
async function countingProxy(upstream: string) {
  const served: Served[] = [];
  const cut: { path?: string; after: number } = { after: 0 };
  const server = http.createServer((request, response) => {
    const record: Served = {
      path: request.url!,
      range: request.headers.range,
      status: 0,
      contentRange: undefined,
      bytes: 0,
      cut: false,
    };
    served.push(record);
    const forward = http.request(
      `${upstream}${request.url}`,
      { method: request.method, headers: { ...request.headers, host: new URL(upstream).host } },
      (answer) => {
        record.status = answer.statusCode!;
        record.contentRange = answer.headers['content-range'];
        response.writeHead(answer.statusCode!, answer.headers);
        const cutHere = cut.path === request.url;
        if (cutHere) cut.path = undefined; // once
        answer.on('data', (chunk: Buffer) => {
          if (record.cut) return;
          if (cutHere && record.bytes + chunk.length >= cut.after) {
            const part = chunk.subarray(0, cut.after - record.bytes);
            record.bytes += part.length;
            record.cut = true;
            answer.destroy();
            response.write(part, () => response.socket?.destroy());
            return;
          }
          record.bytes += chunk.length;
          response.write(chunk);
        });
        answer.on('end', () => response.end());
      },
    );
    request.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    cutNext(blobPath: string, after: number) {
      cut.path = blobPath;
      cut.after = after;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

beforeAll(async () => {
  const store = await new LayoutStore(mkdtempSync(path.join(tmpdir(), 'resume-store-'))).init();
  source = mkdtempSync(path.join(tmpdir(), 'resume-src-'));
  const big = safetensorsOf(TENSOR_BYTES);
  bigSize = big.length;
  writeFileSync(path.join(source, BIG), big);
  writeFileSync(path.join(source, SMALL), JSON.stringify({ layers: 2, heads: 4 }));
  repo = `germline/${uniqueName('resume')}`;
  published = await publishCheckpoint(store, repo, source, { tag: 'main' });
  db = openDatabase(testGlobals().databaseUrl);
  platform = await buildPlatform({ logger: pino({ level: 'silent' }), checks: [], germline: 'resume', store, db });
  await platform.listen({ host: '127.0.0.1', port: 0 });
  platformUrl = `http://127.0.0.1:${(platform.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await platform?.close();
  await db?.$disconnect();
});

const blobPath = (file: string) =>
  `/v2/${repo}/blobs/${published.manifest.layers.find((l) => l.annotations?.['org.cncf.model.filepath'] === file)!.digest}`;

test('a pull cut mid-blob resumes with Range from the bytes it kept: the server sends the file once, plus only what the cut lost', async () => {
  const proxy = await countingProxy(platformUrl);
  const dir = mkdtempSync(path.join(tmpdir(), 'resume-pull-'));
  const big = blobPath(BIG);
  const small = blobPath(SMALL);
  const smallSize = readFileSync(path.join(source, SMALL)).length;
  try {
    proxy.cutNext(big, CUT_AT);
    await expect(pullCheckpoint({ baseUrl: proxy.url, repo, reference: 'main', dir, concurrency: 1 })).rejects.toThrow(
      `the download of ${BIG} was interrupted`,
    );
    const first = proxy.served.filter((s) => s.path === big);
    expect(first).toEqual([
      { path: big, range: undefined, status: 200, contentRange: undefined, bytes: CUT_AT, cut: true },
    ]);
    expect(existsSync(path.join(dir, BIG))).toBe(false);
    const kept = readFileSync(path.join(dir, `${BIG}.partial`)).length;
    // What the client kept is at most what the server sent before the cut (bytes in flight may be lost with the connection).
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(CUT_AT);
    const smallFirst = proxy.served.filter((s) => s.path === small);

    const mark = proxy.served.length;
    const result = await pullCheckpoint({ baseUrl: proxy.url, repo, reference: 'main', dir, concurrency: 1 });
    const second = proxy.served.slice(mark);
    const bigSecond = second.filter((s) => s.path === big);
    // One request, for exactly the missing bytes, answered 206 with the matching Content-Range.
    expect(bigSecond).toEqual([
      {
        path: big,
        range: `bytes=${kept}-`,
        status: 206,
        contentRange: `bytes ${kept}-${bigSize - 1}/${bigSize}`,
        bytes: bigSize - kept,
        cut: false,
      },
    ]);
    // Over both attempts the server sent the file once, plus what the cut lost on the way.
    const totalBig = [...first, ...bigSecond].reduce((sum, s) => sum + s.bytes, 0);
    expect(totalBig).toBe(bigSize + (CUT_AT - kept));

    // The small file: downloaded whole once, in whichever attempt reached it; a file already verified is not asked for again.
    const smallSecond = second.filter((s) => s.path === small);
    const smallServed = [...smallFirst, ...smallSecond];
    expect(smallServed.filter((s) => s.status === 200).map((s) => s.bytes)).toEqual([smallSize]);
    expect(smallServed.every((s) => s.range === undefined)).toBe(true);

    // What pull reports agrees with what the server counted in that attempt.
    const servedSecond = second.filter((s) => s.path.includes('/blobs/')).reduce((sum, s) => sum + s.bytes, 0);
    expect(result).toEqual({ digest: published.digest, files: 2, size: published.size, received: servedSecond });
    // Byte-identical and verified: final names only, no partial file left.
    expect(readFileSync(path.join(dir, BIG)).equals(readFileSync(path.join(source, BIG)))).toBe(true);
    expect(readFileSync(path.join(dir, SMALL)).equals(readFileSync(path.join(source, SMALL)))).toBe(true);
    expect(existsSync(path.join(dir, `${BIG}.partial`))).toBe(false);

    // A third pull into the same folder is answered from the disk: the server sends no blob byte.
    const third = proxy.served.length;
    expect((await pullCheckpoint({ baseUrl: proxy.url, repo, reference: 'main', dir, concurrency: 1 })).received).toBe(
      0,
    );
    expect(proxy.served.slice(third).filter((s) => s.path.includes('/blobs/'))).toEqual([]);
  } finally {
    await proxy.close();
  }
});
