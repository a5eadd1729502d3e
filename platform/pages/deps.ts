// What the pages read and change: the same parts the GraphQL API is given.
import type { Client } from '@temporalio/client';
import type { Database } from '../../activities/db/prisma';
import type { CheckpointStore } from '../../activities/store/types';
import type { StripeSettings } from '../stripe';

export interface PagesDeps {
  db: Database;
  store: CheckpointStore;
  germline: string;
  currency: string;
  /** Absent where the platform runs without Temporal: the zookeeper says so. */
  client?: Client;
  /** Absent where payments are not configured: buying and payouts say so. */
  stripe?: StripeSettings;
  /** The Temporal Web UI, for links from the zookeeper. */
  temporalUiUrl?: string;
}

export const germlineRepository = (deps: PagesDeps) => `germline/${deps.germline}`;

/** The newest published daily checkpoint of the germline, or null before the first. */
export function latestDaily(deps: PagesDeps) {
  return deps.db.checkpoint.findFirst({ where: { repository: germlineRepository(deps), status: 'published' }, orderBy: [{ day: 'desc' }, { createdAt: 'desc' }] });
}
