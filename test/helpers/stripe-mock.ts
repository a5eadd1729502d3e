// stripe-mock (Stripe's own mock of its API, built by `npm run tools`) on loopback, for the tests
// that create Checkout Sessions; it goes away with the test file.
import { spawn } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import { loadConfig } from '../../runtime/config';
import { requireTool, STRIPE_MOCK } from '../../runtime/tools';
import { eventually } from './eventually';
import { freePort } from './registry';

export async function startStripeMock(): Promise<{ url: string; stop: () => Promise<void> }> {
  const binary = requireTool(STRIPE_MOCK, loadConfig().toolsDir);
  const port = await freePort();
  // Its HTTPS listener too gets a free port: left at 12112, two test files starting it at once collide.
  const child = spawn(binary, ['-http-addr', `127.0.0.1:${port}`, '-https-addr', `127.0.0.1:${await freePort()}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr = (stderr + data.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`stripe-mock exited (${child.exitCode}): ${stderr}`);
      const response = await fetch(`${url}/v1/balance`, { headers: { authorization: 'Bearer sk_test_mock' } });
      return response.ok ? true : undefined;
    }, `stripe-mock at ${url}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

export interface SentRequest {
  path: string;
  idempotencyKey?: string;
}

/** The requests `client` sends from now on (path and idempotency key), in order. */
export function recordRequests(client: Stripe): SentRequest[] {
  const sent: SentRequest[] = [];
  client.on('request', (request: { path: string; idempotency_key?: string }) =>
    sent.push({ path: request.path, ...(request.idempotency_key ? { idempotencyKey: request.idempotency_key } : {}) }),
  );
  return sent;
}

/** A `checkout.session.completed` event of a paid session, as Stripe sends it. */
export function paidCheckoutEvent(id: string, amount: number, metadata: Record<string, string>): string {
  return JSON.stringify({
    id,
    object: 'event',
    type: 'checkout.session.completed',
    api_version: '2025-01-01',
    created: 1_764_000_000,
    data: {
      object: {
        id: `cs_${id}`,
        object: 'checkout.session',
        amount_total: amount,
        currency: 'usd',
        payment_status: 'paid',
        metadata,
      },
    },
  });
}

/** Delivers `payload` to the app's webhook, signed with `secret` as Stripe signs (or with the `signature` given). */
export function deliverWebhook(
  app: FastifyInstance,
  client: Stripe,
  secret: string,
  payload: string,
  signature = client.webhooks.generateTestHeaderString({ payload, secret }),
) {
  return app.inject({
    method: 'POST',
    url: '/stripe/webhook',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    payload,
  });
}
