// Shared queries of behaviour probes (the Probe and ImageFlag rows): whether an image was probed
// already (automatic triggers probe each digest once), and whether a flag blocks it now (the
// platform refuses new public instances and purchases of a flagged image).
import type { Database } from './prisma';

/** Flags in these states block new public instances and purchases: awaiting review, or confirmed. */
export const BLOCKING_FLAG_STATES = ['pending', 'confirmed'] as const;

/** A probe of this digest ran, runs or waits to run (an errored one does not count: it saw nothing). */
export async function hasBeenProbed(db: Database, repository: string, digest: string): Promise<boolean> {
  const row = await db.probe.findFirst({
    where: { repository, digest, state: { not: 'error' } },
    select: { id: true },
  });
  return row !== null;
}

/** The flag that blocks the image now: one digest, or (no digest) any checkpoint of the repository. */
export function blockingFlag(db: Database, repository: string, digest?: string) {
  return db.imageFlag.findFirst({
    where: { repository, ...(digest ? { digest } : {}), state: { in: [...BLOCKING_FLAG_STATES] } },
    orderBy: { createdAt: 'desc' },
  });
}

/** What a refusal says about a flagged image, so people know it is not them and what happens next. */
export function flaggedMessage(
  flag: { repository: string; digest: string; state: string; reason: string },
  refused: string,
): string {
  const status =
    flag.state === 'confirmed' ? 'confirmed as malicious by an operator' : 'flagged pending operator review';
  return `${refused}: ${flag.repository}@${flag.digest.slice(0, 19)}… is ${status} (an automated probe found: ${flag.reason})`;
}
