// A closed-loop HTTP load generator in its own process (started with child_process.fork), so the
// client never shares an event loop with the server it measures. It waits for jobs over IPC: each
// job keeps `connections` keep-alive connections busy with the same request for a warm-up, then for
// the measured duration, and answers with the number of requests, the errors and every latency.
import http from 'node:http';

export interface LoadJob {
  url: string;
  /** The request body, sent as application/json with POST. */
  body: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** An answer counts as a success when its status is 200 and its body starts with this. */
  expectPrefix: string;
}

export interface LoadResult {
  /** Requests started in the measured window (and answered). */
  requests: number;
  /** Every request answered, the warm-up's too. */
  total: number;
  errors: number;
  /** The first error seen, for the report. */
  firstError?: string;
  /** From the start of the measured window until its last request was answered. */
  seconds: number;
  /** Milliseconds, one per request of the measured window. */
  latenciesMs: number[];
}

function post(agent: http.Agent, url: URL, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const url = new URL(job.url);
  const body = Buffer.from(job.body);
  const latenciesMs: number[] = [];
  let errors = 0;
  let total = 0;
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
          const answer = await post(agent, url, body);
          ok = answer.status === 200 && answer.body.startsWith(job.expectPrefix) && !answer.body.includes('"errors"');
          if (!ok) firstError ??= `${answer.status} ${answer.body.slice(0, 200)}`;
        } catch (error) {
          ok = false;
          firstError ??= (error as Error).message;
        }
        total++;
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
    total,
    errors,
    seconds,
    latenciesMs,
    ...(firstError ? { firstError } : {}),
  };
}

if (require.main === module) {
  if (!process.send) throw new Error('bench/support/load.ts runs as a forked child (it takes its jobs over IPC)');
  process.on('message', (job: LoadJob) => {
    runLoad(job).then(
      (result) => process.send!(result),
      (error: unknown) =>
        process.send!({
          requests: 0,
          total: 0,
          errors: 1,
          firstError: String(error),
          seconds: 0,
          latenciesMs: [],
        } satisfies LoadResult),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
