// Money is integer minor units (cents) as bigint in memory and as decimal strings on the wire,
// because JSON has no bigint and floats cannot hold money exactly. Pure: used by workflows and CLI.

/** A decimal string of integer minor units, e.g. "1250" for 12.50 USD. */
export type MinorUnits = string;

const MINOR_UNITS = /^(0|[1-9]\d*)$/;

/** Minor-unit digits of the currencies we accept; anything else is refused rather than guessed. */
const CURRENCY_EXPONENTS: Record<string, number> = {
  usd: 2,
  eur: 2,
  gbp: 2,
  chf: 2,
  cad: 2,
  aud: 2,
  jpy: 0,
};

export class MoneyError extends Error {
  override name = 'MoneyError';
}

export function currencyExponent(currency: string): number {
  const exponent = CURRENCY_EXPONENTS[currency.toLowerCase()];
  if (exponent === undefined) {
    throw new MoneyError(
      `unsupported currency "${currency}": use one of ${Object.keys(CURRENCY_EXPONENTS).join(', ')}`,
    );
  }
  return exponent;
}

export function isCurrency(currency: string): boolean {
  return CURRENCY_EXPONENTS[currency.toLowerCase()] !== undefined;
}

/** Parses wire minor units ("1250"); throws naming the field when it is not a non-negative integer. */
export function toMinor(value: unknown, field: string): bigint {
  if (typeof value !== 'string' || !MINOR_UNITS.test(value)) {
    throw new MoneyError(
      `${field} must be a whole number of minor units as a string, like "1250" for 12.50; got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(value);
}

const GROUPED = /^\d{1,3}(,\d{3})+(\.\d+)?$/;
const PLAIN = /^\d+(\.\d+)?$/;

/**
 * Parses an amount a person typed ("12.5", "12.50", "1,000.00") into minor units, exactly.
 * Refuses zero, negatives, NaN, malformed grouping and more decimals than the currency has.
 */
export function parseAmount(text: string, currency: string): bigint {
  const exponent = currencyExponent(currency);
  const trimmed = text.trim();
  if (trimmed.startsWith('-')) throw new MoneyError(`amount "${text}" is negative: give a positive amount`);
  if (!PLAIN.test(trimmed) && !GROUPED.test(trimmed)) {
    throw new MoneyError(`amount "${text}" is not a number: write it like 12.50 or 1,000.00`);
  }
  const [whole = '', fraction = ''] = trimmed.replace(/,/g, '').split('.');
  if (fraction.length > exponent) {
    throw new MoneyError(
      `amount "${text}" has ${fraction.length} decimals; ${currency.toUpperCase()} has at most ${exponent}`,
    );
  }
  const minor = BigInt(whole + fraction.padEnd(exponent, '0'));
  if (minor === 0n) throw new MoneyError(`amount "${text}" is zero: give a positive amount`);
  return minor;
}

/** Formats minor units for people: 123456n USD → "1,234.56". */
export function formatAmount(minor: bigint | MinorUnits, currency: string): string {
  const exponent = currencyExponent(currency);
  const value = typeof minor === 'bigint' ? minor : BigInt(minor);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = exponent > 0 ? '.' + digits.slice(digits.length - exponent) : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

/** Formats with the currency code: "1,234.56 USD". */
export function formatMoney(minor: bigint | MinorUnits, currency: string): string {
  return `${formatAmount(minor, currency)} ${currency.toUpperCase()}`;
}
