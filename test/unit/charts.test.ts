// The server-drawn SVG charts: axes and their labels, one point per day over 30 days (quiet days
// included), money from integer minor units, escaping of every label, and what an empty chart says.
import { barChart, lineChart, type LineChartSpec, utcDays } from '../../platform/charts';
import { LossPointBuffer, lossPointKept } from '../../db/training-loss';

const USD = { kind: 'money', currency: 'usd' } as const;

/** Every match of a pattern's first group. */
const all = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1]!);

function balanceChart(overrides: Partial<LineChartSpec> = {}): string {
  const days = utcDays(new Date('2026-12-01T23:59:59Z'), 30);
  // Money moved on three days only; the others keep the balance and spend nothing.
  const moves: Record<string, bigint> = { '2026-11-02': 10_000n, '2026-11-15': -2_500n, '2026-12-01': -1_250n };
  let balance = 0n;
  return lineChart({
    id: 'balance',
    title: 'Balance at the end of each day',
    description: 'The germline’s funds.',
    x: { kind: 'day' },
    y: { label: 'Balance', format: USD },
    series: [{ name: 'Balance', points: days.map((day) => ({ x: day, y: (balance += moves[day] ?? 0n) })) }],
    empty: 'Nothing booked yet.',
    ...overrides,
  }).value;
}

test('utcDays: the 30 UTC days ending with today, oldest first, across a month', () => {
  const days = utcDays(new Date('2026-12-01T00:30:00Z'), 30);
  expect(days).toHaveLength(30);
  expect(days[0]).toBe('2026-11-02');
  expect(days.at(-1)).toBe('2026-12-01');
  expect(new Set(days).size).toBe(30);
  expect(utcDays(new Date('2026-03-01T12:00:00Z'), 2)).toEqual(['2026-02-28', '2026-03-01']);
});

test('a line over 30 days has one point per day, quiet days included, with its day and amount', () => {
  const svg = balanceChart();
  expect(svg).toContain('data-points="30"');
  const days = all(svg, /<circle class="point"[^>]* data-x="([^"]+)"/g);
  expect(days).toEqual(utcDays(new Date('2026-12-01T12:00:00Z'), 30));
  const amounts = all(svg, /<circle class="point"[^>]* data-y="([^"]+)"/g);
  expect(amounts.slice(0, 13)).toEqual(Array(13).fill('10000'));
  expect(amounts[13]).toBe('7500');
  expect(amounts.at(-1)).toBe('6250');
  // The polyline has the same 30 vertices.
  const polyline = /<polyline points="([^"]+)"/.exec(svg)![1]!;
  expect(polyline.split(' ')).toHaveLength(30);
  // Each point tells its day and amount as money when pointed at.
  expect(svg).toContain('<title>Balance, 2026-11-15: 75.00 USD</title>');
  expect(svg).toContain('<title>Balance, 2026-11-20: 75.00 USD</title>');
});

test('axes: money ticks in the currency from zero past the largest amount, dates along x ending today', () => {
  const svg = balanceChart();
  const yTicks = all(svg, /class="tick" x="78"[^>]*>([^<]+)</g);
  expect(yTicks).toEqual(['0.00', '20.00', '40.00', '60.00', '80.00', '100.00']);
  expect(svg).toContain('>Balance (USD)</text>');
  const xTicks = all(svg, /class="tick" x="[\d.]+" y="234"[^>]*>([^<]+)</g);
  expect(xTicks.at(-1)).toBe('Dec 1');
  expect(xTicks).toEqual(['Nov 6', 'Nov 11', 'Nov 16', 'Nov 21', 'Nov 26', 'Dec 1']);
  expect(svg).toContain('>Day (UTC)</text>');
  // The largest amount touches the top tick's line, zero the axis.
  const first = /<circle class="point" cx="([\d.]+)" cy="([\d.]+)"/.exec(svg)!;
  expect(first.slice(1)).toEqual(['84.0', '16.0']);
});

test('a chart has a title and a description (with its numbers in words) for screen readers, and a table', () => {
  const svg = balanceChart();
  expect(svg).toContain('role="img"');
  expect(svg).toContain('aria-labelledby="chart-balance-title chart-balance-desc"');
  expect(svg).toContain('<title id="chart-balance-title">Balance at the end of each day</title>');
  expect(svg).toMatch(
    /<desc id="chart-balance-desc">The germline’s funds\. Balance: 30 points from 2026-11-02 to 2026-12-01; first 100\.00 USD, last 62\.50 USD, lowest 62\.50 USD \(2026-12-01\), highest 100\.00 USD \(2026-11-02\)\.<\/desc>/,
  );
  const rows = all(svg, /<tr><td>(\d{4}-\d{2}-\d{2})<\/td>/g);
  expect(rows).toHaveLength(30);
  expect(svg).toContain('<tr><td>2026-11-15</td><td class="num">75.00 USD</td></tr>');
});

test('money stays exact to the largest amount a budget may hold', () => {
  const svg = lineChart({
    id: 'big',
    title: 'Big',
    description: '',
    x: { kind: 'day' },
    y: { label: 'Balance', format: USD },
    series: [
      {
        name: 'Balance',
        points: [
          { x: '2026-11-30', y: 999_999_999_999_999n },
          { x: '2026-12-01', y: 10n ** 15n },
        ],
      },
    ],
    empty: '',
  }).value;
  expect(svg).toContain('data-y="999999999999999"');
  expect(svg).toContain('9,999,999,999,999.99 USD');
  expect(svg).toContain('>10,000,000,000,000.00</text>');
});

test('every label is escaped: titles, series, bars and descriptions stay text', () => {
  const hostile = `<script>alert("x")</script> & 'quoted'`;
  const line = balanceChart({ title: hostile, description: hostile, id: 'a b"c' });
  const bars = barChart({
    id: 'spend',
    title: hostile,
    description: hostile,
    format: USD,
    bars: [{ label: hostile, value: 100n }],
    empty: '',
  }).value;
  for (const svg of [line, bars]) {
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain(`"x"`);
    expect(svg).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;');
  }
  expect(line).toContain('id="chart-a-b-c"');
  expect(line).toContain('aria-labelledby="chart-a-b-c-title chart-a-b-c-desc"');
});

test('without data a chart says so instead of drawing empty axes', () => {
  const line = balanceChart({ series: [], empty: 'The journal books nothing yet.' });
  expect(line).not.toContain('<svg');
  expect(line).toContain('<p class="muted">The journal books nothing yet.</p>');
  expect(line).toContain('<figcaption>Balance at the end of each day</figcaption>');
  const noPoints = balanceChart({ series: [{ name: 'Balance', points: [] }], empty: 'Nothing.' });
  expect(noPoints).not.toContain('<svg');
  const bars = barChart({ id: 'b', title: 'Spent', description: '', format: USD, bars: [], empty: 'Spent nothing.' });
  expect(bars.value).toContain('<p class="muted">Spent nothing.</p>');
  expect(bars.value).not.toContain('<svg');
});

test('the same data draws the same markup', () => {
  expect(balanceChart()).toBe(balanceChart());
});

test('a number chart: steps along x, loss ticks with decimals, a long series summarized in words', () => {
  const points = Array.from({ length: 200 }, (_, i) => ({ x: (i + 1) * 5, y: 2 + 1 / (i + 1) }));
  const svg = lineChart({
    id: 'loss-r1',
    title: 'Loss of run r1',
    description: 'Loss by step.',
    x: { kind: 'number', label: 'Step' },
    y: { label: 'Loss', format: { kind: 'number', digits: 4 } },
    series: [{ name: 'Loss', points }],
    empty: '',
  }).value;
  expect(svg).toContain('data-points="200"');
  expect(/<polyline points="([^"]+)"/.exec(svg)![1]!.split(' ')).toHaveLength(200);
  expect(svg).not.toContain('<circle'); // too many to mark one by one
  expect(all(svg, /class="tick" x="78"[^>]*>([^<]+)</g)).toEqual(['2.0', '2.2', '2.4', '2.6', '2.8', '3.0']);
  expect(all(svg, /class="tick" x="[\d.]+" y="234"[^>]*>([^<]+)</g)).toEqual(['200', '400', '600', '800', '1000']);
  expect(svg).toContain(
    '<p class="chart-summary">Loss: 200 points from Step 5 to Step 1000; first 3.0000, last 2.0050, lowest 2.0050 (Step 1000), highest 3.0000 (Step 5).</p>',
  );
});

test('bars: one per label, lengths in proportion to the amounts, amounts as money', () => {
  const svg = barChart({
    id: 'spend',
    title: 'Spent by purpose',
    description: '',
    format: USD,
    bars: [
      { label: 'Training runs', value: 4_000n },
      { label: 'Instances', value: 1_000n },
    ],
    empty: '',
  }).value;
  const widths = all(svg, /<rect class="bar"[^>]* width="([\d.]+)"/g).map(Number);
  expect(widths).toEqual([350, 87.5]);
  expect(all(svg, /<text class="value"[^>]*>([^<]+)</g)).toEqual(['40.00 USD', '10.00 USD']);
  expect(svg).toContain('<tr><th>Instances</th><td class="num">10.00 USD</td></tr>');
});

test('loss points: every step of a short run, ever sparser in a long one, a step once, no NaN', () => {
  const buffer = new LossPointBuffer();
  for (let step = 1; step <= 256; step++) buffer.offer({ step, loss: 1 / step });
  buffer.offer({ step: 256, loss: 9 });
  buffer.offer({ step: 257, loss: Number.NaN });
  buffer.offer({ gpuSeconds: 1 } as { step?: number; loss?: number });
  const short = buffer.take();
  expect(short.map((p) => p.step)).toEqual(Array.from({ length: 256 }, (_, i) => i + 1));
  expect(short.at(-1)).toEqual({ step: 256, loss: 1 / 256 });
  expect(buffer.take()).toEqual([]);
  // A failed write puts its points back before those reported since.
  buffer.offer({ step: 300, loss: 0.5 });
  const failed = buffer.take();
  buffer.offer({ step: 400, loss: 0.4 });
  buffer.putBack(failed);
  expect(buffer.take().map((p) => p.step)).toEqual([300, 400]);

  let kept = 0;
  let last: number | undefined;
  for (let step = 1; step <= 1_000_000; step++)
    if (lossPointKept(step, last)) {
      kept++;
      last = step;
    }
  expect(kept).toBeGreaterThan(1_000);
  expect(kept).toBeLessThan(3_000);
  // A resumed attempt reporting earlier steps again is kept (the database keeps each step once).
  expect(lossPointKept(100, 5_000)).toBe(true);
});

test('a lone point is drawn and marked; values that are not numbers are left out', () => {
  const svg = lineChart({
    id: 'lone',
    title: 'Loss',
    description: '',
    x: { kind: 'number', label: 'Step' },
    y: { label: 'Loss', format: { kind: 'number', digits: 2 } },
    series: [
      {
        name: 'Loss',
        points: [
          { x: 10, y: 1.5 },
          { x: 20, y: Number.NaN },
          { x: Number.POSITIVE_INFINITY, y: 1 },
        ],
      },
    ],
    empty: '',
  }).value;
  expect(svg).toContain('data-points="1"');
  expect(all(svg, /<circle class="point"[^>]* data-x="([^"]+)"/g)).toEqual(['10']);
  expect(svg).toContain('<title>Loss, Step 10: 1.50</title>');
  expect(svg).not.toContain('NaN');
});

test('bars of plain numbers', () => {
  const svg = barChart({
    id: 'calls',
    title: 'Calls',
    description: '',
    format: { kind: 'number', digits: 0 },
    bars: [
      { label: 'a', value: 10 },
      { label: 'b', value: 5 },
    ],
    empty: '',
  }).value;
  expect(all(svg, /<rect class="bar"[^>]* width="([\d.]+)"/g).map(Number)).toEqual([350, 175]);
  expect(all(svg, /<text class="value"[^>]*>([^<]+)</g)).toEqual(['10', '5']);
});
