#!/usr/bin/env node
// The reference instance image's entrypoint: the tiny model's server (the instance contract in
// activities/runners/types.ts), serving COMPUTATRUM_MODEL_DIR on PORT. The Kubernetes instance runner
// starts the image with no command, so this is what its Deployments run.
'use strict';

const { loadProjectModule } = require('../scripts/project-module.js');

loadProjectModule('activities/runners/tiny-trainer/server')
  .then(({ serve }) => serve(process.argv.slice(2)))
  .then(
    (code) => process.exit(code),
    (error) => {
      // As the server's own main: a model folder it cannot serve is an input error (2).
      const input = error && error.name === 'TrainerInputError';
      console.error(`tiny-server: ${input ? error.message : (error && error.stack) || error}`);
      process.exit(input ? 2 : 1);
    },
  );
