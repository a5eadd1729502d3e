// The charts the pages show, from the operator console's data (operator-charts.ts): the germline's
// money over the last 30 days, its instances' cost, and a training run's loss curve (also on the hub
// page of a checkpoint the run made).
import { barChart, lineChart } from '../charts';
import type { LossPoint } from '../../db/training-loss';
import type { DailyBooks, Share } from '../operator-charts';
import { html, type SafeHtml } from './html';

export interface MoneyCharts {
  books: DailyBooks;
  spend: Share[];
  income: Share[];
  instances: Array<{ id: string; repository: string; state: string; cost: bigint }>;
  currency: string;
}

/** The germline's balance and spend per day, its spend by purpose, money in by source, and its instances' cost. */
export function moneyCharts({ books, spend, income, instances, currency }: MoneyCharts): SafeHtml {
  const money = { kind: 'money', currency } as const;
  const days = books.days;
  const span = `${days[0]!.day} to ${days[days.length - 1]!.day} (UTC)`;
  const nothing = 'The journal books nothing for the germline yet: its first deposit starts these charts.';
  return html`<h2 id="charts">Money, the last ${days.length} days</h2>
    ${lineChart({
      id: 'balance',
      title: 'Balance at the end of each day',
      description: `The germline's funds (deposited minus spent) at the end of each UTC day from ${span}, from its journal.`,
      x: { kind: 'day' },
      y: { label: 'Balance', format: money },
      series: books.booked ? [{ name: 'Balance', points: days.map((d) => ({ x: d.day, y: d.balance })) }] : [],
      empty: nothing,
    })}
    ${lineChart({
      id: 'burn',
      title: 'Spent each day (burn)',
      description: `What the germline's settled reservations spent on each UTC day from ${span}.`,
      x: { kind: 'day' },
      y: { label: 'Spent', format: money },
      series: books.booked ? [{ name: 'Spent', points: days.map((d) => ({ x: d.day, y: d.spent })) }] : [],
      empty: nothing,
    })}
    ${barChart({
      id: 'spend-by-purpose',
      title: 'Spent by purpose',
      description: `What the germline spent from ${span}, by what its reservations paid for.`,
      format: money,
      bars: spend.map((s) => ({ label: s.label, value: s.amount })),
      empty: `The germline spent nothing from ${span}.`,
    })}
    ${barChart({
      id: 'income-by-source',
      title: 'Money in by source',
      description: `What was deposited into the germline's budget from ${span}: funding, and the platform's fee of priced calls.`,
      format: money,
      bars: income.map((s) => ({ label: s.label, value: s.amount })),
      empty: `Nothing was deposited from ${span}.`,
    })}
    ${barChart({
      id: 'instance-costs',
      title: 'Instances’ cost',
      description: 'What each instance paid by the germline or its children has cost so far, costliest first.',
      format: money,
      bars: instances.map((i) => ({ label: `${i.id} (${i.state})`, value: i.cost })),
      empty: 'No instance paid by the germline or its children has cost anything yet.',
    })}`;
}

/** A training run's loss by step (at most the drawn points that db/training-loss.ts reads); `id` unique in the page. */
export function lossCurveChart(runId: string, points: LossPoint[], id = `loss-${runId}`): SafeHtml {
  return lineChart({
    id,
    title: `Loss of run ${runId}`,
    description: `The training loss the trainer of run ${runId} reported, by step.`,
    x: { kind: 'number', label: 'Step' },
    y: { label: 'Loss', format: { kind: 'number', digits: 4 } },
    series: [{ name: 'Loss', points: points.map((p) => ({ x: p.step, y: p.loss })) }],
    empty: `Run ${runId} reported no loss.`,
  });
}
