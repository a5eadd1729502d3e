// A command on a terminal, as a person runs it: a pseudo-terminal (util-linux `script`) between the
// test and the process, so that it sees a TTY on stdin and stdout (readline, raw mode, Ctrl-C and
// Ctrl-D as keys). The test types keys and reads the screen: what was written, without escape
// sequences and carriage returns.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { eventually } from './eventually';

export interface Terminal {
  /** Everything shown so far: escape sequences and carriage returns removed. */
  screen(): string;
  /** Sends keys as typed: '\r' is Enter, '\x03' Ctrl-C, '\x04' Ctrl-D. */
  type(keys: string): void;
  /** Waits until the screen matches (a test of the whole screen so far). */
  waitFor(test: (screen: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** The command's exit code (`script -e` passes it on), once it has ended. */
  exited: Promise<number | null>;
  /** Ends the command and the terminal, if they still run. */
  close(): void;
}

// eslint-disable-next-line no-control-regex -- terminal escape sequences are what this removes
const ESCAPES = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]/g;

/** Shell-quotes one argument for `script -c`. */
const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

let checked = false;

function requireScript(): void {
  if (checked) return;
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    throw new Error(
      `tests of interactive commands need util-linux's \`script\` for a pseudo-terminal: ${(error as Error).message}`,
    );
  }
  checked = true;
}

export function onTerminal(argv: string[], options: { env: NodeJS.ProcessEnv; cwd: string }): Terminal {
  requireScript();
  // -q: no banner; -f: flush at once; -e: exit with the command's code; /dev/null: no typescript file.
  const child: ChildProcess = spawn('script', ['-qfec', argv.map(quote).join(' '), '/dev/null'], {
    env: { ...options.env, TERM: 'xterm' },
    cwd: options.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group: close() ends `script` and the command under it.
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let ended = false;
  void exited.then(() => (ended = true));
  const screen = () => output.replace(ESCAPES, '').replace(/\r+\n/g, '\n').replace(/\r/g, '');
  return {
    screen,
    type(keys) {
      child.stdin!.write(keys);
    },
    waitFor: (test, what, timeoutMs = 30_000) =>
      eventually(
        async () => {
          const now = screen();
          if (test(now)) return now;
          if (ended) throw new Error(`the command ended; the screen:\n${now}`);
          return undefined;
        },
        what,
        timeoutMs,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\nthe screen at the end:\n${screen()}`);
      }),
    exited,
    close() {
      if (ended) return;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Gone already.
      }
    },
  };
}
