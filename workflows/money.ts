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

// 10^15 (10 trillion USD): 9x under Number.MAX_SAFE_INTEGER and ~9,000x under BIGINT, so totals stay exact as JS numbers (Stripe) and bookable in PostgreSQL.
/** The most one amount may be, and the most one budget may take in deposits over its life, in minor units. */
export const MAX_MINOR_UNITS = 10n ** 15n;

/** Longer text is no amount (the maximum written out, "10,000,000,000,000.00", is 21 characters): refused before parsing. */
const MAX_AMOUNT_TEXT = 40;

export class MoneyError extends Error {
  override name = 'MoneyError';
}

/** An amount above MAX_MINOR_UNITS (or text too long to be one); its message names the maximum. */
export class AboveMaximumError extends MoneyError {
  override name = 'AboveMaximumError';
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

/** The maximum for people: "10,000,000,000,000.00 USD"; in minor units too when `inMinorUnits`, or when the currency is unknown. */
export function formatMaximum(currency?: string, options: { inMinorUnits?: boolean } = {}): string {
  const minorUnits = `${groupThousands(MAX_MINOR_UNITS.toString())} minor units`;
  if (!currency || !isCurrency(currency)) return minorUnits;
  const money = formatMoney(MAX_MINOR_UNITS, currency);
  return options.inMinorUnits ? `${minorUnits}, ${money}` : money;
}

/**
 * Refuses an amount above MAX_MINOR_UNITS, the one check every entry point shares. `what` names it
 * for people (e.g. `amount "12.50"`); `currency`, when known, shows the maximum as money.
 */
export function assertAtMostMaximum(
  minor: bigint,
  what: string,
  currency?: string,
  options: { inMinorUnits?: boolean } = {},
): bigint {
  if (minor > MAX_MINOR_UNITS)
    throw new AboveMaximumError(`${what} is above the most one amount may be (${formatMaximum(currency, options)})`);
  return minor;
}

/** An input as a message shows it: long ones are cut, so a refusal never echoes a megabyte back. */
function shown(value: unknown): string {
  const text =
    typeof value === 'string'
      ? value
      : typeof value === 'bigint'
        ? `${value}n`
        : (JSON.stringify(value) ?? String(value));
  return text.length <= MAX_AMOUNT_TEXT ? text : `${text.slice(0, 24)}… (${text.length} characters)`;
}

/** Text too long to be an amount is refused before any parsing: BigInt of a megabyte of digits is a cost of its own. */
function assertAmountLength(text: string, field: string, currency?: string): void {
  if (text.length > MAX_AMOUNT_TEXT) {
    throw new AboveMaximumError(
      `${field} "${shown(text)}" is too long to be an amount: at most ${MAX_AMOUNT_TEXT} characters and ${formatMaximum(currency)}`,
    );
  }
}

/**
 * Parses wire minor units ("1250"); throws naming the field when it is not a non-negative integer
 * or is above MAX_MINOR_UNITS (`currency`, when known, shows that maximum as money too).
 */
export function toMinor(value: unknown, field: string, currency?: string): bigint {
  if (typeof value === 'string') assertAmountLength(value, field, currency);
  if (typeof value !== 'string' || !MINOR_UNITS.test(value)) {
    throw new MoneyError(
      `${field} must be a whole number of minor units as a string, like "1250" for 12.50; got ${typeof value === 'string' ? JSON.stringify(value) : shown(value)}`,
    );
  }
  return assertAtMostMaximum(BigInt(value), `${field} "${value}"`, currency, { inMinorUnits: true });
}

/**
 * For callers with their own words for a malformed value: why `value` is not bookable minor units,
 * or undefined when it is. Above the maximum gives toMinor's message; malformed (or zero, where
 * `positive`) gives `malformed`.
 */
export function minorUnitsProblem(
  value: unknown,
  field: string,
  malformed: string,
  options: { positive?: boolean; currency?: string } = {},
): string | undefined {
  try {
    if (toMinor(value, field, options.currency) > 0n || !options.positive) return undefined;
  } catch (error) {
    if (error instanceof AboveMaximumError) return error.message;
  }
  return malformed;
}

const GROUPED = /^\d{1,3}(,\d{3})+(\.\d+)?$/;
const PLAIN = /^\d+(\.\d+)?$/;

/**
 * Parses an amount a person typed ("12.5", "12.50", "1,000.00") into minor units, exactly.
 * Refuses zero, negatives, NaN, malformed grouping, more decimals than the currency has, and
 * anything above MAX_MINOR_UNITS.
 */
export function parseAmount(text: string, currency: string): bigint {
  const exponent = currencyExponent(currency);
  assertAmountLength(text, 'amount', currency);
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
  return assertAtMostMaximum(minor, `amount "${trimmed}"`, currency);
}

/** "1234567" → "1,234,567". */
function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Formats minor units for people: 123456n USD → "1,234.56". */
export function formatAmount(minor: bigint | MinorUnits, currency: string): string {
  const exponent = currencyExponent(currency);
  const value = typeof minor === 'bigint' ? minor : BigInt(minor);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(exponent + 1, '0');
  const whole = groupThousands(digits.slice(0, digits.length - exponent));
  const fraction = exponent > 0 ? '.' + digits.slice(digits.length - exponent) : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

/** Formats with the currency code: "1,234.56 USD". */
export function formatMoney(minor: bigint | MinorUnits, currency: string): string {
  return `${formatAmount(minor, currency)} ${currency.toUpperCase()}`;
}

/** Per-use prices are stated per 1,000 tokens to a thousandth of a minor unit ("0.002" USD): stored per 1,000,000 tokens in whole minor units. */
const USE_PRICE_EXTRA_DIGITS = 3;
/** No price per 1,000 tokens is above one million of the currency's major units: a typo, not a price. */
const MAX_USE_PRICE_PER_MILLION_DIGITS = 6 + USE_PRICE_EXTRA_DIGITS;

/** Parses a price per 1,000 tokens a person typed ("0.002", "0") into minor units per 1,000,000 tokens, exactly. */
export function parseUsePrice(text: string, currency: string, field = 'price per 1,000 tokens'): bigint {
  const exponent = currencyExponent(currency);
  assertAmountLength(text, field, currency);
  const trimmed = text.trim();
  if (!PLAIN.test(trimmed))
    throw new MoneyError(
      `${field} "${shown(text)}" is not a price: write it like 0.002 (in ${currency.toUpperCase()})`,
    );
  const [whole = '', fraction = ''] = trimmed.split('.');
  const digits = exponent + USE_PRICE_EXTRA_DIGITS;
  if (fraction.length > digits)
    throw new MoneyError(
      `${field} "${text}" has ${fraction.length} decimals; at most ${digits} in ${currency.toUpperCase()}`,
    );
  const perMillion = BigInt(whole + fraction.padEnd(digits, '0'));
  if (whole.replace(/^0+/, '').length > MAX_USE_PRICE_PER_MILLION_DIGITS - digits)
    throw new AboveMaximumError(`${field} "${text}" is above 1,000,000 ${currency.toUpperCase()} per 1,000 tokens`);
  return perMillion;
}

/** Formats minor units per 1,000,000 tokens as a price per 1,000 tokens: 200n USD → "0.002 USD". */
export function formatUsePrice(perMillion: bigint | MinorUnits, currency: string): string {
  const digits = currencyExponent(currency) + USE_PRICE_EXTRA_DIGITS;
  const text = BigInt(perMillion)
    .toString()
    .padStart(digits + 1, '0');
  const fraction = text.slice(text.length - digits).replace(/0+$/, '');
  return `${text.slice(0, text.length - digits)}${fraction ? `.${fraction}` : ''} ${currency.toUpperCase()}`;
}

/** Formats millionths of a minor unit (a metered charge) to the last digit that is not zero: "0.000123 USD". */
export function formatMicros(micros: bigint | MinorUnits, currency: string): string {
  const digits = currencyExponent(currency) + 6;
  const value = BigInt(micros);
  const text = (value < 0n ? -value : value).toString().padStart(digits + 1, '0');
  const fraction = text
    .slice(text.length - digits)
    .replace(/0+$/, '')
    .padEnd(currencyExponent(currency), '0');
  return `${value < 0n ? '-' : ''}${groupThousands(text.slice(0, text.length - digits))}${fraction ? `.${fraction}` : ''} ${currency.toUpperCase()}`;
}
