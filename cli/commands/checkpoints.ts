// Daily checkpoints and the store from the command line: push, pull, fork, tags, daily, backfill.
import { type Command, InvalidArgumentError } from 'commander';
import type { CheckpointListing } from '../../platform/checkpoint-listing';
import type { Config } from '../../runtime/config';
import { parseReference } from '../../store/names';
import { platformUrl, print, UserError, withGermline } from '../common';
import { platformApi } from '../platform-api';
import { PullProgressView } from '../progress';
import { table } from '../table';

export function addCheckpointCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Checkpoints:');

  program
    .command('push')
    .description('publish a checkpoint folder to <repo>:<branch> (only blobs the store lacks are written)')
    .argument('<dir>', 'checkpoint folder (safetensors shards, tokenizer, card...)')
    .argument('<target>', 'repository and branch, e.g. germline/computatrum:main')
    .option('--parent <digest>', 'digest of the checkpoint this one was trained from')
    .option('--allow-pickle', 'accept pickle files (they can run code when loaded)')
    .action(async (dir: string, target: string, options: { parent?: string; allowPickle?: boolean }) => {
      const cfg = config();
      const { repo, reference } = parseReference(target);
      const [{ openStore }, { publishCheckpoint }] = await Promise.all([
        import('../../store/index.js'),
        import('../../store/checkpoint.js'),
      ]);
      const store = await openStore(cfg.store);
      const published = await publishCheckpoint(store, repo, dir, {
        tag: reference,
        parent: options.parent,
        allowPickle: options.allowPickle,
        onFile: (file, written) => console.error(`${written > 0 ? 'stored ' : 'present'} ${file}`),
      });
      print(`${repo}:${reference} -> ${published.digest}`);
      print(
        `${published.manifest.layers.length} files, ${published.size} bytes; ${published.written} bytes written (the rest was already stored)`,
      );
    });

  program
    .command('pull')
    .description('download a checkpoint, verifying every file; an interrupted pull resumes')
    .argument('<source>', 'repository and tag or digest, e.g. germline/computatrum:gpc-2026-11-25')
    .argument('<dir>', 'folder to write the files into')
    .option('--from <url>', 'platform or registry URL (default: this computatrum platform)')
    .option(
      '--parallel <n>',
      'files at once',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 32)
          throw new InvalidArgumentError('--parallel must be a whole number from 1 to 32');
        return n;
      },
      4,
    )
    .action(async (source: string, dir: string, options: { from?: string; parallel: number }) => {
      const cfg = config();
      const { repo, reference } = parseReference(source);
      const baseUrl = platformUrl(cfg, options.from);
      const [{ pullCheckpoint }, { registryAuthFor }] = await Promise.all([
        import('../../store/pull.js'),
        import('../../store/index.js'),
      ]);
      // The configured registry gets its login (Basic, or exchanged for tokens); a platform gets the
      // account's token (a paid breed is downloaded by who bought it: the platform knows them by their token).
      const auth = await registryAuthFor(cfg.store, baseUrl);
      const authorization = !auth && cfg.apiToken ? `Bearer ${cfg.apiToken}` : undefined;
      const view = new PullProgressView(process.stderr);
      const result = await pullCheckpoint({
        baseUrl,
        repo,
        reference,
        dir,
        concurrency: options.parallel,
        ...(authorization ? { headers: { authorization } } : {}),
        ...(auth ? { auth } : {}),
        onManifest: (files) => view.start(files),
        onProgress: (progress) => view.update(progress),
      });
      view.finish();
      print(
        `${repo}:${reference} (${result.digest}): ${result.files} files, ${result.size} bytes verified in ${dir}; ${result.received} bytes downloaded`,
      );
    });

  program
    .command('fork')
    .description(
      'start a branch from any tag: nothing is copied (with COMPUTATRUM_TOKEN: on the platform, as your account)',
    )
    .argument('<source>', 'e.g. germline/computatrum:gpc-2026-11-25')
    .argument('<target>', 'e.g. trainers/alice/coder:main')
    .option('--from <url>', 'platform URL, with COMPUTATRUM_TOKEN (default: this computatrum platform)')
    .action(async (source: string, target: string, options: { from?: string }) => {
      const cfg = config();
      const from = parseReference(source);
      const to = parseReference(target);
      // A trainer forks on the platform, which checks where they may write; an operator on the daemon's host uses the store.
      let digest: string;
      if (cfg.apiToken) {
        digest = (
          await platformApi(cfg, { ...options, signedIn: true }).graphql<{ fork: { digest: string } }>(
            'mutation($from: String!, $to: String!) { fork(from: $from, to: $to) { digest } }',
            { from: source, to: target },
          )
        ).fork.digest;
      } else {
        const [{ openStore }, { forkCheckpoint }] = await Promise.all([
          import('../../store/index.js'),
          import('../../store/checkpoint.js'),
        ]);
        digest = await forkCheckpoint(await openStore(cfg.store), from, { repo: to.repo, branch: to.reference });
      }
      print(`${to.repo}:${to.reference} -> ${digest} (forked from ${source}, no bytes copied)`);
    });

  program
    .command('tags')
    .description('list the checkpoints of a repository with nicknames, sizes and digests')
    .argument('<repo>', 'e.g. germline/computatrum')
    .option('--from <url>', 'platform URL (default: this computatrum platform)')
    .option('--json', 'print JSON')
    .action(async (repo: string, options: { from?: string; json?: boolean }) => {
      const cfg = config();
      const baseUrl = platformUrl(cfg, options.from);
      let response: Response;
      try {
        response = await fetch(`${baseUrl}/api/checkpoints/${repo}`);
      } catch (error) {
        throw new UserError(`cannot reach ${baseUrl} (${(error as Error).message}): is \`computatrum up\` running?`);
      }
      const body = (await response.json()) as CheckpointListing & { error?: string };
      if (!response.ok) throw new UserError(body.error ?? `${baseUrl} answered ${response.status}`);
      if (options.json) return print(JSON.stringify(body, null, 2));
      print(
        table(
          ['tag', 'nickname', 'size', 'files', 'digest'],
          body.tags.map((t) => [t.tag, t.nickname ?? '', String(t.size), String(t.files), t.digest.slice(0, 19)]),
          { alignRight: [2, 3] },
        ),
      );
      for (const skipped of body.skippedDays) print(`skipped ${skipped.day}: ${skipped.reason ?? ''}`);
    });

  program
    .command('daily')
    .description("trigger today's gpc tagging now, through the schedule (it also runs by itself at 00:00 UTC)")
    .action(async () => {
      const cfg = config();
      const { dailyScheduleId } = await import('../../temporal/schedules.js');
      await withGermline(cfg, (client) => client.schedule.getHandle(dailyScheduleId(cfg.germline)).trigger());
      print(
        `triggered ${dailyScheduleId(cfg.germline)}; see the result with \`computatrum tags germline/${cfg.germline}\``,
      );
    });

  program
    .command('backfill')
    .description('run the daily gpc tagging for missed days, through the schedule')
    .requiredOption('--from <day>', 'first day, YYYY-MM-DD')
    .requiredOption('--to <day>', 'last day, YYYY-MM-DD (inclusive)')
    .action(async (options: { from: string; to: string }) => {
      const cfg = config();
      const { backfillDaily, dailyScheduleId } = await import('../../temporal/schedules.js');
      const days = await withGermline(cfg, (client) =>
        backfillDaily(client, cfg.germline, options.from, options.to).catch((error: Error) => {
          throw new UserError(error.message, 2);
        }),
      );
      print(
        `backfill of ${days} day(s) handed to the schedule ${dailyScheduleId(cfg.germline)}; watch it in the Temporal UI`,
      );
    });

  program
    .command('schedules')
    .description(
      "computatrum's schedules: each one's cron expression (UTC) and its next runs, as configured and as Temporal will run them",
    )
    .option('--next <n>', 'how many next runs to show (1 to 20)', '3')
    .action(async (options: { next: string }) => {
      const cfg = config();
      const count = Number(options.next);
      if (!Number.isInteger(count) || count < 1 || count > 20)
        throw new UserError(`--next "${options.next}" is not a number from 1 to 20`, 2);
      const [{ dailyScheduleId, UPKEEP }, { nextRuns }] = await Promise.all([
        import('../../temporal/schedules.js'),
        import('../../runtime/cron.js'),
      ]);
      const schedules = [
        {
          id: dailyScheduleId(cfg.germline),
          what: 'the daily gpc tag',
          setting: 'COMPUTATRUM_DAILY_TAG_CRON',
          cron: cfg.schedules.dailyTag,
          temporal: true,
        },
        ...(['probeSweep', 'datasetBuilds'] as const).map((job) => ({
          id: UPKEEP[job].id(cfg.germline),
          what: UPKEEP[job].what,
          setting: UPKEEP[job].setting,
          cron: cfg.schedules[job],
          temporal: true,
        })),
        {
          id: 'payouts',
          what: "trainers' payouts through Stripe, by the platform",
          setting: 'COMPUTATRUM_PAYOUTS_CRON',
          cron: cfg.schedules.payouts,
          temporal: false,
        },
      ];
      const running = await withGermline(cfg, (client) =>
        Promise.all(
          schedules.map(async ({ id, temporal }) => {
            if (!temporal) return undefined;
            try {
              return (await client.schedule.getHandle(id).describe()).info.nextActionTimes.slice(0, count);
            } catch {
              return null; // not created yet: `up` creates it
            }
          }),
        ),
      );
      const times = (dates: Date[]) => dates.map((date) => date.toISOString().replace('.000Z', 'Z')).join(', ');
      schedules.forEach((schedule, index) => {
        const configured = nextRuns(schedule.cron, count);
        const inTemporal = running[index];
        print(`${schedule.id}  ${schedule.what}  ${schedule.setting}="${schedule.cron}" (UTC)`);
        print(`  next, as configured:   ${times(configured)}`);
        if (inTemporal === undefined)
          print(cfg.stripe ? '  run by the platform at these times' : '  off: Stripe is not configured');
        else if (inTemporal === null) print('  Temporal: no such schedule yet (`computatrum up` creates it)');
        else if (times(inTemporal) === times(configured)) print('  Temporal runs it so.');
        else
          print(
            `  Temporal runs it at:   ${times(inTemporal)}  (\`computatrum up\` updates it to the configured expression)`,
          );
      });
    });
}
