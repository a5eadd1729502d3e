// Where the project's own files are (migrations, templates, assets, the workflow source), whether
// this code runs from its TypeScript source or compiled into dist/.
import { existsSync } from 'node:fs';
import path from 'node:path';

function projectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}: is computatrum installed whole?`);
  }
}

export const PROJECT_ROOT = projectRoot(__dirname);

export const projectPath = (...parts: string[]): string => path.join(PROJECT_ROOT, ...parts);
