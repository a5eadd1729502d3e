import { gpuSecondsForCost, trainingCost } from '../../workflows/training-cost';
import { parseDuration } from '../../cli/common';

describe('trainingCost: GPU-seconds at a rate per GPU-hour, in whole minor units', () => {
  test.each([
    [0, 240n, 10_000n, 0n],
    [3600, 240n, 10_000n, 240n], // one GPU-hour at 2.40
    [1, 240n, 10_000n, 1n], // 0.0667 cents is rounded up to a whole cent
    [15, 240n, 10_000n, 1n], // exactly one cent
    [16, 240n, 10_000n, 2n],
    [7200, 240n, 300n, 300n], // never above the run's cap
  ])('%i GPU-seconds at %i per hour, cap %i: %i', (seconds, rate, cap, expected) => {
    expect(trainingCost(seconds, rate, cap)).toBe(expected);
  });

  test('exact for amounts far beyond floating point', () => {
    expect(trainingCost(9_007_199_254_740_991, 3600n, 10n ** 30n)).toBe(9_007_199_254_740_991n);
  });

  test('refuses fractional or negative usage', () => {
    expect(() => trainingCost(1.5, 240n, 100n)).toThrow('whole number');
    expect(() => trainingCost(-1, 240n, 100n)).toThrow('whole number');
  });

  test('the cap in GPU-seconds is the most usage the cap pays for', () => {
    for (const [cap, rate] of [
      [30n, 36_000n],
      [1250n, 240n],
      [1n, 7n],
      [999n, 3601n],
    ] as const) {
      const seconds = gpuSecondsForCost(cap, rate);
      expect(trainingCost(seconds, rate, 10n ** 9n)).toBeLessThanOrEqual(cap);
      expect(trainingCost(seconds + 1, rate, 10n ** 9n)).toBeGreaterThan(cap);
    }
    expect(() => gpuSecondsForCost(100n, 0n)).toThrow('above zero');
  });
});

describe('parseDuration', () => {
  test.each([
    ['90s', 90],
    ['90m', 5400],
    ['2h', 7200],
    ['1.5h', 5400],
    ['1d', 86_400],
  ])('%s is %i seconds', (text, seconds) => expect(parseDuration(text)).toBe(seconds));

  test.each(['forever', '10', '-1h', '0s', 'h'])('%s is refused with an example', (text) => {
    expect(() => parseDuration(text)).toThrow(/write it like 90m, 2h or 1d|shorter than a second/);
  });
});
