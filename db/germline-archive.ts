// The germline's ended children in PostgreSQL. The germline workflow carries only its live children
// (and those that ended since its last continue-as-new); before it continues as new it archives the
// ended ones here (activities/germline-archive.ts) and drops them from its state, so the state stays
// small however many children it has had. Readers (GraphQL, the CLI, /operator) list both.
import type { ChildRecord } from '../workflows/child-api';
import type { Database } from './prisma';

/** Spawn order: a child's first reservation `r<N>` is numbered by the germline's budget in order. */
export function spawnSequence(record: Pick<ChildRecord, 'reservationId'>): number {
  const match = /^r(\d+)$/.exec(record.reservationId);
  return match ? Number(match[1]) : Number.MAX_SAFE_INTEGER;
}

const ended = (record: ChildRecord): boolean => record.state === 'retired' || record.state === 'left';

/**
 * Writes ended children once each: a retried activity, or a replayed germline asking again, writes
 * nothing twice (the key is germline and name, and names are never reused). Returns how many rows were new.
 */
export async function archiveChildren(db: Database, germline: string, records: ChildRecord[]): Promise<number> {
  const notEnded = records.filter((r) => !ended(r));
  if (notEnded.length > 0)
    throw new Error(`only ended children are archived; ${notEnded.map((r) => r.name).join(', ')} still run`);
  const { count } = await db.archivedChild.createMany({
    data: records.map((r) => ({
      germline,
      name: r.name,
      workflowId: r.workflowId,
      purpose: r.purpose,
      allowance: BigInt(r.allowance),
      spent: r.spent === undefined ? null : BigInt(r.spent),
      reservationId: r.reservationId,
      sequence: spawnSequence(r),
      state: r.state,
      owner: r.owner ?? null,
      reason: r.reason ?? null,
      fundings: r.fundings ?? [],
    })),
    skipDuplicates: true,
  });
  return count;
}

type ArchivedRow = Awaited<ReturnType<Database['archivedChild']['findFirstOrThrow']>>;

function toRecord(row: ArchivedRow): ChildRecord {
  const fundings = row.fundings as ChildRecord['fundings'];
  return {
    name: row.name,
    workflowId: row.workflowId,
    purpose: row.purpose,
    allowance: row.allowance.toString(),
    reservationId: row.reservationId,
    state: row.state as ChildRecord['state'],
    ...(fundings && fundings.length > 0 ? { fundings } : {}),
    ...(row.spent === null ? {} : { spent: row.spent.toString() }),
    ...(row.owner === null ? {} : { owner: row.owner }),
    ...(row.reason === null ? {} : { reason: row.reason }),
  };
}

export async function archivedChild(db: Database, germline: string, name: string): Promise<ChildRecord | undefined> {
  const row = await db.archivedChild.findUnique({ where: { germline_name: { germline, name } } });
  return row ? toRecord(row) : undefined;
}

export async function isChildArchived(db: Database, germline: string, name: string): Promise<boolean> {
  return (await db.archivedChild.count({ where: { germline, name } })) > 0;
}

export async function countArchivedChildren(db: Database, germline: string): Promise<number> {
  return db.archivedChild.count({ where: { germline } });
}

export interface ChildrenPage {
  children: ChildRecord[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export const CHILDREN_PAGE_MAX = 1000;

/**
 * Every child of a germline in spawn order, ended ones from PostgreSQL and the rest from the
 * workflow (`live`, its children query), a page at a time: `after` is the name of the last child
 * of the previous page. A child archived while this reads is listed once.
 */
export async function listChildren(
  db: Database,
  germline: string,
  live: ChildRecord[],
  page: { first?: number; after?: string } = {},
): Promise<ChildrenPage> {
  const first = Math.min(Math.max(1, Math.trunc(page.first ?? CHILDREN_PAGE_MAX)), CHILDREN_PAGE_MAX);
  let from = 0;
  if (page.after !== undefined) {
    const cursor =
      live.find((c) => c.name === page.after) ??
      (await db.archivedChild.findUnique({ where: { germline_name: { germline, name: page.after } } }));
    if (!cursor) throw new UnknownChildCursorError(page.after);
    from = 'sequence' in cursor ? cursor.sequence : spawnSequence(cursor);
  }
  const archived = (
    await db.archivedChild.findMany({
      where: { germline, sequence: { gt: from } },
      orderBy: { sequence: 'asc' },
      take: first + 1,
    })
  ).map(toRecord);
  const seen = new Set(archived.map((c) => c.name));
  const merged = [...archived, ...live.filter((c) => !seen.has(c.name) && spawnSequence(c) > from)].sort(
    (a, b) => spawnSequence(a) - spawnSequence(b),
  );
  const children = merged.slice(0, first);
  return merged.length > first ? { children, next: children.at(-1)!.name } : { children };
}

export class UnknownChildCursorError extends Error {
  override name = 'UnknownChildCursorError';
  constructor(readonly after: string) {
    super(`no child named ${after} to list after: pass the name of a listed child`);
  }
}

/**
 * The live children and the newest `archived` ended ones, in spawn order, with how many ended
 * children are archived in all: what a console shows of a germline that has had thousands.
 */
export async function newestChildren(
  db: Database,
  germline: string,
  live: ChildRecord[],
  archived: number,
): Promise<{ children: ChildRecord[]; archivedInAll: number }> {
  const [rows, archivedInAll] = await Promise.all([
    db.archivedChild.findMany({ where: { germline }, orderBy: { sequence: 'desc' }, take: archived }),
    countArchivedChildren(db, germline),
  ]);
  const newest = rows.map(toRecord);
  const seen = new Set(newest.map((c) => c.name));
  const children = [...newest, ...live.filter((c) => !seen.has(c.name))].sort(
    (a, b) => spawnSequence(a) - spawnSequence(b),
  );
  return { children, archivedInAll };
}
