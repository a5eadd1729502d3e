// What the pages read and change: the same parts the GraphQL API is given.
import type { PlatformParts } from '../graphql';
import { germlineRepository } from '../../workflows/names';

export interface PagesDeps extends PlatformParts {
  /** The Temporal Web UI, for links from the operator console. */
  temporalUiUrl?: string;
}

/** The newest published daily checkpoint of the germline, or null before the first. */
export function latestDaily(deps: PagesDeps) {
  return deps.db.checkpoint.findFirst({
    where: { repository: germlineRepository(deps.germline), status: 'published' },
    orderBy: [{ day: 'desc' }, { createdAt: 'desc' }],
  });
}
