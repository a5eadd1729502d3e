// The marketplace's own rules: a trainer lists a breed (a repository under trainers/<handle>/) free
// or for a price. Who may download a paid breed is read-access.ts; payments are stripe.ts.
import type { Database } from '../db/prisma';
import type { CheckpointStore } from '../store/types';
import { parseAmount, parseUsePrice } from '../workflows/money';
import { type AccountView, assertOwnRepository } from './accounts';
import { PlatformError } from './errors';
import { inheritedBreeds } from './read-access';

export { entitlementId } from './read-access';

export interface BreedView {
  repository: string;
  title: string;
  owner: string;
  /** Minor units, or null when free. */
  price: bigint | null;
  currency: string;
  /** Per-use prices in minor units per 1,000,000 tokens (shown per 1,000); null: none. */
  inputPricePerMillion: bigint | null;
  outputPricePerMillion: bigint | null;
  /** Whether buying the download also buys use on instances without per-use charges. */
  licenceIncludesUse: boolean;
}

type BreedRow = NonNullable<Awaited<ReturnType<Database['breed']['findUnique']>>>;

const viewOf = (breed: BreedRow, owner: string): BreedView => ({
  repository: breed.repository,
  title: breed.title,
  owner,
  price: breed.price,
  currency: breed.currency,
  inputPricePerMillion: breed.inputPricePerMillion,
  outputPricePerMillion: breed.outputPricePerMillion,
  licenceIncludesUse: breed.licenceIncludesUse,
});

export async function publishBreed(
  db: Database,
  store: CheckpointStore,
  owner: AccountView,
  input: { repository: string; title: string; price?: string | null; currency: string },
  /** Starts probes of the breed's checkpoints not probed yet (platform/probes.ts probeNewVersions). */
  probeNewVersions?: (repository: string) => Promise<unknown>,
): Promise<BreedView> {
  assertOwnRepository(owner, input.repository, 'you can list breeds');
  const title = input.title.trim();
  if (!title || title.length > 120) throw new PlatformError('BAD_USER_INPUT', 'a title is 1 to 120 characters');
  let price: bigint | null = null;
  if (input.price) {
    try {
      price = parseAmount(input.price, input.currency);
    } catch (error) {
      throw new PlatformError('BAD_USER_INPUT', (error as Error).message);
    }
    if (price <= 0n) throw new PlatformError('BAD_USER_INPUT', 'a price is above zero; leave it out for a free breed');
  }
  if ((await store.listTags(input.repository)).length === 0) {
    throw new PlatformError('NOT_FOUND', `${input.repository} has no checkpoints yet: push or fork one there first`);
  }
  // A fork or a run from someone else's paid breed keeps that breed's terms: it is not the publisher's to list.
  const foreign = (await inheritedBreeds(db, input.repository)).filter((b) => b.ownerId !== owner.id);
  if (foreign.length > 0) {
    throw new PlatformError(
      'FORBIDDEN',
      `${input.repository} holds content of the paid breed ${foreign.map((b) => b.repository).join(', ')}: it cannot be listed as a breed of yours`,
    );
  }
  const breed = await db.breed.upsert({
    where: { repository: input.repository },
    create: { repository: input.repository, ownerId: owner.id, title, price, currency: input.currency },
    update: { title, price },
  });
  // Listed either way: a probe that cannot start now is started by the next daily sweep of breeds.
  await probeNewVersions?.(input.repository).catch(() => undefined);
  return viewOf(breed, owner.handle);
}

/**
 * Sets a breed's prices, each left as it is when not given: the download price ("0": free to
 * download), the per-use prices per 1,000 tokens of input and of output ("0": none), and whether a
 * download licence includes use. A per-use price is charged to every caller of an instance of it
 * (or of content made from it) except the breed's owner, operators, and licence holders when it says so.
 */
export async function priceBreed(
  db: Database,
  owner: AccountView,
  input: {
    repository: string;
    download?: string | null;
    inputPer1k?: string | null;
    outputPer1k?: string | null;
    licenceIncludesUse?: boolean | null;
  },
): Promise<BreedView> {
  const breed = await db.breed.findUnique({ where: { repository: input.repository } });
  if (!breed || breed.ownerId !== owner.id)
    throw new PlatformError('NOT_FOUND', `you have no breed ${input.repository}: publish it first (publishBreed)`);
  const parse = <T>(what: string, read: () => T): T => {
    try {
      return read();
    } catch (error) {
      throw new PlatformError('BAD_USER_INPUT', `${what}: ${(error as Error).message}`);
    }
  };
  const isZero = (text: string) => /^\s*0*(\.0*)?\s*$/.test(text);
  const data: {
    price?: bigint | null;
    inputPricePerMillion?: bigint | null;
    outputPricePerMillion?: bigint | null;
    licenceIncludesUse?: boolean;
  } = {};
  if (input.download != null)
    data.price = isZero(input.download)
      ? null
      : parse('the download price', () => parseAmount(input.download!, breed.currency));
  if (input.inputPer1k != null) {
    const price = parse('the input price', () => parseUsePrice(input.inputPer1k!, breed.currency));
    data.inputPricePerMillion = price === 0n ? null : price;
  }
  if (input.outputPer1k != null) {
    const price = parse('the output price', () => parseUsePrice(input.outputPer1k!, breed.currency));
    data.outputPricePerMillion = price === 0n ? null : price;
  }
  if (input.licenceIncludesUse != null) data.licenceIncludesUse = input.licenceIncludesUse;
  if (Object.keys(data).length === 0)
    throw new PlatformError(
      'BAD_USER_INPUT',
      'give a price to set: download, inputPer1k, outputPer1k or licenceIncludesUse',
    );
  return viewOf(await db.breed.update({ where: { repository: breed.repository }, data }), owner.handle);
}

export async function listBreeds(db: Database, limit = 50): Promise<BreedView[]> {
  const rows = await db.breed.findMany({
    orderBy: { createdAt: 'desc' },
    take: limit,
    include: { owner: { select: { handle: true } } },
  });
  return rows.map((b) => viewOf(b, b.owner.handle));
}
