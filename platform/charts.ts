// Charts drawn on the server as SVG, readable without scripts: a line chart (days or numbers along x)
// and a bar chart, each in a <figure> with a title and description for screen readers and the
// numbers as text beside it. Money stays integer minor units (bigint) until it is a label
// (formatAmount/formatMoney) or a pixel; every label goes through `html`, which escapes it. Pure and
// deterministic: the same data draws the same markup.
import { currencyExponent, formatAmount, formatMoney } from '../workflows/money';
import { html, type Renderable, type SafeHtml } from './pages/html';

/** A value: integer minor units (bigint) on a money axis, any number on a number axis. */
export type Value = number | bigint;

/** How values read: money from integer minor units, or numbers (`digits` decimals in texts, 3 by default). */
export type ValueFormat = { kind: 'money'; currency: string } | { kind: 'number'; digits?: number };

export interface LinePoint {
  /** A UTC day `YYYY-MM-DD` on a day axis, a number on a number axis. */
  x: string | number;
  y: Value;
}

export interface LineSeries {
  name: string;
  points: LinePoint[];
}

export interface LineChartSpec {
  /** Unique in the page: the figure's id is `chart-<id>`. */
  id: string;
  title: string;
  /** What the chart shows, in words (its <desc>, with a summary of each series added). */
  description: string;
  x: { kind: 'day' } | { kind: 'number'; label: string };
  y: { label: string; format: ValueFormat };
  series: LineSeries[];
  /** Said instead of the chart when no series has a point. */
  empty: string;
}

export interface Bar {
  label: string;
  value: Value;
}

export interface BarChartSpec {
  id: string;
  title: string;
  description: string;
  format: ValueFormat;
  bars: Bar[];
  empty: string;
}

const WIDTH = 640;
const HEIGHT = 260;
const MARGIN = { top: 16, right: 20, bottom: 44, left: 84 };
const PLOT = { width: WIDTH - MARGIN.left - MARGIN.right, height: HEIGHT - MARGIN.top - MARGIN.bottom };
/** Series with more points are drawn as a line only, and summarized in words instead of a table. */
const MARKED_POINTS = 62;
const COLORS = ['#2b5fd9', '#b3261e', '#1e7b34', '#8a4baf'];
const AXIS = '#5f6368';
const GRID = '#d9dce1';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_MS = 86_400_000;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The `count` UTC days ending with `end`'s, oldest first: `YYYY-MM-DD`. */
export function utcDays(end: Date, count: number): string[] {
  const last = Math.floor(end.getTime() / DAY_MS);
  return Array.from({ length: count }, (_, i) => new Date((last - count + 1 + i) * DAY_MS).toISOString().slice(0, 10));
}

/** "2026-11-03" → "Nov 3". */
function shortDay(day: string): string {
  return `${MONTHS[Number(day.slice(5, 7)) - 1]} ${Number(day.slice(8, 10))}`;
}

// Not Math.min(...values): a long series would overflow the call stack.
const smallest = (values: number[]) => values.reduce((a, b) => (b < a ? b : a));
const largest = (values: number[]) => values.reduce((a, b) => (b > a ? b : a));
const dayNumber = (day: string) => Date.parse(`${day}T00:00:00Z`) / DAY_MS;
const px = (n: number) => (Math.round(n * 10) / 10).toFixed(1);
const safeId = (id: string) => id.replace(/[^A-Za-z0-9_-]/g, '-');

/** A value as people read it: "1,234.56 USD", or a number to `digits` decimals. */
export function formatValue(value: Value, format: ValueFormat): string {
  if (format.kind === 'money') return formatMoney(BigInt(value), format.currency);
  return Number(value).toFixed(format.digits ?? 3);
}

// ---- ticks: 1, 2 or 5 × a power of ten, about five of them over the range ----

interface Axis {
  /** Where a value lies, from 0 (the axis' start) to 1 (its end). */
  at(value: Value): number;
  ticks: Array<{ value: Value; label: string }>;
}

function niceNumberStep(span: number, intervals: number): number {
  const raw = span / intervals;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((step) => step >= raw * (1 - 1e-9))!;
}

function decimalsOf(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** A number axis over [min, max]; `snap` widens it to whole ticks (values), otherwise ticks fall inside it. */
function numberAxis(min: number, max: number, snap: boolean, integers = false): Axis {
  let lo = min;
  let hi = max;
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) / 10;
    lo -= snap ? pad : 0;
    hi += pad;
  }
  let step = niceNumberStep(hi - lo, 5);
  if (integers) step = Math.max(1, Math.round(step));
  if (snap) {
    lo = Math.floor(lo / step + 1e-9) * step;
    hi = Math.ceil(hi / step - 1e-9) * step;
  }
  const digits = decimalsOf(step);
  const ticks: Axis['ticks'] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++)
    ticks.push({ value: i * step, label: (i * step).toFixed(digits) });
  return { at: (value) => (Number(value) - lo) / (hi - lo), ticks };
}

/** A money axis from zero (or below, for negative values) to a whole tick above the largest value, in minor units. */
function moneyAxis(values: bigint[], currency: string): Axis {
  let lo = values.reduce((a, b) => (b < a ? b : a), 0n);
  let hi = values.reduce((a, b) => (b > a ? b : a), 0n);
  if (hi === lo) hi = lo + 10n ** BigInt(currencyExponent(currency)); // nothing moved: one whole unit
  const raw = (hi - lo + 4n) / 5n;
  const magnitude = 10n ** BigInt(raw.toString().length - 1);
  const step = [1n, 2n, 5n, 10n].map((m) => m * magnitude).find((s) => s >= raw)!;
  lo = lo < 0n ? -((-lo + step - 1n) / step) * step : (lo / step) * step;
  hi = ((hi + step - 1n) / step) * step;
  const ticks: Axis['ticks'] = [];
  for (let t = lo; t <= hi; t += step) ticks.push({ value: t, label: formatAmount(t, currency) });
  const span = Number(hi - lo);
  return { at: (value) => Number(BigInt(value) - lo) / span, ticks };
}

/** Days from the first to the last, labelled every few days ending with the last (today, on the console). */
function dayAxis(days: string[]): Axis {
  const first = dayNumber(days[0]!);
  const last = dayNumber(days[days.length - 1]!);
  const every = Math.max(1, Math.ceil(days.length / 6));
  const ticks = days
    .filter((_, i) => (days.length - 1 - i) % every === 0)
    .map((day) => ({ value: dayNumber(day), label: shortDay(day) }));
  return { at: (value) => (last === first ? 0.5 : (Number(value) - first) / (last - first)), ticks };
}

// ---- the line chart ----

/** A line chart of one or more series, with axes, grid lines, tick labels and the numbers as text. */
export function lineChart(spec: LineChartSpec): SafeHtml {
  const id = `chart-${safeId(spec.id)}`;
  const series = spec.series.map((s) => ({
    ...s,
    points: s.points.filter(
      (p) =>
        (spec.x.kind === 'day' ? typeof p.x === 'string' && DAY.test(p.x) : Number.isFinite(Number(p.x))) &&
        (typeof p.y === 'bigint' || Number.isFinite(p.y)),
    ),
  }));
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return emptyFigure(id, spec.title, spec.empty);

  const xOf = (p: LinePoint) => (spec.x.kind === 'day' ? dayNumber(String(p.x)) : Number(p.x));
  const xs = all.map(xOf);
  const xAxis =
    spec.x.kind === 'day'
      ? dayAxis([...new Set(all.map((p) => String(p.x)))].sort())
      : numberAxis(smallest(xs), largest(xs), false, xs.every(Number.isInteger));
  const format = spec.y.format;
  const yAxis =
    format.kind === 'money'
      ? moneyAxis(
          all.map((p) => BigInt(p.y)),
          format.currency,
        )
      : numberAxis(smallest(all.map((p) => Number(p.y))), largest(all.map((p) => Number(p.y))), true);
  const left = (value: Value) => MARGIN.left + xAxis.at(value) * PLOT.width;
  const top = (value: Value) => MARGIN.top + (1 - yAxis.at(value)) * PLOT.height;
  const xText = (p: LinePoint) => (spec.x.kind === 'day' ? String(p.x) : `${spec.x.label} ${String(p.x)}`);

  const lines = series.map((s, index) => {
    const color = COLORS[index % COLORS.length]!;
    const coordinates = s.points.map((p) => `${px(left(xOf(p)))},${px(top(p.y))}`);
    const markers =
      s.points.length <= MARKED_POINTS
        ? s.points.map(
            (p, i) =>
              html`<circle class="point" cx="${px(left(xOf(p)))}" cy="${px(top(p.y))}" r="3" fill="${color}" data-x="${String(p.x)}" data-y="${String(p.y)}"><title>${s.name}, ${xText(p)}: ${formatValue(p.y, format)}</title></circle>${i % 10 === 9 ? '\n' : ''}`,
          )
        : '';
    return html`<g class="series" data-series="${s.name}" data-points="${s.points.length}">
<polyline points="${coordinates.join(' ')}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>
${markers}</g>`;
  });

  const xLabel = spec.x.kind === 'day' ? 'Day (UTC)' : spec.x.label;
  const yLabel = format.kind === 'money' ? `${spec.y.label} (${format.currency.toUpperCase()})` : spec.y.label;
  const bottom = MARGIN.top + PLOT.height;
  const axes = html`<g class="axis y-axis" font-size="11" fill="currentColor">
${yAxis.ticks.map(
  (t) =>
    html`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${px(top(t.value))}" y2="${px(top(t.value))}" stroke="${GRID}"/><text class="tick" x="${MARGIN.left - 6}" y="${px(top(t.value) + 4)}" text-anchor="end">${t.label}</text>\n`,
)}<text class="axis-label" transform="translate(14 ${px(MARGIN.top + PLOT.height / 2)}) rotate(-90)" text-anchor="middle">${yLabel}</text>
</g>
<g class="axis x-axis" font-size="11" fill="currentColor">
<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${bottom}" y2="${bottom}" stroke="${AXIS}"/>
${xAxis.ticks.map(
  (t) =>
    html`<line x1="${px(left(t.value))}" x2="${px(left(t.value))}" y1="${bottom}" y2="${bottom + 5}" stroke="${AXIS}"/><text class="tick" x="${px(left(t.value))}" y="${bottom + 18}" text-anchor="middle">${t.label}</text>\n`,
)}<text class="axis-label" x="${px(MARGIN.left + PLOT.width / 2)}" y="${HEIGHT - 6}" text-anchor="middle">${xLabel}</text>
</g>`;
  const legend =
    series.length > 1
      ? html`<g class="legend" font-size="11" fill="currentColor">${series.map(
          (s, i) =>
            html`<rect x="${MARGIN.left + 8 + i * 130}" y="4" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${MARGIN.left + 22 + i * 130}" y="13">${s.name}</text>`,
        )}</g>`
      : '';

  const summaries = series.map((s) => seriesSummary(s, format, xText));
  return figure(
    id,
    spec.title,
    `${spec.description} ${summaries.join(' ')}`,
    html`${axes}\n${lines}\n${legend}`,
    HEIGHT,
    lineData(series, spec, summaries),
  );
}

/** One sentence about a series: how many points, from where to where, first, last, lowest and highest. */
function seriesSummary(s: LineSeries, format: ValueFormat, xText: (p: LinePoint) => string): string {
  if (s.points.length === 0) return `${s.name}: no points.`;
  const first = s.points[0]!;
  const last = s.points[s.points.length - 1]!;
  const lowest = s.points.reduce((a, b) => (b.y < a.y ? b : a));
  const highest = s.points.reduce((a, b) => (b.y > a.y ? b : a));
  const count = `${s.points.length} ${s.points.length === 1 ? 'point' : 'points'}`;
  return (
    `${s.name}: ${count} from ${xText(first)} to ${xText(last)}; first ${formatValue(first.y, format)}, ` +
    `last ${formatValue(last.y, format)}, lowest ${formatValue(lowest.y, format)} (${xText(lowest)}), ` +
    `highest ${formatValue(highest.y, format)} (${xText(highest)}).`
  );
}

/** The numbers as a table (a row per x, a column per series), or in words when a series is long. */
function lineData(series: LineSeries[], spec: LineChartSpec, summaries: string[]): SafeHtml {
  if (series.some((s) => s.points.length > MARKED_POINTS))
    return html`<p class="chart-summary">${summaries.join(' ')}</p>`;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) =>
    typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : 1,
  );
  const xLabel = spec.x.kind === 'day' ? 'Day (UTC)' : spec.x.label;
  return html`<details class="chart-data"><summary>The numbers</summary>
<table><tr><th>${xLabel}</th>${series.map((s) => html`<th class="num">${s.name}</th>`)}</tr>
${xs.map(
  (x) =>
    html`<tr><td>${String(x)}</td>${series.map((s) => {
      const point = s.points.find((p) => p.x === x);
      return html`<td class="num">${point ? formatValue(point.y, spec.y.format) : ''}</td>`;
    })}</tr>\n`,
)}</table></details>`;
}

// ---- the bar chart ----

const BAR = { row: 26, label: 170, value: 120 };

/** Horizontal bars from zero, one per label, with its value beside it and the numbers as a table. */
export function barChart(spec: BarChartSpec): SafeHtml {
  const id = `chart-${safeId(spec.id)}`;
  if (spec.bars.length === 0) return emptyFigure(id, spec.title, spec.empty);
  const width = WIDTH - BAR.label - BAR.value;
  const height = MARGIN.top + spec.bars.length * BAR.row + 8;
  const values = spec.bars.map((b) => b.value);
  const peak =
    spec.format.kind === 'money'
      ? Number(values.map(BigInt).reduce((a, b) => (b > a ? b : a), 0n))
      : largest([0, ...values.map(Number)]);
  const share = (value: Value) => (peak > 0 ? Math.max(0, Number(value)) / peak : 0);
  const label = (text: string) => (text.length > 24 ? `${text.slice(0, 23)}…` : text);
  const rows = spec.bars.map((bar, i) => {
    const y = MARGIN.top + i * BAR.row;
    const value = formatValue(bar.value, spec.format);
    return html`<g class="bar-row"><text x="${BAR.label - 8}" y="${y + 15}" text-anchor="end">${label(bar.label)}</text><rect class="bar" x="${BAR.label}" y="${y + 3}" width="${px(Math.max(1, share(bar.value) * width))}" height="${BAR.row - 8}" fill="${COLORS[0]}" data-label="${bar.label}" data-value="${String(bar.value)}"><title>${bar.label}: ${value}</title></rect><text class="value" x="${px(BAR.label + Math.max(1, share(bar.value) * width) + 6)}" y="${y + 15}">${value}</text></g>\n`;
  });
  const table = html`<details class="chart-data"><summary>The numbers</summary>
<table>${spec.bars.map((b) => html`<tr><th>${b.label}</th><td class="num">${formatValue(b.value, spec.format)}</td></tr>`)}</table></details>`;
  const words = spec.bars.map((b) => `${b.label}: ${formatValue(b.value, spec.format)}.`).join(' ');
  return figure(
    id,
    spec.title,
    `${spec.description} ${words}`,
    html`<g font-size="12" fill="currentColor">\n${rows}</g>`,
    height,
    table,
  );
}

// ---- the frame ----

function figure(id: string, title: string, description: string, body: SafeHtml, height: number, data: Renderable) {
  return html`<figure class="chart" id="${id}">
<figcaption>${title}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" aria-labelledby="${id}-title ${id}-desc">
<title id="${id}-title">${title}</title>
<desc id="${id}-desc">${description}</desc>
${body}
</svg>
${data}
</figure>`;
}

function emptyFigure(id: string, title: string, empty: string): SafeHtml {
  return html`<figure class="chart chart-empty" id="${id}">
<figcaption>${title}</figcaption>
<p class="muted">${empty}</p>
</figure>`;
}
