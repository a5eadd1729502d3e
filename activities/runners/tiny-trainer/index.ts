// Where the tiny trainer and the tiny server live and how to start them, for runners that spawn them
// as child processes.
import path from 'node:path';

/** Compiled into dist/ (the CLI's build), they run as plain JavaScript; from source, through tsx. */
const COMPILED = __filename.endsWith('.js');

export const TINY_TRAINER_PATH = path.join(__dirname, COMPILED ? 'main.js' : 'main.ts');
/** The tiny server: a hosted instance (the instance contract in ../types.ts) for tiny trainer checkpoints. */
export const TINY_SERVER_PATH = path.join(__dirname, COMPILED ? 'server.js' : 'server.ts');

/** The argv that runs `program` with this Node (and tsx's require hook when running from source). */
function nodeCommand(program: string, args: string[]): string[] {
  // Resolved here so the child's working directory (often its output folder) does not matter.
  return COMPILED
    ? [process.execPath, program, ...args]
    : [process.execPath, '--require', require.resolve('tsx/cjs'), program, ...args];
}

/** The argv that runs the tiny trainer. */
export function tinyTrainerCommand(args: string[] = []): string[] {
  return nodeCommand(TINY_TRAINER_PATH, args);
}

/** The argv that runs the tiny server; it is configured by its environment (INSTANCE_ENV), not by flags. */
export function tinyServerCommand(args: string[] = []): string[] {
  return nodeCommand(TINY_SERVER_PATH, args);
}
