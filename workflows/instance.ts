// instance/<id>: one hosted instance of an image. It is metered so that it cannot spend what was not
// reserved: before it starts, and before each lease period, it reserves the period's cost from the
// payer; at the end of a period it settles the seconds really used (whole seconds × GPUs × the rate,
// as training runs are charged) and reserves the next. A refused renewal, a stop, the maximum
// duration or cost, or a failed process ends it, its last period settled exactly once (settles are
// idempotent by reservation id, and the workflow, not the worker, remembers what is open). Ready for
// its idle timeout without a request, it sleeps: the process is stopped and nothing is reserved until
// a request wakes it. Starting and sleeping are free; ready and draining are billed.
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { BudgetActivities } from '../activities/budget';
import type { InstanceActivities } from '../activities/instances';
import { now } from './clock';
import { failureMessage } from './failures';
import {
  FINAL_INSTANCE_STATES,
  type InstanceCarried,
  type InstanceRequest,
  type InstanceState,
  type InstanceStatus,
  instanceStatusQuery,
  stopInstanceUpdate,
  wakeInstanceUpdate,
} from './instance-api';
import { formatMoney, toMinor } from './money';
import { Payer, RunKind, RunState } from './search-attributes';
import { trainingCost } from './training-cost';

/** Bookkeeping: quick, idempotent, retried until it succeeds (money must never be left reserved). */
const bookkeeping = proxyActivities<InstanceActivities & BudgetActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** A reservation the budget refuses is final (its failure is non-retryable); anything else is retried. */
const leases = proxyActivities<BudgetActivities>({
  startToCloseTimeout: '3 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

/** Checks that cannot succeed on a retry end the instance at once. */
const preparation = proxyActivities<InstanceActivities>({
  startToCloseTimeout: '10 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: ['InstanceRequestInvalid', 'InstanceFailed'],
  },
});

const DEFAULT_LEASE_SECONDS = 300;
const DEFAULT_CHECK_SECONDS = 15;

const stoppedBy = (stop: { by: string; reason?: string }) =>
  `stopped by ${stop.by}${stop.reason ? `: ${stop.reason}` : ''}`;

type Served = { next: 'sleep' } | { next: 'end'; state: 'stopped' | 'failed'; reason: string } | { next: 'continue' };

export async function instanceWorkflow(request: InstanceRequest, carried?: InstanceCarried): Promise<InstanceStatus> {
  // Malformed money fails the instance with the reason (recorded, like any refused launch), never its workflow task.
  let rate = 0n;
  let maxCost = 0n;
  let invalidMoney: string | undefined;
  try {
    rate = toMinor(request.ratePerGpuHour, 'ratePerGpuHour', request.currency);
    maxCost = toMinor(request.maxCost, 'maxCost', request.currency);
  } catch (error) {
    invalidMoney = (error as Error).message;
  }
  const leaseSeconds = request.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const checkMs = (request.checkSeconds ?? DEFAULT_CHECK_SECONDS) * 1000;
  const money = (amount: bigint) => formatMoney(amount, request.currency);

  let cost = BigInt(carried?.cost ?? '0');
  let leaseCount = carried?.leases ?? 0;
  const status: InstanceStatus = {
    id: request.id,
    state: 'pending',
    image: `${request.image.repo}:${request.image.reference}`,
    ...(carried ? { digest: carried.digest } : {}),
    payer: request.payer,
    visibility: request.visibility,
    ...(request.owner ? { owner: request.owner } : {}),
    cost: cost.toString(),
    billedSeconds: carried?.billedSeconds ?? 0,
    reserved: '0',
  };
  const ended = () => FINAL_INSTANCE_STATES.includes(status.state);
  let stopRequest: { by: string; reason?: string } | undefined;
  let wakeRequested = false;

  setHandler(instanceStatusQuery, () => status);
  setHandler(
    stopInstanceUpdate,
    async (stop) => {
      stopRequest ??= stop;
      await condition(ended);
      return status;
    },
    {
      validator: (stop) => {
        if (typeof stop?.by !== 'string' || stop.by.trim() === '' || stop.by.length > 200) {
          throw ApplicationFailure.nonRetryable(
            'say who stops the instance (by: a handle, at most 200 characters)',
            'InvalidRequest',
          );
        }
      },
    },
  );
  setHandler(wakeInstanceUpdate, async () => {
    if (!ended()) wakeRequested = true;
    await condition(() => status.state === 'ready' || ended());
    if (status.state !== 'ready') {
      throw ApplicationFailure.nonRetryable(
        `instance ${request.id} has ${status.state}: ${status.reason ?? 'no reason given'}`,
        'InstanceEnded',
      );
    }
    return status;
  });

  async function enter(state: InstanceState, patch: Partial<InstanceStatus> = {}): Promise<void> {
    Object.assign(status, patch, { state, cost: cost.toString() });
    upsertSearchAttributes([{ key: RunState, value: state }]);
    setCurrentDetails(
      `**${state}** · ${money(cost)} of at most ${money(maxCost)} spent, ${status.billedSeconds} s billed` +
        (status.reason ? ` · ${status.reason}` : ''),
    );
    await bookkeeping.recordInstance({ status });
  }

  upsertSearchAttributes([
    { key: RunKind, value: 'instance' },
    { key: Payer, value: request.payer },
    { key: RunState, value: status.state },
  ]);

  // The image is resolved to one digest at launch: the instance serves exactly that checkpoint.
  if (!carried) {
    try {
      if (invalidMoney) throw ApplicationFailure.nonRetryable(invalidMoney, 'InstanceRequestInvalid');
      const prepared = await preparation.prepareInstance({ request });
      status.digest = prepared.digest;
      await enter('pending');
    } catch (error) {
      await enter('failed', { reason: failureMessage(error) });
      return status;
    }
  }
  const digest = status.digest!;

  /** Reserves the next lease (its seconds never past the maximum duration, its cost never past the cap). */
  async function reserveLease(): Promise<
    { reservationId: string; seconds: number; amount: bigint } | { refused: string }
  > {
    const seconds = Math.min(leaseSeconds, request.maxDurationSeconds - status.billedSeconds);
    if (seconds <= 0) return { refused: `it reached its maximum duration of ${request.maxDurationSeconds} s` };
    const room = maxCost - cost;
    if (room <= 0n) return { refused: `it reached its maximum cost of ${money(maxCost)}` };
    const full = trainingCost(seconds * request.gpus, rate, room);
    leaseCount += 1;
    try {
      const reserved = await leases.reserveFromBudget({
        payer: request.payer,
        ref: `instance/${request.id}/lease/${leaseCount}`,
        amount: full.toString(),
        purpose: `instance ${request.id}: ${seconds} s of ${request.gpus} GPU(s)`,
      });
      status.reserved = full.toString();
      return { reservationId: reserved.reservationId, seconds, amount: full };
    } catch (error) {
      return { refused: `${request.payer} refused the next lease: ${failureMessage(error)}` };
    }
  }

  /** Settles a lease for the seconds used in it (whole seconds, never more than it reserved). */
  async function settleLease(lease: { reservationId: string; seconds: number; amount: bigint }, startedAt: number) {
    const used = Math.min(lease.seconds, Math.ceil((now().getTime() - startedAt) / 1000));
    const actual = trainingCost(used * request.gpus, rate, lease.amount);
    await CancellationScope.nonCancellable(() =>
      bookkeeping.settleWithBudget({
        payer: request.payer,
        reservationId: lease.reservationId,
        actual: actual.toString(),
      }),
    );
    cost += actual;
    status.billedSeconds += used;
    status.reserved = '0';
  }

  /** Serves while ready: renews leases, watches the process and its idleness, until it sleeps or ends. */
  async function serve(first: { reservationId: string; seconds: number; amount: bigint }): Promise<Served> {
    let lease = first;
    let leaseStart = now().getTime();
    const readySince = leaseStart;
    for (;;) {
      const leaseEnd = leaseStart + lease.seconds * 1000;
      const wait = Math.max(0, Math.min(checkMs, leaseEnd - now().getTime()));
      await condition(() => stopRequest !== undefined, wait);
      if (stopRequest) {
        await drain(lease, leaseStart);
        return {
          next: 'end',
          state: 'stopped',
          reason: stoppedBy(stopRequest),
        };
      }
      // Every wake-up checks the process and its idleness first: an idle instance sleeps rather than
      // renewing, whatever the lease and check intervals are.
      const check = await bookkeeping.checkInstance({ id: request.id });
      if (check.process === 'gone') {
        await settleLease(lease, leaseStart);
        return {
          next: 'end',
          state: 'failed',
          reason: `the instance's process ended${check.logTail ? `: ${check.logTail}` : ''}`,
        };
      }
      const lastRequest = Math.max(readySince, check.lastRequestAt ? Date.parse(check.lastRequestAt) : 0);
      if (request.idleTimeoutSeconds > 0 && now().getTime() - lastRequest >= request.idleTimeoutSeconds * 1000) {
        await drain(lease, leaseStart, 'idle: it sleeps until the next request');
        return { next: 'sleep' };
      }
      if (now().getTime() >= leaseEnd) {
        await settleLease(lease, leaseStart);
        await enter('ready');
        // Continued as new in this same activation, so no stop or wake can arrive in between.
        if (workflowInfo().continueAsNewSuggested && allHandlersFinished()) return { next: 'continue' };
        const next = await reserveLease();
        if ('refused' in next) {
          // Nothing is reserved past here: the drain is not billed.
          await enter('draining', { reason: next.refused });
          await CancellationScope.nonCancellable(() => bookkeeping.stopInstance({ id: request.id }));
          return { next: 'end', state: 'stopped', reason: next.refused };
        }
        lease = next;
        leaseStart = now().getTime();
      }
    }
  }

  /** Stops the process (in-flight requests finish briefly), then settles the open lease. */
  async function drain(
    lease: { reservationId: string; seconds: number; amount: bigint },
    leaseStart: number,
    reason?: string,
  ) {
    await enter('draining', reason ? { reason } : {});
    await CancellationScope.nonCancellable(() => bookkeeping.stopInstance({ id: request.id }));
    await settleLease(lease, leaseStart);
  }

  let sleeping = carried?.sleeping ?? false;
  for (;;) {
    if (sleeping) {
      await enter('sleeping', { endpoint: undefined, reason: 'idle: it sleeps until the next request' });
      await condition(() => wakeRequested || stopRequest !== undefined);
    }
    // A stop that came while it slept, or before it ever started, ends it with nothing started.
    if (stopRequest) {
      await enter('stopped', { endpoint: undefined, reason: stoppedBy(stopRequest) });
      break;
    }
    wakeRequested = false;
    const lease = await reserveLease();
    if ('refused' in lease) {
      await enter(leaseCount <= 1 && !carried ? 'failed' : 'stopped', { endpoint: undefined, reason: lease.refused });
      break;
    }
    await enter('starting', { reason: undefined });
    let endpoint: string;
    try {
      endpoint = (await preparation.startInstance({ request, digest })).endpoint;
    } catch (error) {
      // Starting is free: the lease is settled at nothing.
      await CancellationScope.nonCancellable(() =>
        bookkeeping.settleWithBudget({ payer: request.payer, reservationId: lease.reservationId, actual: '0' }),
      );
      status.reserved = '0';
      await CancellationScope.nonCancellable(() => bookkeeping.stopInstance({ id: request.id }));
      await enter('failed', { endpoint: undefined, reason: failureMessage(error) });
      break;
    }
    await enter('ready', { endpoint });
    const served = await serve(lease);
    if (served.next === 'continue') {
      // The process keeps running; the next run adopts it. What was settled carries over.
      return continueAsNew<typeof instanceWorkflow>(request, {
        digest,
        cost: cost.toString(),
        billedSeconds: status.billedSeconds,
        leases: leaseCount,
        sleeping: false,
      });
    }
    if (served.next === 'end') {
      await enter(served.state, { endpoint: undefined, reason: served.reason });
      break;
    }
    sleeping = true;
  }
  await condition(allHandlersFinished);
  return status;
}
