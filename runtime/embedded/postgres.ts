// The embedded PostgreSQL: PGlite (Postgres compiled to WASM) persisted to a folder and served on
// loopback with the real wire protocol, so Prisma, pg and psql talk to it like any PostgreSQL.
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { assertPortFree } from './temporal-dev-server';

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  host?: string;
}): Promise<EmbeddedPostgres> {
  const host = options.host ?? '127.0.0.1';
  await assertPortFree(options.port, 'embedded PostgreSQL (PGLITE_PORT)');
  mkdirSync(options.dataDir, { recursive: true });
  const db = await PGlite.create(options.dataDir);
  // PGlite is single-session inside; the socket server queues queries from many connections.
  // Its default of one connection would drop a pool's second connection.
  const server = new PGLiteSocketServer({ db, port: options.port, host, maxConnections: 64 });
  await server.start();
  return {
    url: `postgres://postgres@${host}:${options.port}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
