// The training runners a worker offers: always `local` (child processes on this host, the tiny
// trainer by default), and `kubernetes` when a namespace is configured.
import path from 'node:path';
import { LocalProcessRunner } from '../activities/runners/local';
import { tinyTrainerCommand } from '../activities/runners/tiny-trainer';
import type { RunnerKind, TrainingRunner } from '../activities/runners/types';
import { materializeCheckpoint } from '../activities/store/materialize';
import type { CheckpointStore } from '../activities/store/types';
import type { Config } from './config';

export function localRunner(options: { dataDir: string; store: CheckpointStore; trainerCommand?: string[]; tickMs?: number }): LocalProcessRunner {
  return new LocalProcessRunner({
    runsDir: path.join(options.dataDir, 'runs'),
    defaultCommand: options.trainerCommand ?? tinyTrainerCommand(),
    fetchBase: async (base, dir) => void (await materializeCheckpoint(options.store, base.repo, base.digest, dir)),
    ...(options.tickMs ? { tickMs: options.tickMs } : {}),
  });
}

export function createRunners(config: Config, store: CheckpointStore): Partial<Record<RunnerKind, TrainingRunner>> {
  return {
    local: localRunner({ dataDir: config.dataDir, store, ...(config.training.trainerCommand ? { trainerCommand: config.training.trainerCommand } : {}) }),
  };
}
