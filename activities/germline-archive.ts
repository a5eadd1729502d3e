// The germline's archive of ended children in PostgreSQL (db/germline-archive.ts), for its workflow:
// written before the children leave its carried state, and asked when a spawn's name might be taken.
import { log } from '@temporalio/activity';
import { archiveChildren, isChildArchived } from '../db/germline-archive';
import type { Database } from '../db/prisma';
import type { ChildRecord } from '../workflows/child-api';

export interface GermlineArchiveActivities {
  /** Stores ended children (idempotent: a retry or a replayed germline stores nothing twice). */
  archiveEndedChildren(input: { germline: string; children: ChildRecord[] }): Promise<{ archived: number }>;
  /** True when an archived child of the germline has this name (names are never reused). */
  childNameArchived(input: { germline: string; name: string }): Promise<boolean>;
}

export function createGermlineArchiveActivities(db: Database): GermlineArchiveActivities {
  return {
    async archiveEndedChildren({ germline, children }) {
      const archived = await archiveChildren(db, germline, children);
      log.info('ended children archived', { germline, children: children.length, newlyArchived: archived });
      return { archived };
    },
    childNameArchived: ({ germline, name }) => isChildArchived(db, germline, name),
  };
}
