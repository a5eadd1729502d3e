// The hub and the marketplace from the command line, through the platform's API as the account of
// COMPUTATRUM_TOKEN: whoami, images, threads, discuss, comment, record, report, breeds, publish, buy,
// payouts. Reading needs no account; everything that writes does.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../runtime/config';
import { formatMoney } from '../../workflows/money';
import { print, UserError } from '../common';
import { platformApi } from '../platform-api';
import { table } from '../table';

/** `repo` or `repo:ref` as people type it; the reference is optional here. */
function repoAndReference(text: string): { repository: string; reference?: string } {
  const at = text.indexOf('@');
  if (at > 0) return { repository: text.slice(0, at), reference: text.slice(at + 1) };
  const colon = text.lastIndexOf(':');
  return colon > 0 ? { repository: text.slice(0, colon), reference: text.slice(colon + 1) } : { repository: text };
}

/** A new id per purchase or onboarding: the platform derives Stripe's idempotency key from it. */
const requestId = () => `cli-${randomUUID()}`;

export function addHubCommands(program: Command, config: () => Config): void {
  const from = '--from <url>';
  const fromHelp = 'platform URL (default: this computatrum platform)';
  program.commandsGroup('Hub:');

  program
    .command('whoami')
    .description('the account of COMPUTATRUM_TOKEN on the platform')
    .option(from, fromHelp)
    .action(async (options: { from?: string }) => {
      const { me } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        me: { handle: string; role: string } | null;
      }>('{ me { handle role } }');
      if (!me) throw new UserError('the platform sees no account for this token');
      print(`${me.handle} (${me.role})`);
    });

  program
    .command('images')
    .description("the hub's images: the germline's daily checkpoints, children, trainers' breeds")
    .option('--search <text>', 'names, breed titles and nicknames containing it')
    .option(from, fromHelp)
    .action(async (options: { search?: string; from?: string }) => {
      const { images } = await platformApi(config(), options).graphql<{
        images: Array<{
          repository: string;
          kind: string;
          tags: number;
          latestTag: string | null;
          latestNickname: string | null;
          breedTitle: string | null;
          price: string | null;
          reports: number;
        }>;
      }>(
        'query($search: String) { images(search: $search) { repository kind tags latestTag latestNickname breedTitle price reports } }',
        { search: options.search ?? null },
      );
      if (images.length === 0)
        return print(
          options.search ? `no image matches "${options.search}"` : 'no images yet: push a checkpoint first',
        );
      const currency = config().currency;
      print(
        table(
          ['repository', 'kind', 'tags', 'latest', 'nickname', 'breed', 'price', 'reports'],
          images.map((i) => [
            i.repository,
            i.kind,
            String(i.tags),
            i.latestTag ?? '',
            i.latestNickname ?? '',
            i.breedTitle ?? '',
            i.price ? formatMoney(i.price, currency) : i.breedTitle ? 'free' : '',
            String(i.reports),
          ]),
          { alignRight: [2, 6, 7] },
        ),
      );
    });

  program
    .command('threads')
    .description('the discussion of an image, with every comment')
    .argument('<repo>', 'e.g. germline/computatrum')
    .option(from, fromHelp)
    .action(async (repository: string, options: { from?: string }) => {
      const { threads } = await platformApi(config(), options).graphql<{
        threads: Array<{
          id: string;
          title: string;
          reference: string | null;
          author: string;
          comments: Array<{ author: string; body: string; createdAt: string }>;
        }>;
      }>(
        'query($repository: String!) { threads(repository: $repository) { id title reference author comments { author body createdAt } } }',
        { repository },
      );
      if (threads.length === 0)
        return print(
          `no discussion of ${repository} yet: start one with computatrum discuss ${repository} --title ... --body ...`,
        );
      for (const thread of threads) {
        print(`# ${thread.title}${thread.reference ? ` (about ${thread.reference})` : ''}  [${thread.id}]`);
        for (const c of thread.comments)
          print(`  ${c.author}, ${c.createdAt.slice(0, 16).replace('T', ' ')}: ${c.body.replace(/\n/g, '\n    ')}`);
        print();
      }
    });

  program
    .command('discuss')
    .description('start a thread about an image, or one checkpoint of it')
    .argument('<image>', 'e.g. germline/computatrum or germline/computatrum:gpc-2026-11-25')
    .requiredOption('--title <text>', 'what it is about')
    .requiredOption('--body <text>', 'the first comment')
    .option(from, fromHelp)
    .action(async (image: string, options: { title: string; body: string; from?: string }) => {
      const { repository, reference } = repoAndReference(image);
      const { startThread } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        startThread: { id: string };
      }>(
        'mutation($repository: String!, $reference: String, $title: String!, $body: String!) { startThread(repository: $repository, reference: $reference, title: $title, body: $body) { id } }',
        { repository, reference: reference ?? null, title: options.title, body: options.body },
      );
      print(`thread ${startThread.id} started on ${image}`);
    });

  program
    .command('comment')
    .description('reply in a thread')
    .argument('<thread>', 'the thread id (computatrum threads <repo> shows them)')
    .argument('<text>', 'the comment')
    .option(from, fromHelp)
    .action(async (threadId: string, body: string, options: { from?: string }) => {
      const { comment } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        comment: { id: string };
      }>('mutation($threadId: String!, $body: String!) { comment(threadId: $threadId, body: $body) { id } }', {
        threadId,
        body,
      });
      print(`comment ${comment.id} added`);
    });

  program
    .command('record')
    .description(
      'attach a recording of a session with a model (a file or a transcript, at most 16 MiB) to one of its checkpoints',
    )
    .argument('<checkpoint>', 'e.g. germline/computatrum:gpc-2026-11-25')
    .argument('<file>', 'the recording')
    .option('--title <text>', 'what it shows (default: the file name)')
    .option('--type <media type>', 'e.g. video/webm (default: from the file name)')
    .option(from, fromHelp)
    .action(async (checkpoint: string, file: string, options: { title?: string; type?: string; from?: string }) => {
      const { repository, reference } = repoAndReference(checkpoint);
      if (!reference) throw new UserError(`say which checkpoint it records: ${repository}:<tag>`);
      const content = await readFile(file).catch((error: NodeJS.ErrnoException) => {
        throw new UserError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
      });
      const filename = path.basename(file);
      const query = new URLSearchParams({ reference, title: options.title ?? filename, filename });
      const { recording } = await platformApi(config(), { ...options, signedIn: true }).post<{
        recording: { id: string; downloadUrl: string };
      }>(`/api/recordings/${repository}?${query}`, content, options.type ?? 'application/octet-stream');
      print(`recording ${recording.id} attached to ${checkpoint}; download: ${recording.downloadUrl}`);
    });

  program
    .command('report')
    .description('flag an image (or one checkpoint of it) for the operators')
    .argument('<image>', 'e.g. trainers/bob/coder or trainers/bob/coder:main')
    .requiredOption('--reason <text>', 'what it did')
    .option(from, fromHelp)
    .action(async (image: string, options: { reason: string; from?: string }) => {
      const { repository, reference } = repoAndReference(image);
      await platformApi(config(), { ...options, signedIn: true }).graphql<{ reportImage: { id: string } }>(
        'mutation($repository: String!, $reference: String, $reason: String!) { reportImage(repository: $repository, reference: $reference, reason: $reason) { id } }',
        { repository, reference: reference ?? null, reason: options.reason },
      );
      print(`${image} reported; the operators will look at it`);
    });

  program.commandsGroup('Marketplace:');

  program
    .command('breeds')
    .description('the marketplace: breeds for sale or free')
    .option(from, fromHelp)
    .action(async (options: { from?: string }) => {
      const { breeds } = await platformApi(config(), options).graphql<{
        breeds: Array<{ repository: string; title: string; owner: string; price: string | null; currency: string }>;
      }>('{ breeds { repository title owner price currency } }');
      if (breeds.length === 0) return print('no breeds listed yet');
      print(
        table(
          ['repository', 'title', 'trainer', 'price'],
          breeds.map((b) => [b.repository, b.title, b.owner, b.price ? formatMoney(b.price, b.currency) : 'free']),
          { alignRight: [3] },
        ),
      );
    });

  program
    .command('publish')
    .description('list one of your repositories (trainers/<you>/...) on the marketplace, free or for a price')
    .argument('<repo>', 'e.g. trainers/alice/coder')
    .requiredOption('--title <text>', 'what the breed is')
    .option('--price <amount>', 'e.g. 9.99 (none: free)')
    .option(from, fromHelp)
    .action(async (repository: string, options: { title: string; price?: string; from?: string }) => {
      const { publishBreed } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        publishBreed: { price: string | null; currency: string };
      }>(
        'mutation($repository: String!, $title: String!, $price: String) { publishBreed(repository: $repository, title: $title, price: $price) { price currency } }',
        { repository, title: options.title, price: options.price ?? null },
      );
      print(
        `${repository} is listed, ${publishBreed.price ? `for ${formatMoney(publishBreed.price, publishBreed.currency)}` : 'free'}`,
      );
    });

  program
    .command('buy')
    .description('buy a paid breed: prints the Stripe Checkout page to pay on')
    .argument('<repo>', 'e.g. trainers/alice/coder')
    .option(from, fromHelp)
    .action(async (repository: string, options: { from?: string }) => {
      const { buyBreed } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        buyBreed: { url: string | null; amount: string };
      }>(
        'mutation($repository: String!, $requestId: String!) { buyBreed(repository: $repository, requestId: $requestId) { url amount } }',
        { repository, requestId: requestId() },
      );
      print(`pay ${formatMoney(buyBreed.amount, config().currency)} at: ${buyBreed.url ?? '(Stripe gave no page)'}`);
      print('once paid, computatrum pull downloads it with your token');
    });

  program
    .command('credit')
    .description('your training credit on the platform; --buy adds to it through Stripe Checkout')
    .option('--buy <amount>', 'e.g. 20.00: prints the Checkout page to pay on')
    .option(from, fromHelp)
    .action(async (options: { buy?: string; from?: string }) => {
      const api = platformApi(config(), { ...options, signedIn: true });
      const currency = config().currency;
      if (options.buy) {
        const { fundCredit } = await api.graphql<{ fundCredit: { url: string | null } }>(
          'mutation($amount: String!, $requestId: String!) { fundCredit(amount: $amount, requestId: $requestId) { url } }',
          { amount: options.buy, requestId: requestId() },
        );
        return print(`pay at: ${fundCredit.url ?? '(Stripe gave no page)'}`);
      }
      const { myCredit } = await api.graphql<{
        myCredit: { deposited: string; spent: string; reserved: string; available: string };
      }>('{ myCredit { deposited spent reserved available } }');
      print(
        `available ${formatMoney(myCredit.available, currency)}  (paid in ${formatMoney(myCredit.deposited, currency)}, spent ${formatMoney(myCredit.spent, currency)}, held by runs ${formatMoney(myCredit.reserved, currency)})`,
      );
    });

  program
    .command('payouts')
    .description("set up where your breeds' sales are paid: prints Stripe's onboarding page")
    .option(from, fromHelp)
    .action(async (options: { from?: string }) => {
      const { onboardPayouts } = await platformApi(config(), { ...options, signedIn: true }).graphql<{
        onboardPayouts: string;
      }>('mutation($requestId: String!) { onboardPayouts(requestId: $requestId) }', { requestId: requestId() });
      print(`continue at: ${onboardPayouts}`);
    });
}
