#!/usr/bin/env node
// `npm run build:workflows -- <file>`: bundles the workflows into <file> (plus <file>.json, the record
// of what it was built from) for a worker started with COMPUTATRUM_WORKFLOW_BUNDLE=<file>, which then
// skips bundling at start and refuses the file once the code it was built from has changed
// (worker/workflow-bundle.ts). `--check <file>` only checks a bundle against this code, as the worker
// does at start. The daemon's image runs both (deploy/images/daemon.Dockerfile).
'use strict';

const path = require('node:path');
const { loadProjectModule } = require('./project-module.js');

const USAGE =
  'usage: npm run build:workflows -- [--check] <file.js>   (then start the worker with COMPUTATRUM_WORKFLOW_BUNDLE=<file.js>)';

async function main() {
  const args = process.argv.slice(2);
  const check = args[0] === '--check';
  const output = check ? args[1] : args[0];
  if (!output || output.startsWith('-') || args.length > (check ? 2 : 1)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const file = path.resolve(output);
  const bundles = await loadProjectModule('worker/workflow-bundle');
  if (check) {
    await bundles.verifiedWorkflowBundle(file);
    console.error(`computatrum: ${file} matches this code`);
    return;
  }
  const { WORKFLOWS_PATH } = await loadProjectModule('worker/worker');
  const started = Date.now();
  const sidecar = await bundles.buildWorkflowBundle(WORKFLOWS_PATH, file);
  console.error(
    `computatrum: bundled the workflows (${Object.keys(sidecar.sources).length} source files) into ${file} in ${Date.now() - started} ms`,
  );
}

main().catch((error) => {
  console.error(
    `computatrum: ${error && error.name === 'WorkflowBundleError' ? error.message : `could not bundle the workflows: ${error && error.stack}`}`,
  );
  process.exitCode = 1;
});
