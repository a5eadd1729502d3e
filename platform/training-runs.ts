// The training runs the platform knows of (their TrainingRun rows), for the API: newest first,
// optionally only those publishing to one repository.
import type { Database } from '../db/prisma';

/** Training runs, newest first; `repository` keeps those publishing there; `limit` is held to 1 to 200. */
export function listTrainingRuns(db: Database, options: { repository?: string | null; limit?: number | null } = {}) {
  return db.trainingRun.findMany({
    where: options.repository ? { outputRepository: options.repository } : {},
    orderBy: { createdAt: 'desc' },
    take: Math.min(Math.max(options.limit ?? 30, 1), 200),
  });
}
