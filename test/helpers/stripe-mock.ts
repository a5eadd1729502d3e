// stripe-mock (Stripe's own mock of its API, built by `npm run tools`) on loopback, for the tests
// that create Checkout Sessions; it goes away with the test file.
import { spawn } from 'node:child_process';
import { loadConfig } from '../../worker/config';
import { requireTool, STRIPE_MOCK } from '../../worker/tools';
import { eventually } from './eventually';
import { freePort } from './registry';

export async function startStripeMock(): Promise<{ url: string; stop: () => Promise<void> }> {
  const binary = requireTool(STRIPE_MOCK, loadConfig().toolsDir);
  const port = await freePort();
  // Its HTTPS listener too gets a free port: left at 12112, two test files starting it at once collide.
  const child = spawn(binary, ['-http-addr', `127.0.0.1:${port}`, '-https-addr', `127.0.0.1:${await freePort()}`], { stdio: ['ignore', 'ignore', 'pipe'] });
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
