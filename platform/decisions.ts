// The autonomy's decisions about a germline (their Decision rows), for the API: newest first,
// optionally only those awaiting an operator's approval.
import type { Database } from '../db/prisma';

/** A germline's decisions, newest first; `awaiting` keeps those awaiting approval; `limit` is held to 1 to 200. */
export function listDecisions(
  db: Database,
  germline: string,
  options: { awaiting?: boolean | null; limit?: number | null } = {},
) {
  return db.decision.findMany({
    where: { germline, ...(options.awaiting ? { outcome: 'awaiting-approval' } : {}) },
    orderBy: { createdAt: 'desc' },
    take: Math.min(Math.max(options.limit ?? 30, 1), 200),
  });
}
