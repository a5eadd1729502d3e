import {
  AboveMaximumError,
  assertAtMostMaximum,
  formatAmount,
  formatMaximum,
  formatMoney,
  MAX_MINOR_UNITS,
  minorUnitsProblem,
  parseAmount,
  toMinor,
} from '../../workflows/money';

describe('parseAmount: what an operator types becomes exact minor units', () => {
  test.each([
    ['12.5', 1250n],
    ['12.50', 1250n],
    ['12', 1200n],
    ['0.01', 1n],
    ['1,000.00', 100000n],
    ['1,234,567.89', 123456789n],
    [' 100.00 ', 10000n],
    ['9,999,999,999,999.99', 999999999999999n], // near the maximum, still exact
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
    for (const minor of [1n, 99n, 100n, 1001n, 123456789n])
      expect(parseAmount(formatAmount(minor, 'usd'), 'usd')).toBe(minor);
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

describe('the most one amount may be', () => {
  test('fits PostgreSQL BIGINT and JavaScript numbers, with room for sums of a few', () => {
    expect(MAX_MINOR_UNITS).toBe(1_000_000_000_000_000n);
    expect(MAX_MINOR_UNITS * 9n).toBeLessThanOrEqual(BigInt(Number.MAX_SAFE_INTEGER));
    expect(MAX_MINOR_UNITS * 9000n).toBeLessThanOrEqual(2n ** 63n - 1n);
    expect(Number(MAX_MINOR_UNITS).toString()).toBe(MAX_MINOR_UNITS.toString());
  });

  test('is named for people in the currency, or in minor units where none is known', () => {
    expect(formatMaximum('usd')).toBe('10,000,000,000,000.00 USD');
    expect(formatMaximum('jpy')).toBe('1,000,000,000,000,000 JPY');
    expect(formatMaximum()).toBe('1,000,000,000,000,000 minor units');
    expect(formatMaximum('usd', { inMinorUnits: true })).toBe(
      '1,000,000,000,000,000 minor units, 10,000,000,000,000.00 USD',
    );
  });

  test('parseAmount takes the maximum exactly and refuses one cent more, naming the limit', () => {
    expect(parseAmount('10,000,000,000,000.00', 'usd')).toBe(MAX_MINOR_UNITS);
    expect(parseAmount('9999999999999.99', 'usd')).toBe(MAX_MINOR_UNITS - 1n);
    expect(() => parseAmount('10000000000000.01', 'usd')).toThrow(
      'amount "10000000000000.01" is above the most one amount may be (10,000,000,000,000.00 USD)',
    );
    expect(() => parseAmount('100000000000000000.00', 'usd')).toThrow(
      'amount "100000000000000000.00" is above the most one amount may be (10,000,000,000,000.00 USD)',
    );
    expect(() => parseAmount('1000000000000001', 'jpy')).toThrow(AboveMaximumError);
  });

  test('toMinor takes the maximum and refuses one more, in minor units and money', () => {
    expect(toMinor('1000000000000000', 'amount')).toBe(MAX_MINOR_UNITS);
    expect(() => toMinor('1000000000000001', 'amount', 'usd')).toThrow(
      'amount "1000000000000001" is above the most one amount may be (1,000,000,000,000,000 minor units, 10,000,000,000,000.00 USD)',
    );
    expect(() => toMinor('100000000000000000000', 'actual')).toThrow(
      /^actual "100000000000000000000" is above the most one amount may be \(1,000,000,000,000,000 minor units\)$/,
    );
  });

  test.each([
    ['a megabyte of digits', '9'.repeat(1_000_000)],
    ['digits with a valid form past the length limit', '1'.repeat(41)],
    ['padding around a small amount', `${' '.repeat(40)}1.00`],
  ])('text too long to be an amount is refused before parsing, without echoing it: %s', (_name, text) => {
    for (const parse of [() => parseAmount(text, 'usd'), () => toMinor(text, 'amount', 'usd')]) {
      let message = '';
      try {
        parse();
      } catch (error) {
        expect(error).toBeInstanceOf(AboveMaximumError);
        message = (error as Error).message;
      }
      expect(message).toMatch(/is too long to be an amount: at most 40 characters and 10,000,000,000,000.00 USD$/);
      expect(message).toContain(`(${text.length} characters)`);
      expect(message.length).toBeLessThan(200);
    }
  });

  test('a megabyte of digits is refused before BigInt parses it (which alone takes ~0.2 s)', () => {
    const text = '9'.repeat(1_000_000);
    const started = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) expect(() => parseAmount(text, 'usd')).toThrow(AboveMaximumError);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(1000);
  });

  test('a total is held to the same maximum: at it, accepted; past it, refused naming it', () => {
    expect(assertAtMostMaximum(MAX_MINOR_UNITS, 'the total')).toBe(MAX_MINOR_UNITS);
    expect(() => assertAtMostMaximum(MAX_MINOR_UNITS + 1n, 'the total deposited', 'eur')).toThrow(
      'the total deposited is above the most one amount may be (10,000,000,000,000.00 EUR)',
    );
  });

  test("minorUnitsProblem: the maximum in its own words, anything malformed in the caller's", () => {
    const malformed = 'give whole minor units';
    expect(minorUnitsProblem('1000000000000000', 'cap', malformed)).toBeUndefined();
    expect(minorUnitsProblem('0', 'cap', malformed)).toBeUndefined();
    expect(minorUnitsProblem('0', 'cap', malformed, { positive: true })).toBe(malformed);
    expect(minorUnitsProblem('12.5', 'cap', malformed)).toBe(malformed);
    expect(minorUnitsProblem(12, 'cap', malformed)).toBe(malformed);
    expect(minorUnitsProblem('1000000000000001', 'cap', malformed, { currency: 'usd' })).toMatch(
      /^cap "1000000000000001" is above the most one amount may be \(.*10,000,000,000,000.00 USD\)$/,
    );
  });
});
