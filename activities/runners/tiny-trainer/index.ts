// Where the tiny trainer lives and how to start it, for runners that spawn it as a child process.
import path from 'node:path';

/** Compiled into dist/ (the CLI's build), the trainer runs as plain JavaScript; from source, through tsx. */
const COMPILED = __filename.endsWith('.js');

export const TINY_TRAINER_PATH = path.join(__dirname, COMPILED ? 'main.js' : 'main.ts');

/** The argv that runs the tiny trainer with this Node (and tsx's require hook when running from source). */
export function tinyTrainerCommand(args: string[] = []): string[] {
  // Resolved here so the child's working directory (often its output folder) does not matter.
  return COMPILED
    ? [process.execPath, TINY_TRAINER_PATH, ...args]
    : [process.execPath, '--require', require.resolve('tsx/cjs'), TINY_TRAINER_PATH, ...args];
}
