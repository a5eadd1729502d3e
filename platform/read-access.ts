// Who may read which bytes. Everything is free except the content of a priced breed, which its
// owner, operators and buyers read; a repository whose content came from a breed (a fork of it, a
// training run from it) keeps that breed's terms. The store answers only for blobs a repository
// holds, so these rules are decided by what is served, whichever URL or name asked for it.
import { pricedBreedsGoverning } from '../db/breed-terms';
import type { Database } from '../db/prisma';
import type { Caller } from './accounts';
import { PlatformError } from './errors';

export interface ReadRefusal {
  status: 401 | 403;
  message: string;
}

/** The OCI empty config (`{}`) that artifacts such as recordings use: it holds nothing of anyone's. */
const EMPTY_CONFIG_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

export const entitlementId = (accountId: string, repository: string): string => `${accountId}:${repository}`;

/** Why `caller` may not read `repository`, or undefined when it may. */
export async function readRefusal(db: Database, caller: Caller, repository: string): Promise<ReadRefusal | undefined> {
  const breeds = await pricedBreedsGoverning(db, repository);
  if (breeds.length === 0) return undefined;
  const account = caller.account;
  const named = (breed: string) =>
    breed === repository ? `${repository} is a paid breed` : `${repository} holds content of the paid breed ${breed}`;
  if (!account)
    return {
      status: 401,
      message: `${named(breeds[0]!.repository)}: sign in (an API token) to download what you bought`,
    };
  if (account.role === 'operator') return undefined;
  for (const breed of breeds) {
    if (breed.ownerId === account.id) continue;
    if (
      await db.entitlement.findUnique({
        where: { id: entitlementId(account.id, breed.repository) },
        select: { id: true },
      })
    )
      continue;
    return {
      status: 403,
      message: `${named(breed.repository)} and ${account.handle} has not bought it: buy ${breed.repository} on the marketplace`,
    };
  }
  return undefined;
}

/** Throws FORBIDDEN when `caller` may not read `repository`; `what` says what was refused ("fork", "train from"). */
export async function assertMayRead(db: Database, caller: Caller, repository: string, what: string): Promise<void> {
  const refusal = await readRefusal(db, caller, repository);
  if (refusal) throw new PlatformError('FORBIDDEN', `you may not ${what} ${repository}: ${refusal.message}`);
}

/**
 * Content copied from `source` into `target` (a fork, a training run's output) keeps the terms of
 * every priced breed that governs `source`, so it is never a free republication.
 */
export async function inheritTerms(db: Database, source: string, target: string): Promise<void> {
  if (source === target) return;
  const breeds = (await pricedBreedsGoverning(db, source)).filter((b) => b.repository !== target);
  if (breeds.length === 0) return;
  // A listed breed's buyers paid its owner for it: someone else's paid content cannot go into it.
  const listed = await db.breed.findUnique({ where: { repository: target }, select: { ownerId: true } });
  const foreign = breeds.filter((b) => listed && b.ownerId !== listed.ownerId);
  if (foreign.length > 0) {
    throw new PlatformError(
      'FORBIDDEN',
      `${target} is listed as a breed: content of the paid breed ${foreign.map((b) => b.repository).join(', ')} cannot go into it; choose a repository that is not listed`,
    );
  }
  await db.inheritedTerms.createMany({
    data: breeds.map((b) => ({ repository: target, breedRepository: b.repository })),
    skipDuplicates: true,
  });
}

/** The priced breeds (other than `repository` itself) whose terms `repository` keeps. */
export async function inheritedBreeds(
  db: Database,
  repository: string,
): Promise<Array<{ repository: string; ownerId: string }>> {
  return (await pricedBreedsGoverning(db, repository)).filter((b) => b.repository !== repository);
}

/**
 * True for content everyone may read whatever its repository's terms: the recordings attached to an
 * image (the community's warnings about a model stay open, paid breed or not).
 */
export async function isPublicAttachment(db: Database, repository: string, digest: string): Promise<boolean> {
  if (digest === EMPTY_CONFIG_DIGEST) return true;
  const recording = await db.recording.findFirst({
    where: { repository, OR: [{ manifestDigest: digest }, { blobDigest: digest }] },
    select: { id: true },
  });
  return recording !== null;
}
