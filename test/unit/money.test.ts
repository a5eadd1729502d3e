import { formatAmount, formatMoney, parseAmount, toMinor } from '../../workflows/money';

describe('parseAmount: what an operator types becomes exact minor units', () => {
  test.each([
    ['12.5', 1250n],
    ['12.50', 1250n],
    ['12', 1200n],
    ['0.01', 1n],
    ['1,000.00', 100000n],
    ['1,234,567.89', 123456789n],
    [' 100.00 ', 10000n],
    ['90071992547409.93', 9007199254740993n], // beyond float precision, still exact
  ])('%s USD is %s cents', (text, minor) => {
    expect(parseAmount(text, 'usd')).toBe(minor);
  });

  test.each([
    ['-5', /negative/],
    ['-0.01', /negative/],
    ['0', /zero/],
    ['0.00', /zero/],
    ['NaN', /not a number/],
    ['abc', /not a number/],
    ['', /not a number/],
    ['1.234', /3 decimals; USD has at most 2/],
    ['1,00.00', /not a number/],
    ['1e3', /not a number/],
    ['12.', /not a number/],
    ['.5', /not a number/],
  ])('"%s" is refused', (text, message) => {
    expect(() => parseAmount(text, 'usd')).toThrow(message);
  });

  test('currencies without minor units take whole amounts only', () => {
    expect(parseAmount('1,500', 'jpy')).toBe(1500n);
    expect(() => parseAmount('1.5', 'jpy')).toThrow('JPY has at most 0');
  });

  test('an unknown currency is refused, naming the known ones', () => {
    expect(() => parseAmount('1', 'xyz')).toThrow(/unsupported currency "xyz": use one of usd, eur/);
  });
});

describe('formatting minor units for people', () => {
  test.each([
    [0n, '0.00'],
    [5n, '0.05'],
    [123456n, '1,234.56'],
    [-250n, '-2.50'],
    [100000000n, '1,000,000.00'],
  ])('%s cents read %s', (minor, text) => {
    expect(formatAmount(minor, 'usd')).toBe(text);
  });

  test('format and parse round-trip', () => {
    for (const minor of [1n, 99n, 100n, 1001n, 123456789n]) expect(parseAmount(formatAmount(minor, 'usd'), 'usd')).toBe(minor);
  });

  test('money carries its currency', () => {
    expect(formatMoney('1500', 'eur')).toBe('15.00 EUR');
    expect(formatMoney(1500n, 'jpy')).toBe('1,500 JPY');
  });
});

describe('toMinor: wire amounts are whole-number strings', () => {
  test('accepts digits only', () => expect(toMinor('1250', 'amount')).toBe(1250n));
  test.each([[12.5], [1250], ['-1'], ['01'], ['1.0'], [null], ['']])('%p is refused, naming the field', (value) => {
    expect(() => toMinor(value, 'amount')).toThrow(/^amount must be a whole number of minor units/);
  });
});
