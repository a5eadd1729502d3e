// The GraphQL cost limit multiplies by list sizes: aliases and nesting of lists cost what they make
// the database do, and every operation the CLI sends still passes. No server: validation only.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type GraphQLError, parse, specifiedRules, validate } from 'graphql';
import { aliasLimit, costLimit, depthLimit, fieldLimit, LIMITS, operationCosts } from '../../platform/graphql/limits';
import { buildSchema } from '../../platform/graphql/schema';

const schema = buildSchema();
const errorsOf = (query: string): readonly GraphQLError[] =>
  validate(schema, parse(query), [...specifiedRules, depthLimit, aliasLimit, fieldLimit, costLimit]);
const codes = (query: string) => errorsOf(query).map((e) => e.extensions.code ?? e.message);

const cost = (query: string) => operationCosts(schema, parse(query))[0];
const NESTED = 'images { threads { comments { body } } }';

test('15 aliases of images { threads { comments } } are refused with QUERY_TOO_COMPLEX, saying what to do; one passes', () => {
  expect(codes(`{ ${NESTED} }`)).toEqual([]);
  const aliased = `{ ${Array.from({ length: 15 }, (_, i) => `a${i}: ${NESTED}`).join(' ')} }`;
  const errors = errorsOf(aliased);
  expect(errors).toHaveLength(1);
  expect(errors[0]!.extensions.code).toBe('QUERY_TOO_COMPLEX');
  expect(errors[0]!.message).toBe(
    `too costly: it may fetch more than ${LIMITS.cost} objects, as each list multiplies what is below it by its limit or page size; ask for less, or split it into several operations`,
  );
  expect(codes(`{ a: ${NESTED} b: ${NESTED} }`)).toEqual(['QUERY_TOO_COMPLEX']);
});

test('a list multiplies what is below it: by a literal limit, its default, or (a variable) its page size', () => {
  // Each object counts 1; a list of files (not paged) counts as 20.
  expect(cost('{ dailyCheckpoints(limit: 3) { tag files { path } } }')).toBe(3 * (1 + 20));
  expect(cost('{ dailyCheckpoints { tag files { path } } }')).toBe(30 * 21);
  expect(cost('query($n: Int) { dailyCheckpoints(limit: $n) { tag } }')).toBe(365);
  // An image's threads count as their page (100), each thread's comments as 20, the images as 50.
  expect(cost(`{ ${NESTED} }`)).toBe(50 * (1 + 100 * (1 + 20)));
  // Scalars and introspection count nothing.
  expect(cost('{ breeds { title } __schema { types { name fields { name } } } }')).toBe(50);
});

test('nesting through fragments multiplies the same', () => {
  const query = `{ images { ...I } }
    fragment I on Image { threads { ...T } }
    fragment T on Thread { comments { ... on Comment { body } } }`;
  expect(cost(query)).toBe(cost(`{ ${NESTED} }`));
});

test('what a page shows passes: one image list with its threads and recordings, one thread list with comments', () => {
  expect(codes('{ images { repository threads { title comments { body author } } recordings { title } } }')).toEqual(
    [],
  );
  expect(codes('{ threads(repository: "germline/g") { title comments { author body } } }')).toEqual([]);
  expect(codes('{ __schema { types { name fields { name args { name type { name ofType { name } } } } } } }')).toEqual(
    [],
  );
});

/** Every GraphQL document written as a literal in the CLI's source (quoted or a template without `${`). */
function cliDocuments(): string[] {
  const dir = path.join(__dirname, '..', '..', 'cli');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const literal =
    /'((?:query|mutation)\b[^']*|\{ [a-zA-Z][^']*\})'|`((?:query|mutation)\b[^`$]*|\{ [a-zA-Z][^`$]*\})`/g;
  return files.flatMap((file) =>
    [...readFileSync(path.join(dir, file), 'utf8').matchAll(literal)].map((m) => (m[1] ?? m[2])!),
  );
}

test('every operation the CLI sends passes every limit', () => {
  const documents = cliDocuments();
  expect(documents.length).toBeGreaterThan(15);
  const refused = documents
    .map((document) => ({ document, errors: errorsOf(document).map((e) => e.message) }))
    .filter((d) => d.errors.length > 0);
  expect(refused).toEqual([]);
});
