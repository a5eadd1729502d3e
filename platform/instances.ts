// Hosted instances as the platform offers them to people: launching one of an image the caller may
// read (paid from their credit), who may use, see and stop which instance, and the listings. The
// instance/<id> workflow meters and runs it; GraphQL, the pages and the gateway ask here.
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { pricedBreedsGoverning } from '../db/breed-terms';
import { recordLaunch } from '../db/instances';
import type { Database } from '../db/prisma';
import { requireManifest } from '../store/checkpoint';
import { parseReference } from '../store/names';
import type { CheckpointStore } from '../store/types';
import { instanceHandle, launchInstance } from '../temporal/instance-client';
import {
  FINAL_INSTANCE_STATES,
  type InstanceRequest,
  type InstanceStatus,
  instanceStatusQuery,
  type InstanceVisibility,
  stopInstanceUpdate,
} from '../workflows/instance-api';
import { assertAtMostMaximum, formatMoney } from '../workflows/money';
import { creditWorkflowId } from '../workflows/names';
import type { Caller } from './accounts';
import { creditStatus, type TrainingSettings } from './credit';
import { PlatformError } from './errors';
import { assertNotFlagged } from './probes';
import { assertMayRead } from './read-access';

export type InstanceRow = NonNullable<Awaited<ReturnType<Database['instance']['findUnique']>>>;

/** Idle this long without a request, an instance sleeps unless its launcher says otherwise. */
export const DEFAULT_IDLE_SECONDS = 600;
/** The longest an instance launched through the platform may run (billed time). */
export const MAX_INSTANCE_SECONDS = 7 * 86_400;

export interface LaunchInput {
  image: string;
  visibility: InstanceVisibility;
  maxCost: bigint;
  gpus?: number;
  idleTimeoutSeconds?: number;
  maxDurationSeconds?: number;
}

const ended = (row: { state: string }) => (FINAL_INSTANCE_STATES as readonly string[]).includes(row.state);

/** Why `caller` may not talk to (or see) the instance, or undefined when it may. */
export function instanceRefusal(caller: Caller, row: InstanceRow): { status: 401 | 403; message: string } | undefined {
  if (row.visibility === 'public' || caller.role === 'operator') return undefined;
  if (!caller.account)
    return { status: 401, message: `instance ${row.id} is private: sign in (an API token) as its owner` };
  if (caller.account.handle === row.ownerHandle) return undefined;
  return { status: 403, message: `instance ${row.id} is private to ${row.ownerHandle ?? 'the germline'}` };
}

/** The instance, when `caller` may see it; a private one of someone else is not found (its existence is theirs). */
export async function visibleInstance(db: Database, caller: Caller, id: string): Promise<InstanceRow> {
  const row = await db.instance.findUnique({ where: { id } });
  if (!row || instanceRefusal(caller, row)) throw new PlatformError('NOT_FOUND', `no instance ${id}`);
  return row;
}

/** Public instances that are not ended, and the caller's own (operators: every instance), newest first. */
export function visibleInstances(
  db: Database,
  caller: Caller,
  options: { includeEnded?: boolean; limit?: number } = {},
) {
  const alive = options.includeEnded ? {} : { state: { notIn: [...FINAL_INSTANCE_STATES] } };
  const whose =
    caller.role === 'operator'
      ? {}
      : { OR: [{ visibility: 'public' }, ...(caller.account ? [{ ownerHandle: caller.account.handle }] : [])] };
  return db.instance.findMany({
    where: { AND: [alive, whose] },
    orderBy: { createdAt: 'desc' },
    take: Math.min(options.limit ?? 50, 200),
  });
}

/** Public instances of one image that are not ended (its hub page lists them). */
export function publicInstancesOf(db: Database, repository: string) {
  return db.instance.findMany({
    where: { repository, visibility: 'public', state: { notIn: [...FINAL_INSTANCE_STATES] } },
    orderBy: { createdAt: 'desc' },
    take: 20,
  });
}

/**
 * Refuses a public instance of paid content to anyone but the breeds' owners and operators: a buyer
 * may run what they bought for themselves, but serving it to everyone would give it away.
 */
async function assertMayServePublicly(db: Database, caller: Caller, repository: string): Promise<void> {
  if (caller.role === 'operator') return;
  const breed = (await pricedBreedsGoverning(db, repository)).find((b) => b.ownerId !== caller.account?.id);
  if (breed) {
    throw new PlatformError(
      'FORBIDDEN',
      `a public instance of ${repository} would give away the paid breed ${breed.repository}: launch it private`,
    );
  }
}

/**
 * Launches an instance of an image `caller` may read, paid from their credit lease by lease. Checked
 * here first (names, the image, the numbers, the credit) so that a refusal says what to do, and
 * nothing is started or reserved.
 */
export async function launchAccountInstance(
  deps: { client: Client; db: Database; store: CheckpointStore; currency: string; settings: TrainingSettings },
  caller: Caller,
  input: LaunchInput,
): Promise<{ id: string; workflowId: string }> {
  const account = caller.account;
  if (!account) throw new PlatformError('FORBIDDEN', 'sign in to launch an instance: it is paid from your credit');
  const { repo, reference } = parseReference(input.image);
  const manifest = await requireManifest(deps.store, repo, reference);
  await assertMayRead(deps.db, caller, repo, 'run');
  if (input.visibility === 'public') await assertMayServePublicly(deps.db, caller, repo);
  // A flagged image reaches nobody else until an operator clears it (its owner may still run it privately).
  if (input.visibility === 'public')
    await assertNotFlagged(deps.db, repo, manifest.digest, 'a public instance of it is refused');
  const gpus = input.gpus ?? 1;
  if (!Number.isInteger(gpus) || gpus < 1 || gpus > deps.settings.maxGpus) {
    throw new PlatformError('BAD_USER_INPUT', `gpus is 1 to ${deps.settings.maxGpus}`);
  }
  const idle = input.idleTimeoutSeconds ?? DEFAULT_IDLE_SECONDS;
  if (!Number.isInteger(idle) || idle < 0)
    throw new PlatformError('BAD_USER_INPUT', 'the idle timeout is whole seconds, 0 or more');
  const duration = input.maxDurationSeconds ?? 7200;
  if (!Number.isInteger(duration) || duration < 1 || duration > MAX_INSTANCE_SECONDS) {
    throw new PlatformError('BAD_USER_INPUT', `the maximum duration is 1 to ${MAX_INSTANCE_SECONDS} seconds`);
  }
  if (input.maxCost <= 0n)
    throw new PlatformError('BAD_USER_INPUT', 'maxCost is above zero: the most the instance may cost');
  assertAtMostMaximum(input.maxCost, `maxCost ${input.maxCost}`, deps.currency, { inMinorUnits: true });
  const credit = await creditStatus(deps.client, deps.settings.taskQueue, account.handle, deps.currency);
  if (BigInt(credit.available) <= 0n) {
    throw new PlatformError(
      'BAD_USER_INPUT',
      `your credit has ${formatMoney(credit.available, deps.currency)} available: add credit (fundCredit) to pay for the instance's time`,
    );
  }
  const id = `${account.handle}-${randomBytes(4).toString('hex')}`;
  const request: InstanceRequest = {
    version: 1,
    id,
    image: { repo, reference },
    payer: creditWorkflowId(account.handle),
    currency: deps.currency,
    owner: account.handle,
    visibility: input.visibility,
    runner: 'local',
    gpus,
    ratePerGpuHour: deps.settings.ratePerGpuHour.toString(),
    idleTimeoutSeconds: idle,
    maxDurationSeconds: duration,
    maxCost: input.maxCost.toString(),
  };
  // Recorded before its workflow starts, so that the id answered can be seen and stopped at once
  // (the workflow's preparation keeps this row, and records each state into it).
  await recordLaunch(deps.db, request, manifest.digest);
  try {
    const handle = await launchInstance(deps.client, deps.settings.taskQueue, request);
    return { id, workflowId: handle.workflowId };
  } catch (error) {
    await deps.db.instance.delete({ where: { id } });
    throw error;
  }
}

/** Stops an instance: its owner or an operator. Answers once it has stopped and its last lease is settled. */
export async function stopAccountInstance(
  deps: { client: Client; db: Database },
  caller: Caller,
  id: string,
  reason?: string,
): Promise<InstanceStatus> {
  const row = await visibleInstance(deps.db, caller, id);
  if (caller.role !== 'operator' && caller.account?.handle !== row.ownerHandle) {
    throw new PlatformError('FORBIDDEN', `only its owner or an operator may stop instance ${id}`);
  }
  if (ended(row)) return instanceHandle(deps.client, id).query(instanceStatusQuery);
  return instanceHandle(deps.client, id).executeUpdate(stopInstanceUpdate, {
    args: [{ by: caller.account?.handle ?? 'operator', ...(reason ? { reason } : {}) }],
  });
}
