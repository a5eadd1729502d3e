// The committed schema.graphql is the GraphQL API's schema as the code builds it: a change to the
// schema shows in review as a change to that file. No server: the schema needs no dependencies to build.
import { readFileSync } from 'node:fs';
import { printedSchema, SCHEMA_FILE } from '../../scripts/print-schema';

test('schema.graphql is the schema the code builds', () => {
  const committed = readFileSync(SCHEMA_FILE, 'utf8');
  const built = printedSchema();
  if (committed === built) return;
  const [was, is] = [committed.split('\n'), built.split('\n')];
  const line = was.findIndex((text, index) => text !== is[index]);
  const at = line === -1 ? was.length : line;
  throw new Error(
    `schema.graphql differs from the schema platform/graphql/ builds (line ${at + 1}: committed ${JSON.stringify(was[at] ?? '')}, built ${JSON.stringify(is[at] ?? '')}): ` +
      'run `npm run schema` and commit schema.graphql',
  );
});
