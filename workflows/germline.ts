// germline/<name>: the entity that holds the LLC's budget. The workflow serializes every money
// decision (updates with synchronous validators, served by serve-budget.ts), books each accepted
// change in the PostgreSQL journal through an activity, and continues as new when history grows,
// carrying plain JSON state.
import {
  ApplicationFailure,
  continueAsNew,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { Budget, BudgetRejection, type CarriedMemory, initialBudgetState } from './budget';
import { asFailure, serveBudget } from './serve-budget';
import type { CheckpointActivities } from '../activities/checkpoints';
import type { GermlineArchiveActivities } from '../activities/germline-archive';
import { childWorkflow } from './child';
import { ArchivedNames } from './germline-names';
import { initialAutonomyState, serveAutonomy } from './autonomy';
import { type ChildRecord, childEndedSignal, childrenQuery, type SpawnRequest, spawnChildUpdate } from './child-api';
import { type GermlineInput, promoteUpdate } from './germline-api';
import { failureMessage } from './failures';
import { checkEvalGate, judge, type Observation, refusalReasons } from './guardrails';
import { BudgetState, GermlineId } from './search-attributes';
import { statusQuery } from './budget-api';
import { childWorkflowId, REPOSITORY, germlineRepository } from './names';
import { childSummary } from './summaries';
import { now } from './clock';

const checkpoints = proxyActivities<CheckpointActivities>({
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes: ['CheckpointUnknown'],
  },
});

// A database that stays down is waited out by the next run: ended children stay carried until then.
const archive = proxyActivities<GermlineArchiveActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/** Germline runs begun before ended children moved to PostgreSQL replay as they ran: they carried every child. */
const ARCHIVE_ENDED_CHILDREN = 'germline-archive-ended-children';
/** Ended children per archive activity: one small transaction, far below the payload limit. */
const ARCHIVE_BATCH = 500;
/**
 * What the budget's memories keep across continue-as-new (a run keeps more while it runs): the
 * journal in PostgreSQL holds every entry, and the refs of open reservations are always kept, so the
 * carried state stays tens of kilobytes however long the germline lives.
 */
const CARRIED_MEMORY: CarriedMemory = { recent: 100, reserveRefs: 300, closed: 300 };

export async function germlineWorkflow(input: GermlineInput): Promise<void> {
  const budget = new Budget(input.state ?? initialBudgetState(input.name, input.currency, input.policy));

  let shownLabel: string | undefined = workflowInfo().typedSearchAttributes.get(BudgetState);
  function showBudgetState(): void {
    const label = budget.label();
    if (label === shownLabel) return;
    upsertSearchAttributes([{ key: BudgetState, value: label }]);
    shownLabel = label;
  }

  setHandler(statusQuery, () => budget.status(now()));
  if (workflowInfo().typedSearchAttributes.get(GermlineId) !== input.name) {
    upsertSearchAttributes([{ key: GermlineId, value: input.name }]);
  }
  showBudgetState();
  const { accepted, updateKey, readyToContinueAsNew } = serveBudget(budget, {
    book: input.name,
    onChange: showBudgetState,
  });

  // ---- children ----
  const children = new Map<string, ChildRecord>((input.children ?? []).map((c) => [c.name, c]));
  let archivedChildren = input.archivedChildren ?? 0;
  const archivedNames = new ArchivedNames(input.archivedNames);
  /** The filter holds every archived name, unless an earlier run archived without one (then PostgreSQL is always asked). */
  const filterComplete = input.archivedNames !== undefined || archivedChildren === 0;
  /** Names archived by this run: a spawn that asked PostgreSQL before they were stored still sees them. */
  const archivedThisRun = new Set<string>();

  /** Ended children of earlier runs are in PostgreSQL: a spawn asks it whether the name was ever used. */
  async function nameArchived(name: string): Promise<boolean> {
    // A name the filter never saw is new for certain.
    if (archivedChildren === 0 || (filterComplete && !archivedNames.mightHave(name))) return false;
    try {
      return (await archive.childNameArchived({ germline: input.name, name })) || archivedThisRun.has(name);
    } catch (error) {
      throw ApplicationFailure.create({
        type: 'SpawnFailed',
        nonRetryable: true,
        message: `spawn ${name} refused: its name could not be checked against the archived children (${failureMessage(error)}); try again`,
      });
    }
  }

  /** Reserves the allowance and starts child/<germline>/<name>; the budget key makes a retry book nothing twice. */
  async function spawnChild(request: SpawnRequest, key: string): Promise<ChildRecord> {
    // Reserved and recorded right after the name is known free (asking PostgreSQL only once children
    // are archived), so a second spawn of the same name is refused.
    const taken = () =>
      ApplicationFailure.create({
        type: 'GuardrailRefused',
        nonRetryable: true,
        message: `spawn ${request.name} refused: a child named ${request.name} exists already`,
      });
    if (children.has(request.name)) throw taken();
    if ((await nameArchived(request.name)) || children.has(request.name)) throw taken();
    const reserved = asFailure(() =>
      budget.reserve(
        {
          amount: request.allowance,
          ref: `child/${request.name}`,
          purpose: `child ${request.name}: ${request.purpose}`,
        },
        key,
        now(),
      ),
    );
    if (reserved.result.duplicate) throw taken(); // an earlier child's reservation, not a new one
    const record: ChildRecord = {
      name: request.name,
      workflowId: childWorkflowId(input.name, request.name),
      purpose: request.purpose,
      allowance: request.allowance,
      reservationId: reserved.result.reservationId,
      state: 'active',
    };
    children.set(request.name, record);
    await accepted(reserved);
    try {
      // ABANDON: the germline's continue-as-new must not close its children.
      await startChild(childWorkflow, {
        workflowId: record.workflowId,
        args: [
          {
            version: 1,
            germline: input.name,
            name: request.name,
            purpose: request.purpose,
            currency: budget.currency,
            allowance: request.allowance,
            reservationId: record.reservationId,
          },
        ],
        staticSummary: childSummary(input.name, request.name, request.purpose, request.allowance, budget.currency),
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (error) {
      // No child, no allowance: the reservation goes back before the refusal is answered.
      children.delete(request.name);
      await accepted(budget.release({ reservationId: record.reservationId }, `${key}/undo`, now()));
      throw ApplicationFailure.create({
        type: 'SpawnFailed',
        nonRetryable: true,
        message: `could not start ${record.workflowId}: ${(error as Error).message}`,
      });
    }
    return record;
  }

  // ---- autonomy: the tick, the policy, approvals (workflows/autonomy.ts) ----
  const autonomy = serveAutonomy(
    { germline: input.name, budget, children, spawn: spawnChild, accepted },
    input.autonomyState ?? initialAutonomyState(input.autonomy, input.evalGate, input.decider),
  );
  /** What an operator's spawn is judged on: the books as they are; burn and income are measured by the tick. */
  function observe(): Observation {
    return {
      budget: budget.status(now()),
      burnPerDay: '0',
      revenuePerDay: '0',
      children: [...children.values()].map((c) => ({
        name: c.name,
        state: c.state,
        allowance: c.allowance,
        spent: c.spent ?? '0',
      })),
    };
  }
  setHandler(childrenQuery, () => [...children.values()]);
  setHandler(spawnChildUpdate, (request) => spawnChild(request, updateKey()), {
    validator: (request) => {
      const judgement = judge(
        { kind: 'spawn', child: request?.name, allowance: request?.allowance, purpose: request?.purpose },
        observe(),
        autonomy.limits(),
      );
      if (!judgement.allowed)
        throw ApplicationFailure.create({
          type: 'GuardrailRefused',
          nonRetryable: true,
          message: `spawn ${request?.name} refused: ${refusalReasons(judgement)}`,
        });
      asFailure(() =>
        budget.checkReserve(
          { amount: request.allowance, ref: `child/${request.name}`, purpose: request.purpose },
          now(),
        ),
      );
    },
  });
  // ---- merge online: a checkpoint whose training metrics pass the eval gate becomes the head ----
  setHandler(
    promoteUpdate,
    async ({ repo, reference }) => {
      const { digest, metrics } = await checkpoints
        .readCheckpointMetrics({ repo, reference })
        .catch((error: unknown) => {
          // The caller reads why (an unknown checkpoint), not that an activity failed.
          throw ApplicationFailure.create({
            type: 'PromotionFailed',
            nonRetryable: true,
            message: failureMessage(error),
          });
        });
      const gate = checkEvalGate(metrics, autonomy.evalGate());
      if (!gate.ok)
        throw ApplicationFailure.create({
          type: 'BelowEvalGate',
          nonRetryable: true,
          message: `${repo}:${reference} is not promoted: ${gate.detail}`,
        });
      // The same manifest, so its lineage (parent, training run, metrics) stays as it was.
      await checkpoints.forkBranch({
        from: { repo, reference: digest },
        to: { repo: germlineRepository(input.name), branch: 'main' },
      });
      return { digest, metrics, gate: gate.detail };
    },
    {
      validator: ({ repo, reference }) => {
        if (!REPOSITORY.test(repo ?? '') || !reference) {
          throw ApplicationFailure.create({
            type: 'InvalidRequest',
            nonRetryable: true,
            message: `promote needs a repository and a tag or digest, like trainers/alice/coder:main; got ${repo}:${reference}`,
          });
        }
      },
    },
  );

  setHandler(childEndedSignal, (ended) => {
    const record = children.get(ended.name);
    if (!record || record.state !== 'active' || record.reservationId !== ended.reservationId) return; // told twice, or not ours
    // What the child spent is charged, in the order its allowance was reserved; the rest comes back.
    const fundings = record.fundings ?? [];
    const held = [
      {
        reservationId: record.reservationId,
        amount: (BigInt(record.allowance) - fundings.reduce((sum, f) => sum + BigInt(f.amount), 0n)).toString(),
      },
      ...fundings,
    ];
    let left = BigInt(ended.spent);
    const settlements = held.map(({ reservationId, amount }) => {
      const actual = left < BigInt(amount) ? left : BigInt(amount);
      left -= actual;
      return { reservationId, actual: actual.toString() };
    });
    try {
      if (left > 0n)
        throw new BudgetRejection(
          'InvalidRequest',
          `${ended.name} reports ${ended.spent} spent, more than its allowance of ${record.allowance}`,
        );
      for (const settlement of settlements) budget.checkSettle(settlement);
    } catch (error) {
      if (!(error instanceof BudgetRejection)) throw error;
      // The child stays on the books as active, for an operator to see.
      log.error('a child reported an end the budget refuses', {
        child: ended.name,
        spent: ended.spent,
        error: error.message,
      });
      return;
    }
    settlements.forEach((settlement, i) =>
      budget.settle(
        settlement,
        `${workflowInfo().workflowId}/child-ended/${ended.name}${i === 0 ? '' : `/${i}`}`,
        now(),
      ),
    );
    Object.assign(record, {
      state: ended.how,
      spent: ended.spent,
      reason: ended.reason,
      ...(ended.owner ? { owner: ended.owner } : {}),
    });
    showBudgetState();
  });

  /** Stores ended children in PostgreSQL, then drops them from the state; what could not be stored stays carried. */
  async function archiveEndedChildren(): Promise<void> {
    const ended = [...children.values()].filter((c) => c.state !== 'active');
    for (let i = 0; i < ended.length; i += ARCHIVE_BATCH) {
      const batch = ended.slice(i, i + ARCHIVE_BATCH);
      try {
        await archive.archiveEndedChildren({ germline: input.name, children: batch });
      } catch (error) {
        log.error('ended children could not be archived; they stay in the carried state and the next run tries again', {
          children: ended.length - i,
          error: failureMessage(error),
        });
        return;
      }
      for (const record of batch) {
        children.delete(record.name);
        archivedThisRun.add(record.name);
        archivedNames.add(record.name);
      }
      archivedChildren += batch.length;
    }
  }

  await autonomy.run(() => workflowInfo().continueAsNewSuggested);
  const archiving = patched(ARCHIVE_ENDED_CHILDREN);
  if (archiving) await archiveEndedChildren();
  // Changes the journal has not booked yet travel in the state and are booked by the next run; every
  // update is answered and every tick finished in the same activation as continue-as-new.
  await readyToContinueAsNew(() => !autonomy.busy());
  await continueAsNew<typeof germlineWorkflow>({
    ...input,
    state: budget.snapshot({ nextGeneration: true, ...(archiving ? { keep: CARRIED_MEMORY } : {}) }),
    children: [...children.values()],
    ...(archivedChildren > 0 ? { archivedChildren, archivedNames: archivedNames.encoded() } : {}),
    autonomyState: autonomy.snapshot(),
  });
}
