#!/usr/bin/env node
// Compiles the project's TypeScript once into dist/ (CommonJS, the same tree: cli/main.ts becomes
// dist/cli/main.js), with swc: what the CLI and the daemon run instead of compiling at every start.
// `npm install` (postinstall) and `npm run build` run it; bin/computatrum.js runs it again when a
// source is newer than the build (isFresh), so nobody runs stale code. The type check stays `tsc
// --noEmit`; swc only strips types. Files other than TypeScript (assets, the Job template, the
// migrations, the tiny trainer's corpus) stay in the source tree, where runtime/paths.ts finds them;
// the worker bundles the workflows from their source.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
/** The folders compiled: the code the CLI and the daemon run (not test/, bench/, prisma/). */
const SOURCE_DIRS = ['cli', 'workflows', 'activities', 'store', 'db', 'temporal', 'runtime', 'worker', 'platform'];
/** Written last into a complete build; its mtime is when the build read the sources. */
const STAMP = path.join(DIST, '.build-stamp');

/** The newest mtime (ms) of the compiled folders, their files and this script: stat only. */
function newestSourceMtime() {
  let newest = fs.statSync(__filename).mtimeMs;
  const visit = (dir) => {
    const stat = fs.statSync(dir, { throwIfNoEntry: false });
    if (!stat) return;
    // A folder's mtime moves when a file in it is added, removed or renamed (editors save by renaming).
    if (stat.mtimeMs > newest) newest = stat.mtimeMs;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.name.endsWith('.ts')) {
        const mtime = fs.statSync(full).mtimeMs;
        if (mtime > newest) newest = mtime;
      }
    }
  };
  for (const dir of SOURCE_DIRS) visit(path.join(ROOT, dir));
  return newest;
}

/** Whether dist/ holds a complete build at least as new as every source. */
function isFresh() {
  const stamp = fs.statSync(STAMP, { throwIfNoEntry: false });
  return stamp !== undefined && stamp.mtimeMs >= newestSourceMtime();
}

function sourceFiles() {
  const files = [];
  const visit = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(full);
    }
  };
  for (const dir of SOURCE_DIRS) if (fs.existsSync(path.join(ROOT, dir))) visit(path.join(ROOT, dir));
  return files;
}

function swcOptions(file) {
  const relative = path.relative(ROOT, file);
  return {
    filename: file,
    swcrc: false,
    configFile: false,
    sourceMaps: true,
    sourceFileName: path.relative(path.dirname(path.join(DIST, relative)), file),
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: {
      type: 'commonjs',
      // The CLI's commands load their modules lazily with import() of project files: compiled to
      // require(), synchronous and cached. Elsewhere import() stays Node's own, as under tsx, since
      // it is there to load ES modules (activities/runners/kubernetes/client.ts).
      ignoreDynamic: !relative.startsWith(`cli${path.sep}`),
    },
  };
}

/**
 * Compiles every source into a fresh folder and swaps it in whole, so a CLI started meanwhile sees
 * the old build or the new one, never half of one; two builds at once both produce complete trees.
 */
async function build({ quiet = false } = {}) {
  const swc = require('@swc/core');
  const started = Date.now();
  const startedAt = new Date(started);
  // Beside the project's files but out of git's, ESLint's and Jest's sight even if a build is killed;
  // on the same file system as dist/ (one rename swaps a whole tree in).
  const work = path.join(ROOT, 'node_modules', '.cache', 'computatrum-build');
  fs.mkdirSync(work, { recursive: true });
  const temp = fs.mkdtempSync(path.join(work, 'new-'));
  const old = path.join(work, `old-${path.basename(temp).slice(4)}`);
  try {
    const files = sourceFiles();
    await Promise.all(
      files.map(async (file) => {
        const relative = path.relative(ROOT, file).replace(/\.ts$/, '.js');
        const output = await swc.transformFile(file, swcOptions(file));
        const target = path.join(temp, relative);
        await fs.promises.mkdir(path.dirname(target), { recursive: true });
        await fs.promises.writeFile(target, `${output.code}\n//# sourceMappingURL=${path.basename(target)}.map\n`);
        await fs.promises.writeFile(`${target}.map`, output.map);
      }),
    );
    const stamp = path.join(temp, '.build-stamp');
    fs.writeFileSync(stamp, `${startedAt.toISOString()}\n`);
    // The sources were read after this instant: an edit during the build leaves the build stale.
    fs.utimesSync(stamp, startedAt, startedAt);
    try {
      fs.renameSync(DIST, old);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    try {
      fs.renameSync(temp, DIST);
    } catch (error) {
      // Another build swapped its complete tree in between: as fresh as this one.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    }
    if (!quiet) console.error(`computatrum: compiled ${files.length} files into dist/ in ${Date.now() - started} ms`);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
    fs.rmSync(old, { recursive: true, force: true });
  }
}

module.exports = { DIST, SOURCE_DIRS, build, isFresh, newestSourceMtime };

if (require.main === module) {
  build().catch((error) => {
    // An install without devDependencies has no swc: the CLI then runs from source through tsx.
    if (error && error.code === 'MODULE_NOT_FOUND' && /@swc\/core/.test(error.message)) {
      console.error(
        'computatrum: @swc/core is not installed, so dist/ is not built; the CLI runs from source through tsx',
      );
      return;
    }
    console.error(`computatrum: the build failed: ${error && error.message}`);
    process.exitCode = 1;
  });
}
