// The marketplace's own rules: a trainer lists a breed (a repository under trainers/<handle>/) free
// or for a price. Who may download a paid breed is read-access.ts; payments are stripe.ts.
import type { Database } from '../db/prisma';
import type { CheckpointStore } from '../store/types';
import { parseAmount } from '../workflows/money';
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
}

export async function publishBreed(
  db: Database,
  store: CheckpointStore,
  owner: AccountView,
  input: { repository: string; title: string; price?: string | null; currency: string },
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
  return {
    repository: breed.repository,
    title: breed.title,
    owner: owner.handle,
    price: breed.price,
    currency: breed.currency,
  };
}

export async function listBreeds(db: Database, limit = 50): Promise<BreedView[]> {
  const rows = await db.breed.findMany({
    orderBy: { createdAt: 'desc' },
    take: limit,
    include: { owner: { select: { handle: true } } },
  });
  return rows.map((b) => ({
    repository: b.repository,
    title: b.title,
    owner: b.owner.handle,
    price: b.price,
    currency: b.currency,
  }));
}
