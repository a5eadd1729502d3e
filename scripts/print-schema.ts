// npm run schema: prints the GraphQL API's schema, sorted, to schema.graphql at the repository root,
// the committed copy that test/unit/graphql-schema.test.ts holds the code to.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { buildSchema } from '../platform/graphql';

export const SCHEMA_FILE = path.join(__dirname, '..', 'schema.graphql');

/** The schema as committed: sorted, printed, with a final newline. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(buildSchema()))}\n`;
}

if (require.main === module) {
  writeFileSync(SCHEMA_FILE, printedSchema());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE) || SCHEMA_FILE}`);
}
