// Applies the SQL migrations in prisma/migrations (authored by `prisma migrate diff`, see
// prisma/new-migration.ts) with umzug, all in one PostgreSQL transaction under an advisory lock:
// two processes starting at once never race, and a failing migration leaves nothing half-applied.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { Umzug, type UmzugStorage } from 'umzug';
import { projectPath } from '../runtime/paths';

export const MIGRATIONS_DIR = projectPath('prisma', 'migrations');
const HISTORY_TABLE = '_computatrum_migrations';
/** Arbitrary constant shared by every computatrum process: "migrations are running". */
const MIGRATION_LOCK = 727_001;

interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export function migrationFiles(dir = MIGRATIONS_DIR): MigrationFile[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

function historyStorage(client: Client, files: MigrationFile[]): UmzugStorage {
  const checksums = new Map(files.map((f) => [f.name, f.checksum]));
  return {
    async executed() {
      const { rows } = await client.query<{ name: string; checksum: string }>(
        `SELECT name, checksum FROM ${HISTORY_TABLE} ORDER BY name`,
      );
      for (const row of rows) {
        const expected = checksums.get(row.name);
        if (expected === undefined) {
          throw new Error(
            `the database has migration ${row.name}, which this version of computatrum does not know: ` +
              `run a computatrum at least as new as the one that applied it`,
          );
        }
        if (expected !== row.checksum) {
          throw new Error(
            `migration ${row.name} was changed after it was applied: restore the original file ` +
              `and put the change in a new migration (npm run db:migration -- <name>)`,
          );
        }
      }
      return rows.map((r) => r.name);
    },
    async logMigration({ name }) {
      await client.query(`INSERT INTO ${HISTORY_TABLE} (name, checksum) VALUES ($1, $2)`, [name, checksums.get(name)]);
    },
    async unlogMigration({ name }) {
      await client.query(`DELETE FROM ${HISTORY_TABLE} WHERE name = $1`, [name]);
    },
  };
}

/** Brings the database to the newest schema. Returns the names of the migrations it applied. */
export async function migrateDatabase(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = migrationFiles(dir);
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE} (
         name text PRIMARY KEY,
         checksum text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const umzug = new Umzug({
      migrations: files.map((file) => ({
        name: file.name,
        up: async () => {
          await client.query(file.sql);
        },
      })),
      storage: historyStorage(client, files),
      logger: undefined,
    });
    const applied = await umzug.up();
    await client.query('COMMIT');
    return applied.map((m) => m.name);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}
