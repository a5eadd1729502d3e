// The germline's autonomy, inside its workflow: a tick (on a timer, or triggered) observes the
// budget and the children, asks the policy activity for proposals, judges each one against the
// operators' guardrails here in the workflow, acts on those allowed, parks those above the
// approval threshold for an operator, and stores every decision with its reasons.
import {
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import type { AutonomyActivities, Measurements } from '../activities/autonomy';
import type { Budget } from './budget';
import { type ServedBudget } from './serve-budget';
import {
  type AutonomyChange,
  type AutonomyStatus,
  approveUpdate,
  autonomyQuery,
  DEFAULT_DECIDER,
  type DeciderSettings,
  type DecisionSummary,
  type PendingDecision,
  rejectUpdate,
  setAutonomyUpdate,
  tickUpdate,
  type TickReport,
} from './autonomy-api';
import { type ChildRecord, retireRequestedSignal, type SpawnRequest } from './child-api';
import {
  type AutonomyPolicy,
  DEFAULT_AUTONOMY_POLICY,
  type EvalGate,
  judge,
  type Observation,
  type Proposal,
  refusalReasons,
} from './guardrails';
import { failureMessage, FAILURE } from './failures';
import { formatMoney, minorUnitsProblem } from './money';
import { learnWorkflow } from './learn';
import { learnWorkflowId, NAME } from './names';
import { learnSummary } from './summaries';
import { now } from './clock';

// Measuring and deciding are retried a few times; a policy that cannot answer is an answer itself.
const thinking = proxyActivities<AutonomyActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});
// Decisions must all be stored, and acts are idempotent (by run id or reference): retried until done.
const recording = proxyActivities<AutonomyActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});
const acting = proxyActivities<AutonomyActivities>({
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
    nonRetryableErrorTypes: ['FundingRefused'],
  },
});

/** What the autonomy carries across the germline's continue-as-new. */
export interface AutonomyState {
  limits: AutonomyPolicy;
  decider: DeciderSettings;
  evalGate: EvalGate | null;
  ticks: number;
  /** Workflow time of the last tick, ms since the epoch. */
  lastTickAt: number | null;
  pending: PendingDecision[];
}

export interface AutonomyHost {
  germline: string;
  budget: Budget;
  children: Map<string, ChildRecord>;
  /** Reserves the allowance and starts the child; throws an ApplicationFailure when it cannot. */
  spawn(request: SpawnRequest, key: string): Promise<ChildRecord>;
  accepted: ServedBudget['accepted'];
}

const ENDPOINT = /^https?:\/\/[^\s]+$/;

/** Which decider proposed an act, and what it saw: an act that records decisions of its own names them. */
type DecisionOrigin = Pick<PendingDecision, 'policy' | 'observationDigest'>;

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidRequest', nonRetryable: true, message });
}

/** A money setting: bookable minor units (at most the maximum), or `malformed` says the form it takes. */
function minorSetting(
  value: unknown,
  name: string,
  malformed: string,
  options: { positive?: boolean; currency?: string },
): void {
  const problem = minorUnitsProblem(value, name, malformed, options);
  if (problem) throw invalid(problem);
}

function wholeNumber(value: unknown, name: string, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw invalid(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
}

const CHANGE_KEYS = [
  'maxChildren',
  'perChildAllowanceCap',
  'minRunwayDays',
  'approvalThreshold',
  'policy',
  'rules',
  'endpoint',
  'timeoutMs',
  'tickIntervalSeconds',
  'evalGate',
];

/** Checks an operator's change and returns the settings it leads to; throws an InvalidRequest saying what is wrong (amounts shown in `currency`). */
export function applyAutonomyChange(
  state: AutonomyState,
  change: AutonomyChange,
  currency?: string,
): Pick<AutonomyState, 'limits' | 'decider' | 'evalGate'> {
  if (change === null || typeof change !== 'object') throw invalid('an autonomy change is an object of settings');
  const unknown = Object.keys(change).filter((key) => !CHANGE_KEYS.includes(key));
  if (unknown.length > 0)
    throw invalid(`unknown autonomy settings: ${unknown.join(', ')}; known: ${CHANGE_KEYS.join(', ')}`);
  const c = change as Record<string, unknown>;
  if ('maxChildren' in c) wholeNumber(c.maxChildren, 'maxChildren', 0, 10_000);
  if ('minRunwayDays' in c) wholeNumber(c.minRunwayDays, 'minRunwayDays', 0, 3650);
  for (const key of ['perChildAllowanceCap', 'approvalThreshold'] as const) {
    if (key in c && c[key] !== null)
      minorSetting(c[key], key, `${key} is whole minor units as a string (e.g. "5000"), or null for none`, {
        currency,
      });
  }
  if ('policy' in c && c.policy !== 'rules' && c.policy !== 'http')
    throw invalid(`policy is "rules" or "http", got ${JSON.stringify(c.policy)}`);
  if ('endpoint' in c && !(typeof c.endpoint === 'string' && ENDPOINT.test(c.endpoint)))
    throw invalid(`endpoint must be an http:// or https:// URL, got ${JSON.stringify(c.endpoint)}`);
  if ('timeoutMs' in c) wholeNumber(c.timeoutMs, 'timeoutMs', 100, 300_000);
  if ('tickIntervalSeconds' in c && c.tickIntervalSeconds !== null)
    wholeNumber(c.tickIntervalSeconds, 'tickIntervalSeconds', 5, 30 * 86_400);
  if ('rules' in c) {
    const rules = c.rules as Record<string, unknown>;
    if (rules === null || typeof rules !== 'object') throw invalid('rules is an object of rules-policy thresholds');
    if ('allowancePercent' in rules) wholeNumber(rules.allowancePercent, 'rules.allowancePercent', 1, 100);
    if ('spawnRunwayDays' in rules) wholeNumber(rules.spawnRunwayDays, 'rules.spawnRunwayDays', 0, 3650);
    if ('patience' in rules) wholeNumber(rules.patience, 'rules.patience', 1, 1000);
    if ('feedbackThreshold' in rules) wholeNumber(rules.feedbackThreshold, 'rules.feedbackThreshold', 0, 1_000_000);
    if ('runCost' in rules)
      minorSetting(rules.runCost, 'rules.runCost', 'rules.runCost is whole minor units above zero, as a string', {
        positive: true,
        currency,
      });
    if (
      'purposes' in rules &&
      !(
        Array.isArray(rules.purposes) &&
        rules.purposes.length > 0 &&
        rules.purposes.every((p) => typeof p === 'string' && NAME.test(p))
      )
    ) {
      throw invalid('rules.purposes is a list of child names: lowercase letters, digits and dashes');
    }
  }
  if ('evalGate' in c && c.evalGate !== null) {
    const gate = c.evalGate as Record<string, unknown>;
    const bound = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v));
    if (
      typeof gate !== 'object' ||
      typeof gate.metric !== 'string' ||
      !gate.metric ||
      !bound(gate.atMost) ||
      !bound(gate.atLeast) ||
      (gate.atMost === undefined && gate.atLeast === undefined)
    ) {
      throw invalid(
        'evalGate is { metric, atMost?, atLeast? } with at least one bound, e.g. { "metric": "loss", "atMost": 2.5 }',
      );
    }
  }
  const { evalGate, ...rest } = change;
  const pick = (keys: ReadonlyArray<keyof typeof rest>) =>
    Object.fromEntries(keys.filter((k) => k in rest).map((k) => [k, rest[k]]));
  const limits = {
    ...state.limits,
    ...pick(['maxChildren', 'perChildAllowanceCap', 'minRunwayDays', 'approvalThreshold'] as const),
  } as AutonomyPolicy;
  const decider = {
    ...state.decider,
    ...pick(['policy', 'endpoint', 'timeoutMs', 'tickIntervalSeconds'] as const),
    ...(rest.rules ? { rules: { ...state.decider.rules, ...rest.rules } } : {}),
  } as DeciderSettings;
  if (decider.policy === 'http' && !decider.endpoint)
    throw invalid('the http policy needs an endpoint: the URL of the agent that answers');
  return { limits, decider, evalGate: evalGate === undefined ? state.evalGate : evalGate };
}

/** A training run id the germline gives a child's run: unique per germline, child and tick, at most 63 characters. */
export function autoRunId(germline: string, child: string, tick: number): string {
  const full = `${germline}-${child}-t${tick}`;
  if (full.length <= 63) return full;
  let hash = 0x811c9dc5; // FNV-1a: short, stable, no crypto in the workflow sandbox
  for (let i = 0; i < full.length; i++) hash = Math.imul(hash ^ full.charCodeAt(i), 0x01000193) >>> 0;
  return `${full.slice(0, 54)}-${hash.toString(16).padStart(8, '0')}`;
}

export interface ServedAutonomy {
  limits(): AutonomyPolicy;
  evalGate(): EvalGate | null;
  /** True while a tick or an approval is being worked on. */
  busy(): boolean;
  snapshot(): AutonomyState;
  /** Ticks on the timer until `stop()` holds (and any tick in progress has finished). */
  run(stop: () => boolean): Promise<void>;
}

export function serveAutonomy(host: AutonomyHost, carried: AutonomyState): ServedAutonomy {
  const { workflowId } = workflowInfo();
  const state: AutonomyState = { ...carried, pending: [...carried.pending] };
  let busy = false;
  let rescheduled = false;

  async function exclusively<T>(work: () => Promise<T>): Promise<T> {
    await condition(() => !busy);
    busy = true;
    try {
      return await work();
    } finally {
      busy = false;
    }
  }

  function nextTickAt(): number | null {
    const interval = state.decider.tickIntervalSeconds;
    if (!interval) return null;
    // The first tick comes one interval after the germline starts deciding, not at once.
    return (state.lastTickAt ?? now().getTime()) + interval * 1000;
  }

  function status(): AutonomyStatus {
    const next = nextTickAt();
    return {
      limits: state.limits,
      decider: state.decider,
      evalGate: state.evalGate,
      ticks: state.ticks,
      lastTickAt: state.lastTickAt === null ? null : new Date(state.lastTickAt).toISOString(),
      nextTickAt: next === null ? null : new Date(next).toISOString(),
      pending: state.pending,
    };
  }

  const running = () => [...host.children.values()].filter((c) => c.state === 'active');
  function measure(): Promise<Measurements> {
    return thinking.measureGermline({
      germline: host.germline,
      children: running().map((c) => ({ name: c.name, workflowId: c.workflowId })),
    });
  }

  function observe(measured: Measurements): Observation {
    return {
      budget: host.budget.status(now()),
      burnPerDay: measured.burnPerDay,
      revenuePerDay: measured.revenuePerDay,
      // Absent from what a worker before feedback measured (a replayed history).
      ...(measured.feedback ? { feedback: measured.feedback } : {}),
      children: [...host.children.values()].map((c) => {
        const books = c.state === 'active' ? measured.children[c.name] : undefined;
        // A child on its way out is judged as already out: nothing more is asked of it.
        const seenState =
          books?.state === 'retiring'
            ? 'retired'
            : books?.state === 'leaving'
              ? 'left'
              : books?.state === 'paused'
                ? 'paused'
                : c.state;
        return {
          name: c.name,
          state: seenState,
          allowance: c.allowance,
          spent: books?.spent ?? c.spent ?? '0',
          reserved: books?.reserved ?? '0',
        };
      }),
    };
  }

  const money = (amount: string) => formatMoney(amount, host.budget.currency);

  /** Carries out an allowed proposal; returns what was done, in words. Throws when it could not be done. */
  async function act(id: string, proposal: Proposal, origin: DecisionOrigin): Promise<string> {
    const key = `${workflowId}/decision/${id}`;
    switch (proposal.kind) {
      case 'spawn': {
        const record = await host.spawn(
          { name: proposal.child, allowance: proposal.allowance, purpose: proposal.purpose },
          key,
        );
        return `spawned ${record.workflowId} with an allowance of ${money(record.allowance)}`;
      }
      case 'fund': {
        const record = host.children.get(proposal.child)!;
        const reserved = host.budget.reserve(
          {
            amount: proposal.amount,
            ref: `child/${proposal.child}/fund/${id}`,
            purpose: `more allowance for ${proposal.child}`,
          },
          key,
          now(),
        );
        const funding = { reservationId: reserved.result.reservationId, amount: proposal.amount };
        record.fundings = [...(record.fundings ?? []), funding];
        record.allowance = (BigInt(record.allowance) + BigInt(proposal.amount)).toString();
        await host.accepted(reserved);
        try {
          await acting.fundChild({
            workflowId: record.workflowId,
            amount: proposal.amount,
            currency: host.budget.currency,
            reference: `allowance/${funding.reservationId}`,
          });
        } catch (error) {
          // The child did not take it: the reservation goes back, and its allowance is what it was.
          record.fundings = record.fundings.filter((f) => f !== funding);
          record.allowance = (BigInt(record.allowance) - BigInt(proposal.amount)).toString();
          await host.accepted(host.budget.release({ reservationId: funding.reservationId }, `${key}/undo`, now()));
          throw error;
        }
        return `added ${money(proposal.amount)} to ${proposal.child}'s allowance (now ${money(record.allowance)})`;
      }
      case 'train': {
        const runId = autoRunId(host.germline, proposal.child, state.ticks);
        const started = await acting.startChildTraining({
          germline: host.germline,
          child: proposal.child,
          runId,
          maxCost: proposal.maxCost,
          currency: host.budget.currency,
        });
        return `started training/${runId} paid by ${proposal.child} (at most ${money(proposal.maxCost)}, from ${started.base ?? 'scratch'})`;
      }
      case 'learn': {
        const runId = autoRunId('learn', host.germline, state.ticks);
        // It outlives the tick, and the germline's continue-as-new: it records its own outcome.
        await startChild(learnWorkflow, {
          workflowId: learnWorkflowId(runId),
          staticSummary: learnSummary(host.germline, runId, proposal.maxCost, host.budget.currency),
          args: [
            {
              germline: host.germline,
              runId,
              maxCost: proposal.maxCost,
              currency: host.budget.currency,
              evalGate: state.evalGate,
              decision: { id, ...origin, proposal },
            },
          ],
          parentClosePolicy: ParentClosePolicy.ABANDON,
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        return `started learn/${runId}: the germline trains its head on ${proposal.records} new feedback records (at most ${money(proposal.maxCost)}), promoted if it passes the eval gate`;
      }
      case 'retire': {
        const record = host.children.get(proposal.child)!;
        await getExternalWorkflowHandle(record.workflowId).signal(retireRequestedSignal, proposal.reason);
        return `asked ${proposal.child} to retire (${proposal.reason}); its allowance is settled when its runs have`;
      }
    }
  }

  async function attempt(
    id: string,
    proposal: Proposal,
    origin: DecisionOrigin,
  ): Promise<{ ok: true; done: string } | { ok: false; error: string }> {
    try {
      return { ok: true, done: await act(id, proposal, origin) };
    } catch (error) {
      return { ok: false, error: failureMessage(error) };
    }
  }

  /** A tick on the timer that cannot observe or decide (the database down, say) waits for the next one: it must never end the germline. */
  async function timerTick(): Promise<void> {
    try {
      await tick('timer');
    } catch (error) {
      log.error('the autonomy tick could not complete; the next one tries again', { error: (error as Error).message });
    }
  }

  async function tick(trigger: TickReport['trigger']): Promise<TickReport> {
    return exclusively(async () => {
      const number = ++state.ticks;
      state.lastTickAt = now().getTime();
      rescheduled = true;
      const measured = await measure();
      const answer = await thinking.decide({
        decider: state.decider,
        observation: observe(measured),
        history: measured.history,
      });
      const decisions: DecisionSummary[] = [];
      if (answer.rejected)
        decisions.push({ id: `${host.germline}/${number}/0`, outcome: 'no-answer', reason: answer.rejected });
      for (const [index, { proposal, why }] of answer.proposals.entries()) {
        const id = `${host.germline}/${number}/${index}`;
        // A policy that proposes the same again before an operator has answered is not asked twice.
        const parked = state.pending.find(
          (p) => p.proposal.kind === proposal.kind && p.proposal.child === proposal.child,
        );
        if (parked) {
          log.info('a proposal already awaits approval', { id: parked.id, kind: proposal.kind, child: proposal.child });
          continue;
        }
        // Judged against what is true now, after the acts before it in this tick.
        const judgement = judge(proposal, observe(measured), state.limits);
        const base = { id, proposal, why, judgement };
        if (!judgement.allowed) {
          decisions.push({ ...base, outcome: 'refused', reason: refusalReasons(judgement) });
        } else if (judgement.needsApproval) {
          state.pending.push({
            id,
            proposal,
            why,
            policy: answer.policy,
            observationDigest: answer.observationDigest,
            at: now().toISOString(),
          });
          decisions.push({
            ...base,
            outcome: 'awaiting-approval',
            reason: `above the approval threshold of ${money(state.limits.approvalThreshold!)}: waits for \`computatrum approve ${id}\``,
          });
        } else {
          const done = await attempt(id, proposal, {
            policy: answer.policy,
            observationDigest: answer.observationDigest,
          });
          decisions.push({
            ...base,
            outcome: done.ok ? 'executed' : 'failed',
            reason: done.ok ? done.done : done.error,
          });
          const books = proposal.child === undefined ? undefined : measured.children[proposal.child];
          // What was just done counts for the proposals after it: a started run holds its cap, a retiring child is out.
          if (done.ok && books && proposal.kind === 'train')
            books.reserved = (BigInt(books.reserved) + BigInt(proposal.maxCost)).toString();
          if (done.ok && books && proposal.kind === 'retire') books.state = 'retiring';
        }
      }
      await recording.recordDecisions({
        germline: host.germline,
        policy: answer.policy,
        observationDigest: answer.observationDigest,
        decisions,
      });
      for (const d of decisions)
        log.info('autonomy decision', {
          id: d.id,
          kind: d.proposal?.kind,
          child: d.proposal?.child,
          outcome: d.outcome,
          reason: d.reason,
        });
      return { tick: number, trigger, policy: answer.policy, observationDigest: answer.observationDigest, decisions };
    });
  }

  function awaiting(decisionId: string): PendingDecision {
    const found = state.pending.find((p) => p.id === decisionId);
    if (!found)
      throw ApplicationFailure.create({
        type: FAILURE.notAwaitingApproval,
        nonRetryable: true,
        message: `no decision ${decisionId} awaits approval: list them with \`computatrum decisions --awaiting\``,
      });
    return found;
  }

  async function conclude(pending: PendingDecision, summary: DecisionSummary): Promise<DecisionSummary> {
    state.pending = state.pending.filter((p) => p !== pending);
    await recording.recordDecisions({
      germline: host.germline,
      policy: pending.policy,
      observationDigest: pending.observationDigest,
      decisions: [summary],
    });
    return summary;
  }

  const checkApprover = ({ decisionId, by }: { decisionId: string; by: string }) => {
    if (typeof by !== 'string' || !by.trim()) throw invalid('an approval or rejection names who gives it (by)');
    awaiting(decisionId);
  };

  setHandler(tickUpdate, () => tick('operator'));
  setHandler(autonomyQuery, status);
  setHandler(
    setAutonomyUpdate,
    (change) => {
      Object.assign(state, applyAutonomyChange(state, change, host.budget.currency));
      rescheduled = true;
      return status();
    },
    { validator: (change) => void applyAutonomyChange(state, change, host.budget.currency) },
  );

  setHandler(
    approveUpdate,
    ({ decisionId, by, reason }) =>
      exclusively(async () => {
        const pending = awaiting(decisionId);
        const judgement = judge(pending.proposal, observe(await measure()), state.limits);
        const base = { id: pending.id, proposal: pending.proposal, why: pending.why, judgement };
        const approval = `approved by ${by}${reason ? ` (${reason})` : ''}`;
        if (!judgement.allowed)
          return conclude(pending, {
            ...base,
            outcome: 'refused',
            reason: `${approval}, but the guardrails now refuse it: ${refusalReasons(judgement)}`,
          });
        const done = await attempt(pending.id, pending.proposal, pending);
        return conclude(pending, {
          ...base,
          outcome: done.ok ? 'approved' : 'failed',
          reason: `${approval}: ${done.ok ? done.done : done.error}`,
        });
      }),
    { validator: checkApprover },
  );

  setHandler(
    rejectUpdate,
    ({ decisionId, by, reason }) =>
      exclusively(async () => {
        const pending = awaiting(decisionId);
        return conclude(pending, {
          id: pending.id,
          proposal: pending.proposal,
          why: pending.why,
          outcome: 'rejected',
          reason: `rejected by ${by}${reason ? `: ${reason}` : ''}`,
        });
      }),
    { validator: checkApprover },
  );

  return {
    limits: () => state.limits,
    evalGate: () => state.evalGate,
    busy: () => busy,
    snapshot: () => ({ ...state, pending: [...state.pending] }),
    async run(stop) {
      // A germline run begun by a daemon without autonomy replays without timers; it ticks from its next run on.
      if (!patched('germline-autonomy-tick')) return condition(stop);
      // The wait for the next tick is a timer that is never cancelled: `stop` reads the server's
      // continue-as-new suggestion, whose activation can differ between a run and its replay under a
      // burst of updates, so a timer cancelled by it made a command that replay did not make again
      // (a nondeterminism seen on queries). A timer left pending when the run continues as new costs nothing.
      const keepTimers = patched('germline-tick-timer-kept');
      for (;;) {
        if (stop()) return;
        rescheduled = false;
        const due = nextTickAt();
        const wait = due === null ? undefined : due - now().getTime();
        if (wait !== undefined && wait <= 0) {
          await timerTick();
          continue;
        }
        if (wait === undefined) {
          await condition(() => stop() || rescheduled);
          continue;
        }
        if (!keepTimers) {
          const woken = await condition(() => stop() || rescheduled, wait);
          if (!woken) await timerTick();
          continue;
        }
        let tickDue = false;
        void sleep(wait).then(() => (tickDue = true));
        await condition(() => stop() || rescheduled || tickDue);
        if (tickDue && !stop() && !rescheduled) await timerTick();
      }
    },
  };
}

export function initialAutonomyState(
  limits?: AutonomyPolicy,
  evalGate?: EvalGate | null,
  decider?: DeciderSettings,
): AutonomyState {
  return {
    limits: limits ?? DEFAULT_AUTONOMY_POLICY,
    decider: decider ?? DEFAULT_DECIDER,
    evalGate: evalGate ?? null,
    ticks: 0,
    lastTickAt: null,
    pending: [],
  };
}
