// The marketplace's own rules: a trainer lists a breed (a repository under trainers/<handle>/) free
// or for a price, and a paid breed's checkpoints are downloaded only by its owner, operators and
// buyers holding an entitlement. Payments themselves are in stripe.ts.
import type { Database } from '../activities/db/prisma';
import type { CheckpointStore } from '../activities/store/types';
import { parseAmount } from '../workflows/money';
import { type AccountView, assertOwnRepository, type Caller } from './accounts';
import { PlatformError } from './errors';

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
  const breed = await db.breed.upsert({
    where: { repository: input.repository },
    create: { repository: input.repository, ownerId: owner.id, title, price, currency: input.currency },
    update: { title, price },
  });
  return { repository: breed.repository, title: breed.title, owner: owner.handle, price: breed.price, currency: breed.currency };
}

export async function listBreeds(db: Database, limit = 50): Promise<BreedView[]> {
  const rows = await db.breed.findMany({ orderBy: { createdAt: 'desc' }, take: limit, include: { owner: { select: { handle: true } } } });
  return rows.map((b) => ({ repository: b.repository, title: b.title, owner: b.owner.handle, price: b.price, currency: b.currency }));
}

export const entitlementId = (accountId: string, repository: string): string => `${accountId}:${repository}`;

/**
 * Why `caller` may not download from `repository`, or undefined when it may: everything is free
 * except a priced breed, which its owner, operators and its buyers may download.
 */
export async function downloadRefusal(db: Database, caller: Caller, repository: string): Promise<{ status: 401 | 403; message: string } | undefined> {
  if (!repository.startsWith('trainers/')) return undefined;
  const breed = await db.breed.findUnique({ where: { repository } });
  if (!breed || breed.price === null) return undefined;
  const account = caller.account;
  if (!account) return { status: 401, message: `${repository} is a paid breed: sign in (an API token) to download what you bought` };
  if (account.role === 'operator' || account.id === breed.ownerId) return undefined;
  if (await db.entitlement.findUnique({ where: { id: entitlementId(account.id, repository) } })) return undefined;
  return { status: 403, message: `${repository} is a paid breed and ${account.handle} has not bought it: buy it on the marketplace` };
}
