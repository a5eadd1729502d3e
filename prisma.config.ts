import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';

// Prisma's Rust engines cannot be downloaded on our machines, so the CLI runs its JS engine over
// the pg driver adapter and the client uses the query compiler (engineType "client").
// Migrations are authored with `prisma migrate diff` schema to schema (npm run db:migration) and
// applied by postgrator at `computatrum up` (db/migrate.ts).
//
// The schema's datasource reads DATABASE_URL; `prisma generate` needs it set but never connects.
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPg({ connectionString: process.env.DATABASE_URL }),
});
