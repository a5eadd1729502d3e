// npm run db:migration -- <name>
// Writes prisma/migrations/<NNNN>_<name>/migration.sql as the diff from the schema of the newest
// migration to prisma/schema.prisma (`prisma migrate diff`, schema to schema: no database and no
// Rust schema engine needed), and stores the schema beside it for the next diff.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MIGRATIONS_DIR, migrationFiles } from '../db/migrate';

const name = process.argv[2];
if (!name || !/^[a-z][a-z0-9_]*$/.test(name)) {
  console.error('usage: npm run db:migration -- <name>   (lowercase letters, digits and underscores)');
  process.exit(2);
}
const schema = path.resolve(__dirname, 'schema.prisma');
const previous = migrationFiles().at(-1);
const from = previous
  ? ['--from-schema-datamodel', path.join(MIGRATIONS_DIR, previous.name, 'schema.prisma')]
  : ['--from-empty'];
const sql = execFileSync('npx', ['prisma', 'migrate', 'diff', ...from, '--to-schema-datamodel', schema, '--script'], {
  encoding: 'utf8',
});
if (!/\b(CREATE|ALTER|DROP)\b/.test(sql)) {
  console.error('prisma/schema.prisma has no changes since the newest migration; nothing written');
  process.exit(1);
}
const number = String(migrationFiles().length + 1).padStart(4, '0');
const dir = path.join(MIGRATIONS_DIR, `${number}_${name}`);
if (existsSync(dir)) throw new Error(`${dir} already exists`);
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'migration.sql'), sql);
copyFileSync(schema, path.join(dir, 'schema.prisma'));
console.log(`wrote ${path.relative(process.cwd(), dir)}/migration.sql`);
