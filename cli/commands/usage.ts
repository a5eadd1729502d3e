// Paying for intelligence from the command line: a trainer prices their breed's use (`price`), and
// anyone signed in reads what their priced calls cost and what their breeds earned (`usage`).
import type { Command } from 'commander';
import type { Config } from '../../runtime/config';
import { formatMoney } from '../../workflows/money';
import { print, UserError } from '../common';
import { platformApi } from '../platform-api';
import { table } from '../table';

const fromOption = [
  '--from <url>',
  'platform URL, with COMPUTATRUM_TOKEN (default: this computatrum platform)',
] as const;

interface BreedPrices {
  repository: string;
  price: string | null;
  currency: string;
  inputPricePer1k: string | null;
  outputPricePer1k: string | null;
  licenceIncludesUse: boolean;
}

interface Usage {
  currency: string;
  since: string;
  charged: string;
  calls: number;
  refusals: number;
  earned: string;
  earnedUnpaid: string;
  entries: Array<{
    id: string;
    at: string;
    instance: string;
    repository: string;
    state: string;
    caller: string;
    inputTokens: number | null;
    outputTokens: number | null;
    amount: string;
    reason: string | null;
  }>;
}

/** A breed's prices in words: "download 9.99 USD; use 0.002 USD in, 0.006 USD out per 1,000 tokens". */
export function describeBreedPrices(b: BreedPrices): string {
  const currency = b.currency.toUpperCase();
  const download = b.price ? `download ${formatMoney(b.price, b.currency)}` : 'free to download';
  const use =
    b.inputPricePer1k || b.outputPricePer1k
      ? `use ${b.inputPricePer1k ?? '0'} ${currency} in, ${b.outputPricePer1k ?? '0'} ${currency} out per 1,000 tokens${b.price ? (b.licenceIncludesUse ? ' (buyers use it free)' : ' (buyers pay for use too)') : ''}`
      : 'free to use';
  return `${download}; ${use}`;
}

export function addUsageCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Paying for use:');

  program
    .command('price')
    .description(
      "set your breed's prices: download, and per 1,000 tokens of use on instances (what is not given stays)",
    )
    .argument('<repo>', 'your breed, e.g. trainers/alice/coder')
    .option('--download <amount>', 'e.g. 9.99; 0: free to download')
    .option('--input <price>', 'per 1,000 tokens of prompt, e.g. 0.002; 0: none')
    .option('--output <price>', 'per 1,000 tokens of answer, e.g. 0.006; 0: none')
    .option('--licence-includes-use', 'buyers of the download use it on instances without per-use charges')
    .option('--no-licence-includes-use', 'buyers of the download pay for use too')
    .option(...fromOption)
    .action(
      async (
        repository: string,
        options: { download?: string; input?: string; output?: string; licenceIncludesUse?: boolean; from?: string },
      ) => {
        if ([options.download, options.input, options.output, options.licenceIncludesUse].every((v) => v === undefined))
          throw new UserError('give a price to set: --download, --input, --output or --[no-]licence-includes-use', 2);
        const { priceBreed } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
          priceBreed: BreedPrices;
        }>(
          `mutation($repository: String!, $download: String, $input: String, $output: String, $licence: Boolean) {
            priceBreed(repository: $repository, download: $download, inputPer1k: $input, outputPer1k: $output, licenceIncludesUse: $licence) {
              repository price currency inputPricePer1k outputPricePer1k licenceIncludesUse
            }
          }`,
          {
            repository,
            download: options.download ?? null,
            input: options.input ?? null,
            output: options.output ?? null,
            licence: options.licenceIncludesUse ?? null,
          },
        );
        print(`${priceBreed.repository}: ${describeBreedPrices(priceBreed)}`);
      },
    );

  program
    .command('usage')
    .description('what your priced calls cost and were refused, and what your breeds earned')
    .option('--since <time>', 'calls at or after this time (default: 30 days ago)')
    .option('--limit <n>', 'calls listed (1 to 500)', '20')
    .option('--json', 'print JSON')
    .option(...fromOption)
    .action(async (options: { since?: string; limit: string; json?: boolean; from?: string }) => {
      if (options.since && Number.isNaN(new Date(options.since).getTime()))
        throw new UserError(`--since "${options.since}" is not a time: write it like 2026-11-30`, 2);
      const limit = Number(options.limit);
      if (!Number.isInteger(limit)) throw new UserError(`--limit "${options.limit}" is not a whole number`, 2);
      const { myUsage } = await platformApi(config(), { ...options, signedIn: true }).graphql<{ myUsage: Usage }>(
        `query($since: String, $limit: Int) { myUsage(since: $since, limit: $limit) {
          currency since charged calls refusals earned earnedUnpaid
          entries { id at instance repository state caller inputTokens outputTokens amount reason }
        } }`,
        { since: options.since ?? null, limit },
      );
      if (options.json) return print(JSON.stringify(myUsage, null, 2));
      print(
        `since ${myUsage.since.slice(0, 10)}: ${myUsage.calls} priced calls charged ${myUsage.charged}, ${myUsage.refusals} refused`,
      );
      print(
        `your breeds earned ${formatMoney(myUsage.earned, myUsage.currency)} (${formatMoney(myUsage.earnedUnpaid, myUsage.currency)} not yet paid out)`,
      );
      if (myUsage.entries.length === 0) return;
      print(
        table(
          ['time', 'image', 'instance', 'state', 'tokens in/out', 'amount', 'why'],
          myUsage.entries.map((e) => [
            e.at.slice(0, 19).replace('T', ' '),
            e.repository,
            e.instance,
            e.state,
            e.inputTokens === null ? '' : `${e.inputTokens}/${e.outputTokens}`,
            e.amount,
            e.reason ?? (e.caller.startsWith('visitor:') ? 'a visitor of your public instance' : ''),
          ]),
          { alignRight: [4, 5] },
        ),
      );
    });
}
