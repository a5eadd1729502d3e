// Serves a layout store through the platform's /v2/ in its own process, as in production, so a
// benchmark's client never shares an event loop with the server it measures. Prints the port.
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { Database } from '../../db/prisma';
import { LayoutStore } from '../../store/layout';
import { buildPlatform } from '../../platform/server';

async function main(): Promise<void> {
  const store = await new LayoutStore(process.argv[2]!).init();
  const platform = await buildPlatform({
    logger: pino({ level: 'silent' }),
    checks: [],
    germline: 'bench',
    store,
    db: {} as Database,
  });
  await platform.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${(platform.server.address() as AddressInfo).port}\n`);
  process.on('SIGTERM', () => void platform.close().then(() => process.exit(0)));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
