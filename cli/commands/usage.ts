// Paying for intelligence from the command line: a trainer prices their breed's use (`price`),
// anyone signed in reads what their priced calls cost and what their breeds earned (`usage`), and a
// sponsor funds free use for personal users (`sponsor create|grant|fund|show`).
import { randomUUID } from 'node:crypto';
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
    sponsor: string | null;
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
          entries { id at instance repository state caller inputTokens outputTokens amount reason sponsor }
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
            e.reason ??
              (e.sponsor
                ? `paid by ${e.sponsor}'s grant`
                : e.caller.startsWith('visitor:')
                  ? 'a visitor of your public instance'
                  : ''),
          ]),
          { alignRight: [4, 5] },
        ),
      );
    });

  program
    .command('pay-trainers')
    .description(
      'operators: pay trainers their unpaid earnings now (Stripe Connect transfers; the platform does it daily)',
    )
    .option(...fromOption)
    .action(async (options: { from?: string }) => {
      const { payOutEarnings } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        payOutEarnings: Array<{
          id: string;
          handle: string;
          amount: string;
          currency: string;
          state: string;
          error: string | null;
        }>;
      }>('mutation { payOutEarnings { id handle amount currency state error } }');
      if (payOutEarnings.length === 0)
        return print('nothing to pay out: no trainer with a payout account is owed the minimum');
      print(
        table(
          ['payout', 'trainer', 'amount', 'state'],
          payOutEarnings.map((p) => [
            p.id,
            p.handle,
            formatMoney(p.amount, p.currency),
            p.error ? `${p.state}: ${p.error}` : p.state,
          ]),
          { alignRight: [2] },
        ),
      );
    });

  const sponsor = program
    .command('sponsor')
    .description("a sponsor's grant: free use for personal users, paid by an organisation");
  sponsor
    .command('create')
    .description('make a sponsor you manage (its fund is sponsor/<name>)')
    .argument('<name>', 'lowercase letters, digits and dashes, e.g. acme')
    .requiredOption('--title <text>', 'who sponsors, as people will read it')
    .option(...fromOption)
    .action(async (name: string, options: { title: string; from?: string }) => {
      await platformApi(config(), { ...options, signedIn: true }).graphql(
        'mutation($name: String!, $title: String!) { createSponsor(name: $name, title: $title) { name } }',
        { name, title: options.title },
      );
      print(`sponsor ${name} is made: fund it (computatrum sponsor fund ${name} <amount>), then set its grant`);
    });
  sponsor
    .command('grant')
    .description("set your sponsor's grant (what is not given stays)")
    .argument('<name>')
    .option('--daily <amount>', 'what each eligible person may use a day, e.g. 0.50; 0: no grant')
    .option('--domain <domain>', 'only personal accounts with an email there, e.g. example.org; "": everyone')
    .option('--expires <time>', 'no call is paid after this, e.g. 2027-01-01; "": never')
    .option(...fromOption)
    .action(async (name: string, options: { daily?: string; domain?: string; expires?: string; from?: string }) => {
      if ([options.daily, options.domain, options.expires].every((v) => v === undefined))
        throw new UserError('give something to set: --daily, --domain or --expires', 2);
      const { setSponsorGrant } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        setSponsorGrant: Grant;
      }>(
        `mutation($name: String!, $daily: String, $domain: String, $expires: String) {
          setSponsorGrant(name: $name, dailyAllowance: $daily, eligibleDomain: $domain, expiresAt: $expires) {
            name title dailyAllowance eligibleDomain expiresAt currency
          }
        }`,
        { name, daily: options.daily ?? null, domain: options.domain ?? null, expires: options.expires ?? null },
      );
      print(`${name}: ${describeGrant(setSponsorGrant)}`);
    });
  sponsor
    .command('fund')
    .description("pay into your sponsor's fund through Stripe Checkout: prints the page to pay on")
    .argument('<name>')
    .argument('<amount>', 'e.g. 100.00')
    .option('--request-id <id>', 'the same id gives the same Checkout Session (default: a new one)')
    .option(...fromOption)
    .action(async (name: string, amount: string, options: { requestId?: string; from?: string }) => {
      const { fundSponsor } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        fundSponsor: { url: string | null };
      }>(
        'mutation($name: String!, $amount: String!, $requestId: String!) { fundSponsor(name: $name, amount: $amount, requestId: $requestId) { url } }',
        { name, amount, requestId: options.requestId ?? randomUUID() },
      );
      print(`pay at: ${fundSponsor.url ?? '(Stripe gave no page)'}`);
    });
  sponsor
    .command('show')
    .description('your sponsor: its fund and what its grant paid for (totals, not transcripts)')
    .argument('<name>')
    .option('--since <time>', 'from this time (default: 30 days ago)')
    .option('--json', 'print JSON')
    .option(...fromOption)
    .action(async (name: string, options: { since?: string; json?: boolean; from?: string }) => {
      const { sponsor: report } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        sponsor: {
          sponsor: Grant;
          fund: { deposited: string; spent: string; available: string; reserved: string };
          calls: number;
          people: number;
          paid: string;
          byDay: Array<{ day: string; calls: number; people: number; paid: string }>;
        };
      }>(
        `query($name: String!, $since: String) { sponsor(name: $name, since: $since) {
          sponsor { name title dailyAllowance eligibleDomain expiresAt currency }
          fund { deposited spent available reserved } calls people paid byDay { day calls people paid }
        } }`,
        { name, since: options.since ?? null },
      );
      if (options.json) return print(JSON.stringify(report, null, 2));
      const currency = report.sponsor.currency;
      print(`${report.sponsor.title} (${name}): ${describeGrant(report.sponsor)}`);
      print(
        `fund: ${formatMoney(report.fund.available, currency)} available of ${formatMoney(report.fund.deposited, currency)} paid in (${formatMoney(report.fund.spent, currency)} spent, ${formatMoney(report.fund.reserved, currency)} held)`,
      );
      print(`the grant paid ${report.paid} for ${report.calls} calls of ${report.people} people`);
      if (report.byDay.length)
        print(
          table(
            ['day', 'calls', 'people', 'paid'],
            report.byDay.map((d) => [d.day, String(d.calls), String(d.people), d.paid]),
            { alignRight: [1, 2, 3] },
          ),
        );
    });
}

interface Grant {
  name: string;
  title: string;
  dailyAllowance: string;
  eligibleDomain: string | null;
  expiresAt: string | null;
  currency: string;
}

/** "0.50 USD a day for each person at example.org, until 2027-01-01" */
export function describeGrant(grant: Grant): string {
  if (grant.dailyAllowance === '0') return 'no grant';
  return `${formatMoney(grant.dailyAllowance, grant.currency)} a day for each person${grant.eligibleDomain ? ` at ${grant.eligibleDomain}` : ''}${grant.expiresAt ? `, until ${grant.expiresAt.slice(0, 10)}` : ''}`;
}
