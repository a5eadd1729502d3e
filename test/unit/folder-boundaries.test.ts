// No circles between top-level folders: the folder-level graph of the source's runtime imports
// (import/export ... from, import x = require(), require(), import()) must have none. ESLint
// (eslint.config.js) forbids the edges that break the layering one file at a time; a circle is a
// property of the whole tree, so it is checked here.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '../..');
/** Top-level folders that are not the project's TypeScript source (the tests import everything). */
const NOT_SOURCE = new Set(['node_modules', 'test', 'dist', 'coverage', 'deploy', 'bin']);
const ROOT_FILES = '(root)';

/** The relative specifiers a file loads at run time; `import type` and all-type imports and exports are left out. */
function runtimeSpecifiers(fileName: string, source: string): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const stringOf = (node: ts.Node | undefined) => (node && ts.isStringLiteralLike(node) ? node.text : undefined);
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (!clause.name &&
            named !== undefined &&
            ts.isNamedImports(named) &&
            named.elements.length > 0 &&
            named.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) found.push(stringOf(node.moduleSpecifier)!);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      const clause = node.exportClause;
      const typeOnly =
        node.isTypeOnly ||
        (clause !== undefined &&
          ts.isNamedExports(clause) &&
          clause.elements.length > 0 &&
          clause.elements.every((e) => e.isTypeOnly));
      if (!typeOnly) found.push(stringOf(node.moduleSpecifier)!);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      if (!node.isTypeOnly) found.push(stringOf(node.moduleReference.expression)!);
    } else if (ts.isCallExpression(node)) {
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      const isImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const specifier = stringOf(node.arguments[0]);
      if ((isRequire || isImport) && specifier !== undefined) found.push(specifier);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found.filter((specifier) => specifier !== undefined && specifier.startsWith('.'));
}

interface Edge {
  file: string;
  specifier: string;
}

/** Folder → folder → the first import found that makes the edge. Paths are relative to the root, with '/'. */
type FolderGraph = Map<string, Map<string, Edge>>;

function folderGraph(files: Map<string, string>): FolderGraph {
  const folders = new Set([...files.keys()].filter((file) => file.includes('/')).map((file) => file.split('/')[0]!));
  const topOf = (relative: string) => {
    const first = relative.split('/')[0]!;
    return relative.includes('/') || folders.has(first) ? first : ROOT_FILES;
  };
  const graph: FolderGraph = new Map();
  for (const [file, source] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    const from = topOf(file);
    for (const specifier of runtimeSpecifiers(file, source)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      if (target.startsWith('..')) continue; // outside the project
      const to = topOf(target);
      if (to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      if (!graph.get(from)!.has(to)) graph.get(from)!.set(to, { file, specifier });
    }
  }
  return graph;
}

/** The circles a depth-first walk meets (one per back edge: none exactly when the graph has none), each as readable text. */
function folderCircles(graph: FolderGraph): string[] {
  const circles: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const walk = (folder: string): void => {
    stack.push(folder);
    for (const next of [...(graph.get(folder)?.keys() ?? [])].sort()) {
      const onStack = stack.indexOf(next);
      if (onStack >= 0) {
        const circle = [...stack.slice(onStack), next];
        const how = circle.slice(1).map((to, i) => {
          const edge = graph.get(circle[i]!)!.get(to)!;
          return `${edge.file} imports '${edge.specifier}'`;
        });
        circles.push(`${circle.join(' -> ')} (${how.join('; ')})`);
      } else if (!done.has(next)) {
        walk(next);
      }
    }
    stack.pop();
    done.add(folder);
  };
  for (const folder of [...graph.keys()].sort()) if (!done.has(folder)) walk(folder);
  return circles;
}

function sourceFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const add = (relative: string) => files.set(relative, readFileSync(path.join(ROOT, relative), 'utf8'));
  const walk = (relative: string): void => {
    for (const entry of readdirSync(path.join(ROOT, relative), { withFileTypes: true })) {
      const child = path.posix.join(relative, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) walk(child);
      else if (
        entry.isFile() &&
        entry.name.endsWith('.ts') &&
        !entry.name.endsWith('.d.ts') &&
        !entry.name.endsWith('.test.ts')
      )
        add(child);
    }
  };
  for (const entry of readdirSync(ROOT, { withFileTypes: true })) {
    if (entry.isDirectory() && !NOT_SOURCE.has(entry.name) && !entry.name.startsWith('.')) walk(entry.name);
    else if (entry.isFile() && entry.name.endsWith('.ts')) add(entry.name);
  }
  return files;
}

test('no two top-level folders import each other, directly or around a circle', () => {
  const files = sourceFiles();
  const graph = folderGraph(files);
  // The walk saw the real tree (a walker that found nothing would pass vacuously).
  expect(files.size).toBeGreaterThan(50);
  expect(graph.get('activities')?.has('workflows')).toBe(true);
  expect(graph.get('cli')?.has('store')).toBe(true);
  // A circle found here: break it by moving the shared code down to the lower folder (see eslint.config.js).
  expect(folderCircles(graph)).toEqual([]);
});

describe('the circle checker', () => {
  const check = (files: Record<string, string>) => folderCircles(folderGraph(new Map(Object.entries(files))));

  test('finds a planted circle and names the imports that make it', () => {
    expect(
      check({
        'workflows/money.ts': 'export const cents = 1;\n',
        'store/index.ts': "import { cents } from '../workflows/money';\nexport const store = cents;\n",
        'activities/checkpoints.ts':
          "import { store } from '../store';\nimport { page } from '../platform/pages/home';\nexport const a = [store, page];\n",
        'platform/pages/home.ts': "import { a } from '../../activities/checkpoints';\nexport const page = a;\n",
      }),
    ).toEqual([
      "activities -> platform -> activities (activities/checkpoints.ts imports '../platform/pages/home'; platform/pages/home.ts imports '../../activities/checkpoints')",
    ]);
  });

  test('finds a longer circle made of require(), import() and export ... from', () => {
    expect(
      check({
        'a/x.ts': "export const b = require('../b/y');\n",
        'b/y.ts': "export * from '../c';\n",
        'c/index.ts': "export const load = () => import('../a/x');\n",
      }),
    ).toEqual(["a -> b -> c -> a (a/x.ts imports '../b/y'; b/y.ts imports '../c'; c/index.ts imports '../a/x')"]);
  });

  test('type-only imports and exports are no edges; imports inside a folder are none either', () => {
    expect(
      check({
        'activities/journal.ts':
          "import { cents } from '../workflows/money';\nimport { x } from './other';\nexport const j = [cents, x];\n",
        'workflows/money.ts': [
          "import type { J } from '../activities/journal';",
          "import { type K, type L } from '../activities/journal';",
          "export type { M } from '../activities/journal';",
          "import type N = require('../activities/journal');",
          'export const cents = 1;',
        ].join('\n'),
      }),
    ).toEqual([]);
    expect(
      check({
        'activities/journal.ts': "import { cents } from '../workflows/money';\nexport const j = cents;\n",
        'workflows/money.ts': "import { type K, j } from '../activities/journal';\nexport const cents = j;\n",
      }),
    ).toEqual([
      "activities -> workflows -> activities (activities/journal.ts imports '../workflows/money'; workflows/money.ts imports '../activities/journal')",
    ]);
  });
});
