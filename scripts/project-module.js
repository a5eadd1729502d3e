// Loads a module of the project the way bin/computatrum.js runs the CLI: compiled in dist/ (compiled
// again first when a source is newer than the build), or from its TypeScript source through tsx where
// the compiler is not installed (an install without devDependencies).
'use strict';

const path = require('node:path');
const build = require('./build.js');

const ROOT = path.resolve(__dirname, '..');

/** `relative` without extension, from the project root, e.g. 'worker/workflow-bundle'. */
async function loadProjectModule(relative) {
  try {
    if (!build.isFresh()) await build.build({ quiet: true });
    return require(path.join(build.DIST, `${relative}.js`));
  } catch (error) {
    if (!(error && error.code === 'MODULE_NOT_FOUND' && /@swc\/core/.test(error.message))) throw error;
    const { register } = await import('tsx/esm/api');
    register();
    require('tsx/cjs');
    return require(path.join(ROOT, `${relative}.ts`));
  }
}

module.exports = { loadProjectModule };
