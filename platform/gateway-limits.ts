// Quotas at the gateway, per caller and image, OpenAI-style: requests and tokens a minute and a day.
// A caller is a signed-in account or an anonymous visitor (their salted id); the image is the
// instance's repository. A call is counted at admission as its worst case in tokens (its prompt's
// bytes and the longest answer it allows) and corrected to what it used when it ends. The minute
// windows are this process's (fixed windows from a caller's first call); the days are rows of
// GatewayUse, counted by one atomic upsert a call, so they survive restarts and agree across replicas.
// Every answer reports where the caller stands in OpenAI's x-ratelimit-* headers.
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { recordRefusal } from '../db/usage';

/** How much one caller may use of one image; 0: no limit. */
export interface QuotaLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
  requestsPerDay: number;
  tokensPerDay: number;
}

/** Signed-in accounts', and anonymous visitors' (usually lower). */
export interface GatewayLimits {
  account: QuotaLimits;
  anonymous: QuotaLimits;
}

/** The answer's length a call is counted for when it names no max_tokens. */
export const DEFAULT_ANSWER_TOKENS = 1024;
const MINUTE_MS = 60_000;
/** A flood of refusals is recorded (as usage the caller sees) at most once a second per caller and image. */
const REFUSAL_RECORD_MS = 1_000;
/** Days of GatewayUse kept: today's and yesterday's; older rows are deleted about hourly. */
const DAYS_KEPT = 2;
const PRUNE_MS = 3_600_000;

/** A call's worst case: the messages' bytes as sent (at least as many as tokens of them) and its longest answers. */
export interface CallCost {
  promptBytes: number;
  answerTokens: number;
}

/** The longest answer a chat asks for (max_completion_tokens, else max_tokens), when it names one. */
export function askedAnswerTokens(body: Record<string, unknown>): number | undefined {
  return [body.max_completion_tokens, body.max_tokens].find(
    (value) => Number.isSafeInteger(value) && (value as number) >= 0,
  ) as number | undefined;
}

/** One home for a call's worst case: the quotas count it, and a priced call holds its price. */
export function callCost(body: Record<string, unknown>, defaultAnswerTokens = DEFAULT_ANSWER_TOKENS): CallCost {
  const asked = askedAnswerTokens(body);
  const choices = Number.isSafeInteger(body.n) && (body.n as number) > 1 ? (body.n as number) : 1;
  return {
    promptBytes: Buffer.byteLength(JSON.stringify(body.messages ?? [])),
    answerTokens: (asked ?? defaultAnswerTokens) * choices,
  };
}

const worstOf = (cost: CallCost) => cost.promptBytes + cost.answerTokens;

/** A duration as OpenAI's reset headers write it (Go's style): `120ms`, `1s`, `1.5s`, `6m0s`, `5h12m3s`. */
export function formatReset(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = `${(total % 60_000) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  return minutes > 0 ? `${minutes}m${seconds}` : seconds;
}

/** A call refused for a quota (429), or because the quotas could not be counted (503). */
export class QuotaExceeded extends Error {
  override name = 'QuotaExceeded';
  constructor(
    readonly status: 429 | 503,
    message: string,
    readonly code: string,
    readonly headers: Record<string, string>,
  ) {
    super(message);
  }
}

/** A call as the limits see it. */
export interface LimitedCall {
  /** `account:<handle>` or `visitor:<id>`. */
  caller: string;
  /** The signed-in caller's handle; absent: an anonymous visitor. */
  handle?: string;
  /** The instance's repository. */
  image: string;
  instanceId: string;
  interactionId: string;
}

/** An admitted call: the headers its answer carries, and its correction once it ends. */
export interface Admission {
  headers: Record<string, string>;
  /**
   * Counts what the call used in place of its worst case (0: nothing reached the caller). The minute
   * is corrected before this returns; the promise is the day's correction in the database.
   */
  finish(usedTokens: number): Promise<void>;
}

export interface LimiterSettings {
  limits: GatewayLimits;
  /** The platform's currency, of refusals recorded as usage. */
  currency: string;
  /** Milliseconds since the epoch; default Date.now. */
  clock?: () => number;
}

interface MinuteWindow {
  endsAt: number;
  requests: number;
  tokens: number;
}

/** One limit in one window: how much of it is used, and when it is whole again. */
interface Gauge {
  limit: number;
  used: number;
  resetMs: number;
}

interface WindowUse {
  per: 'minute' | 'day';
  requests: Gauge;
  tokens: Gauge;
}

/** The window's limit a call would pass, if any. */
function exceeded(window: WindowUse, worst: number): { what: 'requests' | 'tokens'; gauge: Gauge } | undefined {
  const { requests, tokens } = window;
  if (requests.limit > 0 && requests.used + 1 > requests.limit) return { what: 'requests', gauge: requests };
  if (tokens.limit > 0 && tokens.used + worst > tokens.limit) return { what: 'tokens', gauge: tokens };
  return undefined;
}

/** Of a limit's windows, the one with the least left (the minute on a tie); none when unlimited. */
function tightest(gauges: Gauge[]): Gauge | undefined {
  const limited = gauges.filter((gauge) => gauge.limit > 0);
  const left = (gauge: Gauge) => gauge.limit - gauge.used;
  return limited.reduce<Gauge | undefined>(
    (best, gauge) => (!best || left(gauge) < left(best) ? gauge : best),
    undefined,
  );
}

/** OpenAI's x-ratelimit-* headers: for requests and for tokens, the tighter of the minute and the day. */
function rateHeaders(windows: WindowUse[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const what of ['requests', 'tokens'] as const) {
    const gauge = tightest(windows.map((window) => window[what]));
    if (!gauge) continue;
    headers[`x-ratelimit-limit-${what}`] = String(gauge.limit);
    headers[`x-ratelimit-remaining-${what}`] = String(Math.max(0, gauge.limit - gauge.used));
    headers[`x-ratelimit-reset-${what}`] = formatReset(gauge.resetMs);
  }
  return headers;
}

const utcDay = (now: number) => new Date(now).toISOString().slice(0, 10);

function untilMidnight(now: number): number {
  const at = new Date(now);
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1) - now;
}

/** A limit of 0 (none) as the SQL compares it: more than any count. */
const sqlLimit = (limit: number) => (limit > 0 ? BigInt(limit) : BigInt(Number.MAX_SAFE_INTEGER));

/** What the caller has used of the image today, counting this call when it fits: one statement. */
async function countDay(
  db: Database,
  key: { caller: string; image: string; day: string },
  worst: number,
  limits: QuotaLimits,
): Promise<{ admitted: boolean; requests: number; tokens: number }> {
  const [requestLimit, tokenLimit] = [sqlLimit(limits.requestsPerDay), sqlLimit(limits.tokensPerDay)];
  const tokens = BigInt(worst);
  // Refused, the row is read in the same statement (for the refusal's message and headers).
  const rows = await db.$queryRaw<Array<{ admitted: boolean; requests: number | bigint; tokens: number | bigint }>>(
    Prisma.sql`
    WITH counted AS (
      INSERT INTO "GatewayUse" ("caller", "repository", "day", "requests", "tokens")
      SELECT ${key.caller}, ${key.image}, ${key.day}, 1, ${tokens}::bigint
      WHERE ${tokens}::bigint <= ${tokenLimit}::bigint
      ON CONFLICT ("caller", "repository", "day") DO UPDATE SET
        "requests" = "GatewayUse"."requests" + 1, "tokens" = "GatewayUse"."tokens" + EXCLUDED."tokens"
      WHERE "GatewayUse"."requests" + 1 <= ${requestLimit}::bigint
        AND "GatewayUse"."tokens" + EXCLUDED."tokens" <= ${tokenLimit}::bigint
      RETURNING "requests", "tokens"
    )
    SELECT true AS "admitted", "requests", "tokens" FROM counted
    UNION ALL
    SELECT false, "requests", "tokens" FROM "GatewayUse"
    WHERE "caller" = ${key.caller} AND "repository" = ${key.image} AND "day" = ${key.day}
      AND NOT EXISTS (SELECT 1 FROM counted)`,
  );
  const row = rows[0];
  if (!row) return { admitted: false, requests: 0, tokens: 0 };
  return { admitted: row.admitted, requests: Number(row.requests), tokens: Number(row.tokens) };
}

/** Moves a day's tokens from the call's worst case to what it used, in one statement. */
async function correctDay(db: Database, key: { caller: string; image: string; day: string }, delta: number) {
  await db.$executeRaw(Prisma.sql`
    UPDATE "GatewayUse" SET "tokens" = GREATEST("tokens" + ${BigInt(delta)}::bigint, 0)
    WHERE "caller" = ${key.caller} AND "repository" = ${key.image} AND "day" = ${key.day}`);
}

export class GatewayLimiter {
  private readonly windows = new Map<string, MinuteWindow>();
  /** Per caller and image: when a refusal was last recorded as usage. */
  private readonly recorded = new Map<string, number>();
  private readonly clock: () => number;
  private sweptAt = 0;
  private prunedAt = 0;

  constructor(
    private readonly db: Database,
    private readonly settings: LimiterSettings,
  ) {
    this.clock = settings.clock ?? Date.now;
  }

  /** Admits the call within its caller's quotas for the image, or refuses it (QuotaExceeded). */
  async admit(call: LimitedCall, cost: CallCost): Promise<Admission> {
    const limits = call.handle === undefined ? this.settings.limits.anonymous : this.settings.limits.account;
    const now = this.clock();
    this.sweep(now);
    const key = `${call.caller}\u0000${call.image}`;
    const live = this.windows.get(key);
    const window = live && live.endsAt > now ? live : { endsAt: now + MINUTE_MS, requests: 0, tokens: 0 };
    const worst = worstOf(cost);
    const minute = (): WindowUse => {
      const resetMs = window.requests > 0 || window.tokens > 0 ? window.endsAt - now : 0;
      return {
        per: 'minute',
        requests: { limit: limits.requestsPerMinute, used: window.requests, resetMs },
        tokens: { limit: limits.tokensPerMinute, used: window.tokens, resetMs },
      };
    };
    const overMinute = exceeded(minute(), worst);
    if (overMinute) throw this.refusal(call, cost, 'minute', overMinute, [minute()], now);

    // Taken before the day is counted, so that calls in flight meanwhile see it; given back if refused.
    window.requests += 1;
    window.tokens += worst;
    this.windows.set(key, window);
    const giveBack = () => {
      window.requests -= 1;
      window.tokens -= worst;
    };

    const dayKey = { caller: call.caller, image: call.image, day: utcDay(now) };
    const countsDays = limits.requestsPerDay > 0 || limits.tokensPerDay > 0;
    let day: WindowUse | undefined;
    if (countsDays) {
      let counted: Awaited<ReturnType<typeof countDay>>;
      try {
        counted = await countDay(this.db, dayKey, worst, limits);
      } catch {
        giveBack();
        throw new QuotaExceeded(
          503,
          `the gateway could not count this call against the daily limits for ${call.image}: try again shortly`,
          'quota_unavailable',
          { 'retry-after': '1' },
        );
      }
      const resetMs = counted.requests > 0 || counted.tokens > 0 ? untilMidnight(now) : 0;
      day = {
        per: 'day',
        requests: { limit: limits.requestsPerDay, used: counted.requests, resetMs },
        tokens: { limit: limits.tokensPerDay, used: counted.tokens, resetMs },
      };
      if (!counted.admitted) {
        giveBack();
        const overDay = exceeded(day, worst) ?? { what: 'requests' as const, gauge: day.requests };
        throw this.refusal(call, cost, 'day', overDay, [minute(), day], now);
      }
    }

    const headers = rateHeaders(day ? [minute(), day] : [minute()]);
    let finished = false;
    const finish = (usedTokens: number): Promise<void> => {
      if (finished) return Promise.resolve();
      finished = true;
      const delta = usedTokens - worst;
      if (delta === 0) return Promise.resolve();
      // A call that ends in a later window was counted in one that is over: nothing to correct.
      if (this.windows.get(key) === window) window.tokens = Math.max(0, window.tokens + delta);
      return countsDays ? correctDay(this.db, dayKey, delta) : Promise.resolve();
    };
    return { headers, finish };
  }

  /** The refusal of a call over `over`: which limit, for which image, when to retry; recorded for an account. */
  private refusal(
    call: LimitedCall,
    cost: CallCost,
    per: 'minute' | 'day',
    over: { what: 'requests' | 'tokens'; gauge: Gauge },
    windows: WindowUse[],
    now: number,
  ): QuotaExceeded {
    const { what, gauge } = over;
    const worst = worstOf(cost);
    const neverFits = what === 'tokens' && worst > gauge.limit;
    const retryAfter = Math.max(1, Math.ceil((per === 'day' ? untilMidnight(now) : gauge.resetMs || MINUTE_MS) / 1000));
    const asks = `this call may use up to ${worst} tokens (its ${cost.promptBytes}-byte prompt and ${cost.answerTokens} tokens of answer)`;
    const signIn = call.handle === undefined ? '; sign in (an API token) for higher limits' : '';
    const message = neverFits
      ? `${asks}, more than the ${gauge.limit} tokens per ${per} allowed for ${call.image}: ask for fewer tokens (max_tokens) or send a shorter conversation${signIn}`
      : what === 'requests'
        ? `rate limit reached for ${call.image}: ${gauge.limit} requests per ${per}, ${gauge.used} used; try again in ${formatReset(retryAfter * 1000)}${signIn}`
        : `rate limit reached for ${call.image}: ${gauge.limit} tokens per ${per}, ${gauge.used} used, and ${asks}; try again in ${formatReset(retryAfter * 1000)}, or ask for fewer tokens (max_tokens)${signIn}`;
    const headers: Record<string, string> = { ...rateHeaders(windows), 'retry-after': String(retryAfter) };
    // OpenAI's clients retry a 429 on their own: not one that cannot pass before tomorrow, or ever.
    if (neverFits || per === 'day') headers['x-should-retry'] = 'false';
    if (call.handle !== undefined) this.record(call, message, now);
    return new QuotaExceeded(429, message, 'rate_limit_exceeded', headers);
  }

  /** Records a signed-in caller's refusal as usage they see (computatrum usage), at most once a second per image. */
  private record(call: LimitedCall, reason: string, now: number): void {
    const key = `${call.caller}\u0000${call.image}`;
    const last = this.recorded.get(key);
    if (last !== undefined && now - last < REFUSAL_RECORD_MS) return;
    this.recorded.set(key, now);
    void recordRefusal(
      this.db,
      {
        id: call.interactionId,
        payerHandle: call.handle!,
        caller: call.caller,
        instanceId: call.instanceId,
        repository: call.image,
        trainerHandle: '',
        currency: this.settings.currency,
      },
      reason,
    ).catch(() => undefined);
  }

  /** Forgets windows that are over and old refusal stamps (once a minute); prunes past days (about hourly). */
  private sweep(now: number): void {
    if (now - this.sweptAt >= MINUTE_MS) {
      this.sweptAt = now;
      for (const [key, window] of this.windows) if (window.endsAt <= now) this.windows.delete(key);
      for (const [key, at] of this.recorded) if (now - at >= REFUSAL_RECORD_MS) this.recorded.delete(key);
    }
    if (now - this.prunedAt >= PRUNE_MS) {
      this.prunedAt = now;
      const oldest = utcDay(now - (DAYS_KEPT - 1) * 86_400_000);
      void this.db.$executeRaw(Prisma.sql`DELETE FROM "GatewayUse" WHERE "day" < ${oldest}`).catch(() => undefined);
    }
  }
}
