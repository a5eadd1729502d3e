#!/usr/bin/env node
// What `npm test` needs besides node_modules, made present before the type check starts (package.json
// runs this first): the Go tools the test servers run (the Temporal CLI and stripe-mock, built the way
// `npm run tools` builds them: runtime/tools.ts) and the Debian programs the tests drive. Missing
// Debian packages are installed with apt-get when this runs as root with apt; otherwise it stops and
// names the one command that fixes it. Silent, and quick, when everything is there.
'use strict';

const { spawnSync } = require('node:child_process');
const { accessSync, constants } = require('node:fs');
const path = require('node:path');

// The tools and the configuration are TypeScript, like all of the project: tsx's require hook loads them.
require('tsx/cjs');
const { TOOLS, findTool, installTool, ToolError } = require('../runtime/tools.ts');
const { loadConfig } = require('../runtime/config.ts');

/** The Debian programs the tests use, where the tests look for them, and who needs them. */
const DEBIAN_PACKAGES = [
  // test/helpers/registry.ts starts /usr/bin/docker-registry (CNCF Distribution) as a real OCI registry.
  {
    name: 'docker-registry',
    file: '/usr/bin/docker-registry',
    usedBy: 'the registry store tests (test/helpers/registry.ts)',
  },
  // test/integration/platform-downloads.test.ts copies a checkpoint with skopeo, a standard OCI client.
  { name: 'skopeo', command: 'skopeo', usedBy: 'the OCI client test (test/integration/platform-downloads.test.ts)' },
  // test/browser drives /usr/bin/chromium through playwright-core.
  { name: 'chromium', file: '/usr/bin/chromium', usedBy: 'the browser tests (test/browser)' },
  // test/unit/content-scan.test.ts makes real pickles with Python's own pickle module.
  { name: 'python3', command: 'python3', usedBy: 'the content scan tests (test/unit/content-scan.test.ts)' },
];

const say = (line) => console.error(`test prerequisites: ${line}`);

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command) {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && isExecutable(path.join(dir, command)));
}

const present = (pkg) => (pkg.file ? isExecutable(pkg.file) : onPath(pkg.command));

/** Installs the missing Debian packages if it may; returns the problem to report if it may not. */
function debianPackages() {
  const missing = DEBIAN_PACKAGES.filter((pkg) => !present(pkg));
  if (missing.length === 0) return undefined;
  const names = missing.map((pkg) => pkg.name).join(' ');
  const why = missing.map((pkg) => `${pkg.name} for ${pkg.usedBy}`).join('; ');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!onPath('apt-get')) {
    return `missing ${why}. Install them with your package manager (on Debian or Ubuntu: sudo apt-get install -y ${names})`;
  }
  if (!isRoot) return `missing ${why}. Install them once with: sudo apt-get install -y ${names}`;

  say(`installing ${names} with apt-get (${why})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args) => spawnSync('apt-get', args, { env, stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
  if (!run(['update', '-qq']) || !run(['install', '-y', '-qq', ...missing.map((pkg) => pkg.name)])) {
    return `apt-get could not install ${names} (its output is above); fix that, then run: apt-get install -y ${names}`;
  }
  const stillMissing = missing.filter((pkg) => !present(pkg));
  if (stillMissing.length > 0) {
    const where = stillMissing.map((pkg) => pkg.file ?? `${pkg.command} on PATH`).join(', ');
    return `apt-get installed ${names}, but there is still no ${where}: install them so that the tests find them there`;
  }
  return undefined;
}

/** Builds the missing Go tools (runtime/tools.ts, as `npm run tools` does); returns the problem if it cannot. */
async function goTools() {
  let toolsDir;
  try {
    toolsDir = loadConfig().toolsDir;
    const missing = TOOLS.filter((tool) => !findTool(tool, toolsDir));
    for (const tool of missing) {
      say(`building ${tool.name} into ${toolsDir}/bin (what \`npm run tools\` does; once per machine)`);
      await installTool(tool, toolsDir, (line) => say(line));
    }
    return undefined;
  } catch (error) {
    if (error instanceof ToolError || (error && error.name === 'ConfigError')) return error.message;
    throw error;
  }
}

async function main() {
  const problems = [debianPackages()];
  // Debian's problems are reported first, but the Go tools are built even so: one run fixes what it can.
  problems.push(await goTools());
  const left = problems.filter(Boolean);
  if (left.length === 0) return;
  for (const problem of left) say(problem);
  say('npm test stops here; run it again once this is fixed');
  process.exitCode = 1;
}

main().catch((error) => {
  say(error && error.stack ? error.stack : String(error));
  process.exitCode = 1;
});
