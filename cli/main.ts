// The `computatrum` command: the program (--version, the command groups of cli/commands/) and how a
// failure ends it. Building the program loads nothing heavy: each command's action loads the modules
// it uses, and the configuration is read and validated only when a command needs it, so --help and
// --version work whatever the environment holds.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { Config } from '../runtime/config';
import { projectPath } from '../runtime/paths';
import { UserError } from './common';
import { addAutonomyCommands } from './commands/autonomy';
import { addBudgetCommands } from './commands/budget';
import { addCheckpointCommands } from './commands/checkpoints';
import { addChildrenCommands } from './commands/children';
import { addFeedbackCommands } from './commands/feedback';
import { addHubCommands } from './commands/hub';
import { addInstanceCommands } from './commands/instances';
import { addOperationsCommands } from './commands/operations';
import { addProbeCommands } from './commands/probes';
import { addTrainingCommands } from './commands/training';
import { addUsageCommands } from './commands/usage';

/** The command groups, in the order `computatrum --help` lists them; each names its own heading. */
const GROUPS = [
  addOperationsCommands,
  addBudgetCommands,
  addCheckpointCommands,
  addTrainingCommands,
  addInstanceCommands,
  addFeedbackCommands,
  addChildrenCommands,
  addAutonomyCommands,
  addHubCommands,
  addProbeCommands,
  addUsageCommands,
] as const;

function version(): string {
  return (JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The configuration, read once when a command first asks for it. Option parsers ask synchronously
 * (an amount's currency), so its module (zod and the schema) is loaded before a subcommand parses
 * its options, by `prepare`; nothing is read or validated until then.
 */
function lazyConfig(): { config: () => Config; prepare: () => Promise<void> } {
  let load: (() => Config) | undefined;
  let cached: Config | undefined;
  return {
    config: () => {
      if (!load) throw new Error('the configuration was asked for before its module was loaded');
      return (cached ??= load());
    },
    prepare: async () => {
      if (load) return;
      const { loadConfig } = await import('../runtime/config.js');
      load = () => loadConfig();
    },
  };
}

export function buildProgram(): Command {
  const { config, prepare } = lazyConfig();
  const program = new Command('computatrum')
    .description('Orchestrator of the independent germline computatrum: budget, children, training, daily checkpoints.')
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .hook('preSubcommand', prepare)
    .exitOverride();

  for (const addGroup of GROUPS) addGroup(program, config);
  // `help [command]` last, under a heading of its own rather than in the last group.
  program.commandsGroup('Help:').helpCommand(true);

  return program;
}

/** Refusals of what was typed on the command line: usage errors. */
const USAGE_REASONS = new Set(['NAME_INVALID', 'INVALID_AMOUNT']);

export async function main(argv = process.argv): Promise<void> {
  // `computatrum ledger | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    // The modules of the errors below are loaded here, on the way out, not by every command.
    const [{ ConfigError }, { PullError }, { ToolError }, { toRefusal }] = await Promise.all([
      import('../runtime/config.js'),
      import('../store/pull.js'),
      import('../runtime/tools.js'),
      import('../platform/errors.js'),
    ]);
    if (error instanceof ConfigError) {
      console.error(`computatrum: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof UserError || error instanceof ToolError || error instanceof PullError) {
      console.error(`computatrum: ${error.message}`);
      process.exitCode = error instanceof UserError ? error.exitCode : 1;
      return;
    }
    // A refusal by the rules (a bad name or amount typed here exits 2, like any usage error; others 1).
    const refusal = toRefusal(error);
    if (refusal) {
      console.error(`computatrum: ${refusal.message}`);
      process.exitCode = refusal.reason && USAGE_REASONS.has(refusal.reason) ? 2 : 1;
      return;
    }
    console.error('computatrum: unexpected error:', error);
    process.exitCode = 1;
  }
}
