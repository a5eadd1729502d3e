// The germline's autonomy from the command line: autonomy (show or change its limits and policy),
// tick (decide now), decisions / decision <id> (why it did what it did), approve|reject <id>.
import { userInfo } from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import type { Config } from '../../runtime/config';
import type { AutonomyChange, AutonomyStatus, DecisionSummary } from '../../workflows/autonomy-api';
import type { EvalGate, Proposal, Verdict } from '../../workflows/guardrails';
import { formatMoney } from '../../workflows/money';
import {
  amountOption,
  capOption,
  liftable,
  parseDuration,
  positiveInteger,
  print,
  UserError,
  wholeNumber,
  withDatabase,
  withGermline,
} from '../common';
import { table } from '../table';

function describeProposal(proposal: Proposal | null | undefined, currency: string): string {
  if (!proposal) return '';
  const money = (v: string) => formatMoney(v, currency);
  switch (proposal.kind) {
    case 'spawn':
      return `spawn ${proposal.child} with ${money(proposal.allowance)}`;
    case 'fund':
      return `fund ${proposal.child} with ${money(proposal.amount)}`;
    case 'train':
      return `train ${proposal.child}, at most ${money(proposal.maxCost)}`;
    case 'retire':
      return `retire ${proposal.child}`;
    case 'learn':
      return `learn from ${proposal.records} feedback records, at most ${money(proposal.maxCost)}`;
  }
}

/** `loss<=2.5`, `accuracy>=0.9`, or `none` (kept as the string: commander turns a parser's null into ''). */
export function parseEvalGate(text: string): EvalGate | 'none' {
  if (text === 'none') return 'none';
  const match = /^([A-Za-z][\w.-]*)\s*(<=|>=)\s*(-?\d+(?:\.\d+)?)$/.exec(text.trim());
  if (!match)
    throw new InvalidArgumentError(`"${text}" is not an eval gate: write it like loss<=2.5 or accuracy>=0.9, or none`);
  return match[2] === '<='
    ? { metric: match[1]!, atMost: Number(match[3]) }
    : { metric: match[1]!, atLeast: Number(match[3]) };
}

function showAutonomy(status: AutonomyStatus, currency: string): void {
  const cap = (v: string | null) => (v === null ? 'none' : formatMoney(v, currency));
  const gate = status.evalGate;
  const decider = status.decider;
  print(
    `policy              ${decider.policy}${decider.policy === 'http' ? ` (${decider.endpoint}, ${decider.timeoutMs ?? 10_000} ms)` : ''}`,
  );
  if (decider.rules && Object.keys(decider.rules).length > 0)
    print(`rules               ${JSON.stringify(decider.rules)}`);
  print(
    `ticks               ${decider.tickIntervalSeconds ? `every ${decider.tickIntervalSeconds} s` : 'only when triggered (computatrum tick)'}; ${status.ticks} so far`,
  );
  print(`last / next tick    ${status.lastTickAt ?? 'never'} / ${status.nextTickAt ?? 'none scheduled'}`);
  print(`max children        ${status.limits.maxChildren}`);
  print(`per-child cap       ${cap(status.limits.perChildAllowanceCap)}`);
  print(`min runway          ${status.limits.minRunwayDays} days`);
  print(`approval threshold  ${cap(status.limits.approvalThreshold)}`);
  print(
    `eval gate           ${gate ? `${gate.metric}${gate.atMost !== undefined ? ` <= ${gate.atMost}` : ''}${gate.atLeast !== undefined ? ` >= ${gate.atLeast}` : ''}` : 'none'}`,
  );
  print(
    `awaiting approval   ${status.pending.length === 0 ? 'nothing' : status.pending.map((p) => `${p.id} (${describeProposal(p.proposal, currency)})`).join(', ')}`,
  );
}

function showDecisions(decisions: DecisionSummary[], currency: string): void {
  if (decisions.length === 0) return print('nothing proposed');
  print(
    table(
      ['decision', 'outcome', 'proposal', 'reason'],
      decisions.map((d) => [d.id, d.outcome, describeProposal(d.proposal, currency), d.reason]),
    ),
  );
}

interface AutonomyOptions {
  maxChildren?: number;
  childCap?: string;
  minRunwayDays?: number;
  approvalThreshold?: string;
  policy?: 'rules' | 'http';
  endpoint?: string;
  timeout?: number;
  tickInterval?: number;
  evalGate?: EvalGate | 'none';
  runCost?: bigint;
  allowancePercent?: number;
  patience?: number;
  feedbackThreshold?: number;
  purposes?: string[];
  json?: boolean;
}

export function addAutonomyCommands(program: Command, config: () => Config): void {
  program.commandsGroup('Autonomy:');

  program
    .command('autonomy')
    .description('show, or change, how the germline decides by itself and the limits it decides within')
    .option('--max-children <n>', 'children funded at once', wholeNumber('--max-children', 0))
    .option('--child-cap <amount>', "most one child's allowance may reach, or none", capOption(config))
    .option(
      '--min-runway-days <n>',
      'days of net burn the funds must still cover after any spending',
      wholeNumber('--min-runway-days', 0),
    )
    .option(
      '--approval-threshold <amount>',
      'proposals moving more wait for approve/reject, or none',
      capOption(config),
    )
    .option('--policy <policy>', 'rules or http', (v) => {
      if (v !== 'rules' && v !== 'http') throw new InvalidArgumentError('--policy is rules or http');
      return v;
    })
    .option('--endpoint <url>', "the http policy's agent (its token: COMPUTATRUM_AGENT_TOKEN on the worker)")
    .option('--timeout <duration>', 'how long the agent may take, e.g. 10s', (v) => parseDuration(v) * 1000)
    // 0 stands for off: commander does not keep a null from a parser.
    .option('--tick-interval <duration>', 'time between ticks, e.g. 1h, or off (only `computatrum tick`)', (v) =>
      v === 'off' ? 0 : parseDuration(v),
    )
    .option('--eval-gate <gate>', 'what promotion needs, e.g. loss<=2.5, or none', parseEvalGate)
    .option('--run-cost <amount>', "rules: the most one child's training run may cost", amountOption(config))
    .option(
      '--allowance-percent <n>',
      "rules: a new child's allowance as a percentage of the available funds",
      positiveInteger('--allowance-percent'),
    )
    .option(
      '--patience <n>',
      'rules: runs without a better loss before a child is retired',
      positiveInteger('--patience'),
    )
    .option(
      '--feedback-threshold <n>',
      "rules: new feedback records on the germline's answers before it learns from them (0: never by itself)",
      wholeNumber('--feedback-threshold', 0),
    )
    .option('--purposes <names>', 'rules: the breeds to spawn, in order, comma-separated', (v) =>
      v
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .option('--json', 'print JSON')
    .action(async (options: AutonomyOptions) => {
      const cfg = config();
      const change: AutonomyChange = {
        ...(options.maxChildren !== undefined ? { maxChildren: options.maxChildren } : {}),
        ...(options.childCap !== undefined ? { perChildAllowanceCap: liftable(options.childCap) } : {}),
        ...(options.minRunwayDays !== undefined ? { minRunwayDays: options.minRunwayDays } : {}),
        ...(options.approvalThreshold !== undefined ? { approvalThreshold: liftable(options.approvalThreshold) } : {}),
        ...(options.policy ? { policy: options.policy } : {}),
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.timeout !== undefined ? { timeoutMs: options.timeout } : {}),
        ...(options.tickInterval !== undefined ? { tickIntervalSeconds: options.tickInterval || null } : {}),
        ...(options.evalGate !== undefined ? { evalGate: options.evalGate === 'none' ? null : options.evalGate } : {}),
      };
      const rules = {
        ...(options.runCost !== undefined ? { runCost: options.runCost.toString() } : {}),
        ...(options.allowancePercent !== undefined ? { allowancePercent: options.allowancePercent } : {}),
        ...(options.patience !== undefined ? { patience: options.patience } : {}),
        ...(options.feedbackThreshold !== undefined ? { feedbackThreshold: options.feedbackThreshold } : {}),
        ...(options.purposes ? { purposes: options.purposes } : {}),
      };
      if (Object.keys(rules).length > 0) change.rules = rules;
      const [{ germlineHandle }, { autonomyQuery, setAutonomyUpdate }, { updateBudget }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/autonomy-api.js'),
        import('../../temporal/budget-client.js'),
      ]);
      const status = await withGermline(cfg, (client) => {
        const handle = germlineHandle(client, cfg.germline);
        return Object.keys(change).length === 0
          ? handle.query(autonomyQuery)
          : updateBudget(handle, setAutonomyUpdate, change);
      });
      if (options.json) return print(JSON.stringify(status, null, 2));
      showAutonomy(status, cfg.currency);
    });

  program
    .command('tick')
    .description('let the germline observe, decide and act now, and show what it decided')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const cfg = config();
      const [{ germlineHandle }, { tickUpdate }] = await Promise.all([
        import('../../temporal/germline-client.js'),
        import('../../workflows/autonomy-api.js'),
      ]);
      const report = await withGermline(cfg, (client) =>
        germlineHandle(client, cfg.germline).executeUpdate(tickUpdate, { args: [] }),
      );
      if (options.json) return print(JSON.stringify(report, null, 2));
      print(`tick ${report.tick} (${report.policy} policy, observation ${report.observationDigest.slice(0, 19)}…)`);
      showDecisions(report.decisions, cfg.currency);
    });

  program
    .command('decisions')
    .description("the germline's recent decisions: what was proposed, how the guardrails judged it, what came of it")
    .option('--awaiting', 'only those waiting for approve/reject')
    .option('--limit <n>', 'how many', positiveInteger('--limit'), 30)
    .option('--json', 'print JSON')
    .action(async (options: { awaiting?: boolean; limit: number; json?: boolean }) => {
      const cfg = config();
      const rows = await withDatabase(cfg, (db) =>
        db.decision.findMany({
          where: { germline: cfg.germline, ...(options.awaiting ? { outcome: 'awaiting-approval' } : {}) },
          orderBy: { createdAt: 'desc' },
          take: options.limit,
        }),
      );
      if (options.json) return print(JSON.stringify(rows, null, 2));
      if (rows.length === 0)
        return print(
          options.awaiting
            ? 'nothing awaits approval'
            : 'no decisions yet: the germline decides on its ticks (`computatrum tick` for one now)',
        );
      print(
        table(
          ['decision', 'time (UTC)', 'policy', 'outcome', 'proposal', 'reason'],
          rows.map((r) => [
            r.id,
            r.createdAt.toISOString().replace('T', ' ').slice(0, 19),
            r.policy,
            r.outcome,
            describeProposal(r.proposal as Proposal | null, cfg.currency),
            r.reason,
          ]),
        ),
      );
    });

  program
    .command('decision')
    .description('one decision in full: the proposal, why, every guardrail verdict, the outcome')
    .argument('<id>', 'decision id, e.g. computatrum/12/0')
    .action(async (id: string) => {
      const cfg = config();
      const row = await withDatabase(cfg, (db) => db.decision.findUnique({ where: { id } }));
      if (!row) throw new UserError(`no decision ${id}: list them with \`computatrum decisions\``);
      print(`decision ${row.id}  (${row.outcome})`);
      print(`  policy       ${row.policy}, observation ${row.observationDigest}`);
      print(`  proposal     ${describeProposal(row.proposal as Proposal | null, cfg.currency) || 'none'}`);
      if (row.why) print(`  why          ${row.why}`);
      print(`  outcome      ${row.reason}`);
      for (const v of (row.verdicts as Verdict[] | null) ?? [])
        print(`  ${v.ok ? 'ok  ' : 'FAIL'} ${v.rule.padEnd(24)} ${v.detail}`);
    });

  for (const [command, update, description] of [
    [
      'approve',
      'approveUpdate',
      'approve a proposal waiting above the approval threshold: it is judged again and carried out',
    ],
    ['reject', 'rejectUpdate', 'reject a proposal waiting above the approval threshold'],
  ] as const) {
    program
      .command(command)
      .description(description)
      .argument('<id>', 'decision id (computatrum decisions --awaiting)')
      .option('--reason <text>', 'why, for the record')
      .option('--by <name>', 'who decides, for the record', userInfo().username)
      .action(async (id: string, options: { reason?: string; by: string }) => {
        const cfg = config();
        const [{ germlineHandle }, autonomyApi, { updateBudget }] = await Promise.all([
          import('../../temporal/germline-client.js'),
          import('../../workflows/autonomy-api.js'),
          import('../../temporal/budget-client.js'),
        ]);
        const summary = await withGermline(cfg, (client) =>
          updateBudget(germlineHandle(client, cfg.germline), autonomyApi[update], {
            decisionId: id,
            by: options.by,
            ...(options.reason ? { reason: options.reason } : {}),
          }),
        );
        print(`${summary.id}: ${summary.outcome} — ${summary.reason}`);
      });
  }
}
