// The outside-world half of the germline's tick: measuring what the workflow cannot see itself
// (burn, revenue, each child's books, training results), asking the configured policy, storing the
// decisions, and carrying out the acts that touch other workflows (training runs, child deposits).
// The workflow judges every proposal against the guardrails between `decide` and any act.
import { Context } from '@temporalio/activity';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Database } from '../db/prisma';
import {
  DEFAULT_RULES,
  httpPolicy,
  observationDigest,
  type PolicyAnswer,
  recordDecision,
  rulesPolicy,
  type TrainingHistory,
} from './policy';
import type { CheckpointStore } from '../store/types';
import type { DecisionSummary, DeciderSettings } from '../workflows/autonomy-api';
import { type ChildLifecycle, type ChildStatus, childStatusQuery } from '../workflows/child-api';
import type { FeedbackSummary, Observation } from '../workflows/guardrails';
import { measureFeedback } from './datasets';
import type { MinorUnits } from '../workflows/money';
import { type TrainingDefaults, trainingRequest } from '../workflows/training-api';
import { startTrainingRun } from '../temporal/training-client';
import { depositUpdate } from '../workflows/budget-api';
import { germlineWorkflowId, childRepository, childWorkflowPrefix, childWorkflowId } from '../workflows/names';
import { updateBudget } from '../temporal/budget-client';
import { FAILURE } from '../workflows/failures';

export interface AutonomyDependencies {
  db: Database;
  client: Client;
  store: CheckpointStore;
  training: TrainingDefaults;
  /** Bearer token for the http policy's agent; a secret, so never part of workflow input or history. */
  agentToken?: string;
}

export interface ChildMeasure {
  state: ChildLifecycle;
  spent: MinorUnits;
  reserved: MinorUnits;
}

export interface Measurements {
  /** Training spend of the germline and its children over the last week, per day, rounded up. */
  burnPerDay: MinorUnits;
  /** Revenue deposits (marketplace fees: references `evt_…` or `revenue/…`) over the last week, per day. */
  revenuePerDay: MinorUnits;
  /** Each running child's own books. */
  children: Record<string, ChildMeasure>;
  /** Final losses of each child's training runs, oldest first (the last 20). */
  history: TrainingHistory;
  /** The feedback on the germline's public answers it has not learned from yet. */
  feedback: FeedbackSummary;
}

export interface AutonomyActivities {
  measureGermline(input: {
    germline: string;
    children: Array<{ name: string; workflowId: string }>;
  }): Promise<Measurements>;
  decide(input: {
    decider: DeciderSettings;
    observation: Observation;
    history: TrainingHistory;
  }): Promise<PolicyAnswer & { observationDigest: string }>;
  recordDecisions(input: {
    germline: string;
    policy: 'rules' | 'http';
    observationDigest: string;
    decisions: DecisionSummary[];
  }): Promise<void>;
  /** Starts `training/<runId>` paid by the child, on its branch; starting the same id again is a no-op. */
  startChildTraining(input: {
    germline: string;
    child: string;
    runId: string;
    maxCost: MinorUnits;
    currency: string;
  }): Promise<{ runId: string; base?: string }>;
  /** Adds to a running child's allowance: a deposit in its books, referenced by the germline's reservation. */
  fundChild(input: { workflowId: string; amount: MinorUnits; currency: string; reference: string }): Promise<void>;
}

const WINDOW_DAYS = 7;
const DAY_MS = 86_400_000;

function perDay(total: bigint): MinorUnits {
  return ((total + BigInt(WINDOW_DAYS) - 1n) / BigInt(WINDOW_DAYS)).toString();
}

/**
 * The observation with the children archived in PostgreSQL whose names are among `names` (as ended
 * children): their names stay taken, so the rules policy moves on to the next purpose.
 */
async function withArchivedNames(db: Database, observation: Observation, names: string[]): Promise<Observation> {
  const caller = Context.current().info.workflowExecution?.workflowId ?? '';
  const germline = caller.startsWith('germline/') ? caller.slice('germline/'.length) : undefined;
  if (!germline || names.length === 0) return observation;
  const listed = new Set(observation.children.map((c) => c.name));
  const archived = await db.archivedChild.findMany({
    where: { germline, name: { in: names.filter((n) => !listed.has(n)) } },
  });
  if (archived.length === 0) return observation;
  return {
    ...observation,
    children: [
      ...observation.children,
      ...archived.map((a) => ({
        name: a.name,
        state: a.state as 'retired' | 'left',
        allowance: a.allowance.toString(),
        spent: (a.spent ?? 0n).toString(),
      })),
    ],
  };
}

export function createAutonomyActivities(deps: AutonomyDependencies): AutonomyActivities {
  const { db, client } = deps;
  return {
    async measureGermline({ germline, children }) {
      const since = new Date(Date.now() - WINDOW_DAYS * DAY_MS);
      const payers = [
        { payer: germlineWorkflowId(germline) },
        { payer: { startsWith: childWorkflowPrefix(germline) } },
      ];
      const [spent, revenue, runs, feedback] = await Promise.all([
        db.trainingRun.aggregate({ _sum: { cost: true }, where: { OR: payers, finishedAt: { gte: since } } }),
        db.journalTransaction.aggregate({
          _sum: { amount: true },
          where: {
            germline,
            kind: 'deposit',
            occurredAt: { gte: since },
            OR: [{ reference: { startsWith: 'evt_' } }, { reference: { startsWith: 'revenue/' } }],
          },
        }),
        db.trainingRun.findMany({
          where: {
            payer: { in: children.map((c) => c.workflowId) },
            loss: { not: null },
            state: { in: ['succeeded', 'cost-cap', 'deadline'] },
          },
          orderBy: { createdAt: 'asc' },
          select: { payer: true, loss: true },
        }),
        measureFeedback(db, germline),
      ]);
      const measured: Record<string, ChildMeasure> = {};
      await Promise.all(
        children.map(async ({ name, workflowId }) => {
          // A child that has ended answers from its closed history too; one that cannot answer is left out.
          const status: ChildStatus | undefined = await client.workflow
            .getHandle(workflowId)
            .query(childStatusQuery)
            .catch(() => undefined);
          if (status) measured[name] = { state: status.state, spent: status.spent, reserved: status.reserved };
        }),
      );
      const history: TrainingHistory = {};
      for (const { name, workflowId } of children) {
        const losses = runs.filter((r) => r.payer === workflowId).map((r) => r.loss!);
        if (losses.length > 0) history[name] = losses.slice(-20);
      }
      return {
        burnPerDay: perDay(spent._sum.cost ?? 0n),
        revenuePerDay: perDay(revenue._sum.amount ?? 0n),
        children: measured,
        history,
        feedback,
      };
    },

    async decide({ decider, observation, history }) {
      const digest = observationDigest(observation, history);
      if (decider.policy === 'http') {
        if (!decider.endpoint)
          return {
            policy: 'http',
            proposals: [],
            rejected: 'the http policy has no endpoint: set one with `computatrum autonomy --endpoint URL`',
            observationDigest: digest,
          };
        const answer = await httpPolicy(decider.endpoint, observation, history, {
          ...(decider.timeoutMs ? { timeoutMs: decider.timeoutMs } : {}),
          ...(deps.agentToken ? { token: deps.agentToken } : {}),
        });
        return { ...answer, observationDigest: digest };
      }
      const params = { ...DEFAULT_RULES, ...decider.rules };
      return {
        policy: 'rules',
        proposals: rulesPolicy(await withArchivedNames(db, observation, params.purposes), history, params),
        observationDigest: digest,
      };
    },

    async recordDecisions({ germline, policy, observationDigest: digest, decisions }) {
      for (const d of decisions) {
        await recordDecision(db, {
          id: d.id,
          germline,
          policy,
          observationDigest: digest,
          ...(d.proposal ? { proposal: d.proposal } : {}),
          ...(d.why ? { why: d.why } : {}),
          ...(d.judgement ? { judgement: d.judgement } : {}),
          outcome: d.outcome,
          reason: d.reason,
        });
      }
    },

    async startChildTraining({ germline, child, runId, maxCost, currency }) {
      const repo = childRepository(child);
      // The child trains on from its own head; a child spawned before the germline had one starts from scratch.
      const head = await deps.store.getManifest(repo, 'main');
      const request = trainingRequest(deps.training, {
        id: runId,
        payer: childWorkflowId(germline, child),
        currency,
        ...(head ? { base: { repo, reference: 'main' } } : {}),
        output: { repo, branch: 'main' },
        maxCost: BigInt(maxCost),
      });
      try {
        await startTrainingRun(client, Context.current().info.taskQueue, request);
      } catch (error) {
        // A retried activity finds its own run started: that is the run.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
      return { runId, ...(head ? { base: `${repo}:main` } : {}) };
    },

    async fundChild({ workflowId, amount, currency, reference }) {
      try {
        await updateBudget(client.workflow.getHandle(workflowId), depositUpdate, { amount, currency, reference });
      } catch (error) {
        const cause = (error as { cause?: ApplicationFailure }).cause;
        if (cause instanceof ApplicationFailure && cause.type !== FAILURE.unprocessedUpdate) {
          throw ApplicationFailure.create({
            type: 'FundingRefused',
            nonRetryable: true,
            message: `${workflowId} refused the funds: ${cause.message}`,
          });
        }
        throw error;
      }
    },
  };
}
