// Where the tiny trainer lives and how to start it, for runners that spawn it as a child process.
import path from 'node:path';

export const TINY_TRAINER_PATH = path.join(__dirname, 'main.ts');

/** The argv that runs the tiny trainer with this Node and tsx's require hook (as bin/computatrum.js loads it). */
export function tinyTrainerCommand(args: string[] = []): string[] {
  // Resolved here so the child's working directory (often its output folder) does not matter.
  return [process.execPath, '--require', require.resolve('tsx/cjs'), TINY_TRAINER_PATH, ...args];
}
