// Sponsors: organisations that pay for personal users' use. A sponsor's money is the budget workflow
// sponsor/<name>, funded through Stripe Checkout; its grant gives every eligible personal account a
// daily allowance (an amount, who is eligible, until when), spent by the gateway before the person's
// own credit (platform/metering.ts). Its managers see what the grant paid for: totals, never transcripts.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { type BudgetStatus, statusQuery } from '../workflows/budget-api';
import { formatMoney, parseAmount } from '../workflows/money';
import { MAX_ALLOTMENT_MINOR } from '../db/usage';
import { ACCOUNT_HANDLE, sponsorWorkflowId } from '../workflows/names';
import type { sponsorWorkflow } from '../workflows/sponsor';
import type { AccountView } from './accounts';
import { PlatformError } from './errors';
import { sponsorSummary } from '../workflows/summaries';

export const SPONSOR_NAME_RULE = 'a sponsor name is 2 to 39 lowercase letters, digits and dashes';
const DOMAIN = /^(?=.{4,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}$/;

export interface SponsorView {
  name: string;
  title: string;
  /** Minor units a day per person; 0: no grant. */
  dailyAllowance: bigint;
  eligibleDomain: string | null;
  expiresAt: Date | null;
  currency: string;
}

export interface SponsorReport {
  sponsor: SponsorView;
  fund: BudgetStatus;
  /** What the grant paid for since `since`: totals, not transcripts. */
  since: Date;
  calls: number;
  people: number;
  inputTokens: number;
  outputTokens: number;
  /** Millionths of a minor unit. */
  paid: bigint;
  byDay: Array<{ day: string; calls: number; people: number; paid: bigint }>;
}

const viewOf = (row: SponsorView): SponsorView => ({
  name: row.name,
  title: row.title,
  dailyAllowance: row.dailyAllowance,
  eligibleDomain: row.eligibleDomain,
  expiresAt: row.expiresAt,
  currency: row.currency,
});

/** The sponsor's fund, started now if it never was (a second start joins the running one). */
export function sponsorHandle(
  client: Client,
  taskQueue: string,
  name: string,
  currency: string,
): Promise<WorkflowHandle<typeof sponsorWorkflow>> {
  return client.workflow.start<typeof sponsorWorkflow>('sponsorWorkflow', {
    workflowId: sponsorWorkflowId(name),
    taskQueue,
    args: [{ name, currency }],
    staticSummary: sponsorSummary(name),
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}

export async function createSponsor(
  deps: { db: Database; client: Client; taskQueue: string; currency: string },
  owner: AccountView,
  input: { name: string; title: string },
): Promise<SponsorView> {
  if (!ACCOUNT_HANDLE.test(input.name)) throw new PlatformError('BAD_USER_INPUT', SPONSOR_NAME_RULE);
  const title = input.title.trim();
  if (!title || title.length > 120) throw new PlatformError('BAD_USER_INPUT', 'a title is 1 to 120 characters');
  let row;
  try {
    row = await deps.db.sponsor.create({
      data: { name: input.name, title, ownerId: owner.id, currency: deps.currency },
    });
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')
      throw new PlatformError('CONFLICT', `the sponsor name ${input.name} is taken: choose another`);
    throw error;
  }
  // The fund exists before money arrives, so the webhook finds it.
  await sponsorHandle(deps.client, deps.taskQueue, row.name, row.currency);
  return viewOf(row);
}

/** The sponsor, when `caller` manages it (its owner, or an operator); otherwise not found. */
async function managed(db: Database, caller: AccountView, name: string) {
  const row = await db.sponsor.findUnique({ where: { name } });
  if (!row || (row.ownerId !== caller.id && caller.role !== 'operator'))
    throw new PlatformError('NOT_FOUND', `you manage no sponsor ${name}: create it first (createSponsor)`);
  return row;
}

/**
 * Sets the sponsor's grant; what is not given stays. `dailyAllowance` ("0.50"; "0": no grant) is what
 * each eligible person may use a UTC day; `eligibleDomain` ("example.org"; "": everyone) limits it
 * to personal accounts with an email there; `expiresAt` (a future time; "": never) ends it.
 */
export async function setSponsorGrant(
  db: Database,
  caller: AccountView,
  name: string,
  input: { dailyAllowance?: string | null; eligibleDomain?: string | null; expiresAt?: string | null },
): Promise<SponsorView> {
  const sponsor = await managed(db, caller, name);
  const data: { dailyAllowance?: bigint; eligibleDomain?: string | null; expiresAt?: Date | null } = {};
  if (input.dailyAllowance != null) {
    if (/^\s*0*(\.0*)?\s*$/.test(input.dailyAllowance)) data.dailyAllowance = 0n;
    else
      try {
        data.dailyAllowance = parseAmount(input.dailyAllowance, sponsor.currency);
      } catch (error) {
        throw new PlatformError('BAD_USER_INPUT', `the daily allowance: ${(error as Error).message}`);
      }
    // Held in millionths of a minor unit in PostgreSQL's bigint: no allowance above what one allotment may hold.
    if (data.dailyAllowance > MAX_ALLOTMENT_MINOR)
      throw new PlatformError(
        'BAD_USER_INPUT',
        `the daily allowance is at most ${formatMoney(MAX_ALLOTMENT_MINOR, sponsor.currency)} a person`,
      );
  }
  if (input.eligibleDomain != null) {
    const domain = input.eligibleDomain.trim().toLowerCase().replace(/^@/, '');
    if (domain && !DOMAIN.test(domain))
      throw new PlatformError(
        'BAD_USER_INPUT',
        `"${input.eligibleDomain.slice(0, 80)}" is not an email domain, like example.org`,
      );
    data.eligibleDomain = domain || null;
  }
  if (input.expiresAt != null) {
    if (input.expiresAt.trim() === '') data.expiresAt = null;
    else {
      const at = new Date(input.expiresAt);
      if (Number.isNaN(at.getTime()))
        throw new PlatformError(
          'BAD_USER_INPUT',
          `expiresAt "${input.expiresAt.slice(0, 40)}" is not a time, like 2027-01-01`,
        );
      if (at <= new Date()) throw new PlatformError('BAD_USER_INPUT', 'expiresAt is in the past: give a time to come');
      data.expiresAt = at;
    }
  }
  if (Object.keys(data).length === 0)
    throw new PlatformError('BAD_USER_INPUT', 'give something to set: dailyAllowance, eligibleDomain or expiresAt');
  return viewOf(await db.sponsor.update({ where: { name }, data }));
}

/** The sponsors whose grants are open now: who pays for free use, shown to everyone. */
export async function openGrants(db: Database): Promise<SponsorView[]> {
  const rows = await db.sponsor.findMany({
    where: { dailyAllowance: { gt: 0 }, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] },
    orderBy: { createdAt: 'asc' },
    take: 100,
  });
  return rows.map(viewOf);
}

/** The sponsor's fund and what its grant paid for, to the sponsor's managers: totals, never transcripts. */
export async function sponsorReport(
  deps: { db: Database; client: Client; taskQueue: string },
  caller: AccountView,
  name: string,
  since = new Date(Date.now() - 30 * 86_400_000),
): Promise<SponsorReport> {
  const sponsor = await managed(deps.db, caller, name);
  const where = { sponsor: name, state: 'charged', createdAt: { gte: since } };
  const [fund, totals, people, byDay] = await Promise.all([
    (await sponsorHandle(deps.client, deps.taskQueue, name, sponsor.currency)).query(statusQuery),
    deps.db.usageCharge.aggregate({
      where,
      _count: true,
      _sum: { amount: true, inputTokens: true, outputTokens: true },
    }),
    deps.db.usageCharge.groupBy({ by: ['payerHandle'], where }),
    deps.db.$queryRaw<Array<{ day: string; calls: bigint; people: bigint; paid: bigint | null }>>(Prisma.sql`
      SELECT to_char("createdAt", 'YYYY-MM-DD') AS day, count(*) AS calls, count(DISTINCT "payerHandle") AS people,
        sum("amount") AS paid
      FROM "UsageCharge"
      WHERE "sponsor" = ${name} AND "state" = 'charged' AND "createdAt" >= ${since}
      GROUP BY 1 ORDER BY 1`),
  ]);
  return {
    sponsor: viewOf(sponsor),
    fund,
    since,
    calls: totals._count,
    people: people.length,
    inputTokens: totals._sum.inputTokens ?? 0,
    outputTokens: totals._sum.outputTokens ?? 0,
    paid: totals._sum.amount ?? 0n,
    byDay: byDay.map((d) => ({ day: d.day, calls: Number(d.calls), people: Number(d.people), paid: d.paid ?? 0n })),
  };
}
