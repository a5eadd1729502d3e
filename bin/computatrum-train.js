#!/usr/bin/env node
// The reference trainer image's entrypoint, named by deploy/training-job.yaml: pulls the run's base
// and datasets, runs the trainer (the tiny trainer, or the argv after `--`), pushes its newest
// checkpoint (activities/runners/kubernetes/trainer-pod.ts).
//   computatrum-train [-- <trainer argv>]
'use strict';

const { loadProjectModule } = require('../scripts/project-module.js');

loadProjectModule('activities/runners/kubernetes/trainer-pod')
  .then(({ runTrainerPod }) => runTrainerPod(process.argv.slice(2)))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      // 2: the pod's settings are wrong (a missing variable, a malformed reference); 1: anything else.
      const settings =
        error &&
        (error.name === 'TrainerPodError' ||
          error.name === 'ConfigError' ||
          (error.name === 'StoreError' && /_INVALID$/.test(error.code)));
      console.error(`computatrum-train: ${settings ? error.message : (error && error.stack) || error}`);
      process.exitCode = settings ? 2 : 1;
    },
  );
