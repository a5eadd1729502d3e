#!/usr/bin/env node
// Runs the CLI compiled into dist/ (scripts/build.js: swc, once), which starts in a fraction of the
// time that compiling the TypeScript at every start takes. Never stale: when a source is newer than
// the build (a stat of each source, about a millisecond), it is compiled again first (swc: about a
// tenth of a second); where it cannot be (an install without devDependencies has no swc), the CLI
// runs from source through tsx.
'use strict';

const build = require('../scripts/build.js');

async function start() {
  if (!build.isFresh()) {
    try {
      await build.build({ quiet: true });
    } catch (error) {
      const noCompiler = error && error.code === 'MODULE_NOT_FOUND' && /@swc\/core/.test(error.message);
      if (!noCompiler)
        console.error(`computatrum: could not compile into dist/ (${error && error.message}); running from source`);
      return fromSource();
    }
  }
  return require('../dist/cli/main.js').main();
}

/** tsx's hooks for require() and for import(): the commands load their modules with import(). */
async function fromSource() {
  const { register } = await import('tsx/esm/api');
  register();
  require('tsx/cjs');
  return require('../cli/main.ts').main();
}

start().catch((error) => {
  console.error('computatrum: unexpected error:', error);
  process.exitCode = 1;
});
