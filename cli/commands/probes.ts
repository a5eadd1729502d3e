// Behaviour probes from the command line, through the platform's API: `probes <repo>` lists an
// image's probes and verdicts (and any flag on it; no account needed), `probe <repo:tag>` starts one
// by hand and `flag <repo@digest> --clear|--confirm` decides a flag (both as an operator's token).
import type { Command } from 'commander';
import type { Config } from '../../runtime/config';
import { print, UserError } from '../common';
import { platformApi } from '../platform-api';
import { table } from '../table';

interface ProbeRow {
  digest: string;
  suite: string;
  judge: string;
  trigger: string;
  state: string;
  attempts: number;
  reason: string | null;
  recordingUrl: string | null;
  startedAt: string;
}

interface FlagRow {
  digest: string;
  state: string;
  reason: string;
  blocking: boolean;
  reviewedBy: string | null;
}

const short = (digest: string) => digest.slice(0, 19);

export function addProbeCommands(program: Command, config: () => Config): void {
  const from = '--from <url>';
  const fromHelp = 'platform URL (default: this computatrum platform)';
  program.commandsGroup('Probes:');

  program
    .command('probes')
    .description("an image's behaviour probes and verdicts, newest first, and the flags they raised")
    .argument('<repo>', 'the image, e.g. trainers/alice/coder')
    .option('--limit <n>', 'how many probes', '20')
    .option(from, fromHelp)
    .action(async (repo: string, options: { limit: string; from?: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 200)
        throw new UserError('--limit is a whole number from 1 to 200', 2);
      if (/[:@]/.test(repo))
        throw new UserError(`name the repository without a tag or digest: ${repo.split(/[:@]/)[0]}`, 2);
      const { probes, imageFlags } = await platformApi(config(), options).graphql<{
        probes: ProbeRow[];
        imageFlags: FlagRow[];
      }>(
        'query($r: String!, $n: Int) { probes(repository: $r, limit: $n) { digest suite judge trigger state attempts reason recordingUrl startedAt } imageFlags(repository: $r) { digest state reason blocking reviewedBy } }',
        { r: repo, n: limit },
      );
      for (const flag of imageFlags.filter((f) => f.blocking))
        print(
          `FLAGGED ${short(flag.digest)}… (${flag.state === 'pending' ? 'pending operator review' : 'confirmed malicious'}): ${flag.reason}`,
        );
      if (probes.length === 0) return print(`${repo} has not been probed yet`);
      print(
        table(
          ['checkpoint', 'verdict', 'suite', 'judge', 'trigger', 'tries', 'started', 'why'],
          probes.map((p) => [
            short(p.digest),
            p.state,
            p.suite,
            p.judge,
            p.trigger,
            String(p.attempts),
            p.startedAt.slice(0, 16).replace('T', ' '),
            p.reason ?? '',
          ]),
        ),
      );
    });

  program
    .command('probe')
    .description('probe an image now (operators): its verdict shows in `computatrum probes <repo>` within minutes')
    .argument('<image>', 'repo:tag or repo@digest')
    .option('--detector <image>', 'judge with an instance of this detector image instead of the suite rules')
    .option(from, fromHelp)
    .action(async (image: string, options: { detector?: string; from?: string }) => {
      if (!/[:@]/.test(image)) throw new UserError(`"${image}" needs a tag or digest: write it like ${image}:main`, 2);
      const { startProbe } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        startProbe: { workflowId: string; digest: string };
      }>('mutation($i: String!, $d: String) { startProbe(image: $i, detector: $d) { workflowId digest } }', {
        i: image,
        d: options.detector ?? null,
      });
      print(`probing ${short(startProbe.digest)}…: workflow ${startProbe.workflowId}`);
    });

  program
    .command('flag')
    .description('decide a flagged image (operators): --clear (a false alarm) or --confirm (malicious)')
    .argument('<image>', 'repo@digest, as `computatrum probes` shows it')
    .option('--clear', 'it blocks no more')
    .option('--confirm', 'it stays blocked from public instances and purchases')
    .option('--note <text>', 'why')
    .option(from, fromHelp)
    .action(async (image: string, options: { clear?: boolean; confirm?: boolean; note?: string; from?: string }) => {
      if (Boolean(options.clear) === Boolean(options.confirm)) throw new UserError('say --clear or --confirm', 2);
      const at = image.indexOf('@');
      if (at <= 0) throw new UserError(`name the checkpoint by digest: ${image}@sha256:…`, 2);
      const { reviewImageFlag } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        reviewImageFlag: { state: string };
      }>(
        'mutation($r: String!, $d: String!, $x: FlagDecision!, $n: String) { reviewImageFlag(repository: $r, digest: $d, decision: $x, note: $n) { state } }',
        {
          r: image.slice(0, at),
          d: image.slice(at + 1),
          x: options.clear ? 'CLEAR' : 'CONFIRM',
          n: options.note ?? null,
        },
      );
      print(`${image}: ${reviewImageFlag.state}`);
    });
}
