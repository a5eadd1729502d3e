// Online reinforcement from the command line: feedback on an answer (through the gateway, as the
// account of COMPUTATRUM_TOKEN, or anonymously from the address that had the exchange), and the
// datasets built from it: `dataset build` (with a token: on the platform as the account; without:
// on the daemon's host, as the germline, public exchanges only) and `datasets`.
import type { Command } from 'commander';
import type { Config } from '../../runtime/config';
import { germlineWorkflowId } from '../../workflows/names';
import { platformUrl, print, UserError, withDatabase } from '../common';
import { platformApi } from '../platform-api';
import { table } from '../table';

interface DatasetLine {
  digest: string;
  records: number;
  preferences: number;
  labelled: number;
  transcripts: number;
  asOf: string | null;
  builtBy: string;
}

/** `--since` as people type it: a day or a time. */
function sinceOption(text: string): string {
  if (Number.isNaN(new Date(text).getTime()))
    throw new UserError(`--since "${text}" is not a time: write it like 2026-11-30 or 2026-11-30T12:00:00Z`, 2);
  return text;
}

export function addFeedbackCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Feedback:');

  program
    .command('feedback')
    .description(
      "say what you think of an answer: its interaction id is the gateway's x-computatrum-interaction header",
    )
    .argument('<interaction>', 'the interaction id')
    .option('--good', 'the answer was good')
    .option('--bad', 'the answer was bad')
    .option('--correction <text>', 'the answer that should have been given')
    .option('--comment <text>', 'why')
    .option('--from <url>', 'platform URL (default: this computatrum platform)')
    .action(
      async (
        interaction: string,
        options: { good?: boolean; bad?: boolean; correction?: string; comment?: string; from?: string },
      ) => {
        if (Boolean(options.good) === Boolean(options.bad)) throw new UserError('give one of --good or --bad', 2);
        const cfg = config();
        const url = platformUrl(cfg, options.from);
        let response: Response;
        try {
          response = await fetch(`${url}/v1/feedback`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              ...(cfg.apiToken ? { authorization: `Bearer ${cfg.apiToken}` } : {}),
            },
            body: JSON.stringify({
              interaction,
              label: options.good ? 'good' : 'bad',
              ...(options.correction !== undefined ? { correction: options.correction } : {}),
              ...(options.comment !== undefined ? { comment: options.comment } : {}),
            }),
          });
        } catch (error) {
          const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
          throw new UserError(
            `cannot reach the platform at ${url} (${cause}): is \`computatrum up\` running, or is --from right?`,
          );
        }
        const answer = (await response.json().catch(() => ({}))) as {
          id?: string;
          label?: string;
          error?: { message?: string };
        };
        if (!response.ok) throw new UserError(answer.error?.message ?? `the platform answered ${response.status}`);
        print(
          `feedback ${answer.id} on ${interaction}: ${answer.label}${options.correction ? ', with a correction' : ''}`,
        );
      },
    );

  const dataset = program.command('dataset').description('feedback datasets of an image');
  dataset
    .command('build')
    .description(
      "build a dataset of the new feedback on an image's answers and push it beside the image (with COMPUTATRUM_TOKEN: as your account)",
    )
    .argument('<image>', 'e.g. germline/computatrum:gpc-2026-11-30')
    .option('--since <time>', 'feedback given at or after this time (default: after the newest dataset)', sinceOption)
    .option('--from <url>', 'platform URL, with COMPUTATRUM_TOKEN (default: this computatrum platform)')
    .option('--json', 'print JSON')
    .action(async (image: string, options: { since?: string; from?: string; json?: boolean }) => {
      const cfg = config();
      let built: { repository: string; digest: string; records: number; created: boolean };
      if (cfg.apiToken) {
        built = (
          await platformApi(cfg, { ...options, signedIn: true }).graphql<{ buildDataset: typeof built }>(
            'mutation($image: String!, $since: String) { buildDataset(image: $image, since: $since) { repository digest records created } }',
            { image, since: options.since ?? null },
          )
        ).buildDataset;
      } else {
        const [{ openStore }, { parseReference }, { buildDataset, DatasetError }] = await Promise.all([
          import('../../store/index.js'),
          import('../../store/names.js'),
          import('../../activities/datasets.js'),
        ]);
        const { repo, reference } = parseReference(image);
        const store = await openStore(cfg.store);
        const result = await withDatabase(cfg, (db) =>
          buildDataset(
            { db, store },
            {
              repository: repo,
              reference,
              builtBy: { germline: germlineWorkflowId(cfg.germline) },
              ...(options.since ? { since: new Date(options.since) } : {}),
            },
          ).catch((error: unknown) => {
            throw error instanceof DatasetError ? new UserError(error.message) : error;
          }),
        );
        built = {
          repository: result.repository,
          digest: result.digest,
          records: result.records.counts.records,
          created: result.created,
        };
      }
      if (options.json) return print(JSON.stringify(built, null, 2));
      print(
        `${built.repository}@${built.digest}: ${built.records} feedback records${built.created ? '' : ' (built before: the same records)'}`,
      );
      print(`  train on it: computatrum train --dataset ${built.repository}@${built.digest} ...`);
    });

  program
    .command('datasets')
    .description("an image's feedback datasets, newest first")
    .argument('<repository>', 'e.g. germline/computatrum')
    .option('--from <url>', 'platform URL (default: this computatrum platform)')
    .option('--json', 'print JSON')
    .action(async (repository: string, options: { from?: string; json?: boolean }) => {
      const { datasets } = await platformApi(config(), options).graphql<{ datasets: DatasetLine[] }>(
        'query($repository: String!) { datasets(repository: $repository) { digest records preferences labelled transcripts asOf builtBy } }',
        { repository },
      );
      if (options.json) return print(JSON.stringify(datasets, null, 2));
      if (datasets.length === 0)
        return print(
          `${repository} has no datasets yet: build one with \`computatrum dataset build ${repository}:<tag>\``,
        );
      print(
        table(
          ['digest', 'records', 'preferences', 'labelled', 'transcripts', 'as of (UTC)', 'built by'],
          datasets.map((d) => [
            d.digest,
            String(d.records),
            String(d.preferences),
            String(d.labelled),
            String(d.transcripts),
            d.asOf ? d.asOf.replace('T', ' ').slice(0, 19) : '',
            d.builtBy,
          ]),
          { alignRight: [1, 2, 3, 4] },
        ),
      );
    });
}
