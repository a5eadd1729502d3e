// Per-use prices at the gateway: which priced breeds a call to an instance pays for, who pays (the
// signed-in caller from their credit; for an anonymous visitor of a public instance, its owner), the
// call's worst case held before the instance sees it, and what it used charged after. Credit comes
// from allotments (workflows/allotment.ts) opened here when a payer has none with room, so a burst of
// calls is a few budget updates, not one per call; the metering itself is db/usage.ts.
import { randomUUID } from 'node:crypto';
import { Prisma } from '@prisma/client';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Database } from '../db/prisma';
import {
  type ChargeContext,
  chargeMicros,
  closeAllotment,
  finishCharge,
  type GrantHold,
  holdCharge,
  MAX_ALLOTMENT_MINOR,
  MICROS_PER_MINOR,
  microsToMinor,
  recordRefusal,
  type TokenCounts,
  type UsePrice,
} from '../db/usage';
import {
  allotmentOpenedUpdate,
  type AllotmentInput,
  type AllotmentOpening,
  closeAllotmentSignal,
} from '../workflows/allotment-api';
import type { allotmentWorkflow } from '../workflows/allotment';
import { currencyExponent, formatMicros, formatMoney, formatUsePrice } from '../workflows/money';
import { allotmentWorkflowId, creditWorkflowId, sponsorWorkflowId } from '../workflows/names';
import { statusQuery } from '../workflows/budget-api';
import type { Caller } from './accounts';
import { creditStatus } from './credit';
import { askedAnswerTokens, callCost } from './gateway-limits';
import { sponsorHandle } from './sponsors';
import type { InstanceRow } from './instances';
import { entitlementId } from './read-access';
import { allotmentSummary } from '../workflows/summaries';

export interface MeteringSettings {
  client: Client;
  taskQueue: string;
  germline: string;
  currency: string;
  /** The platform's share of every charge, a whole percentage (PLATFORM_FEE_PERCENT). */
  feePercent: number;
  /** Minor units an allotment reserves when the payer's credit has them; default one major unit (1.00). */
  allotmentMinor?: bigint;
  /** How long an allotment meters calls before it is settled; default 60 s. */
  allotmentSeconds?: number;
  /** The answer's length a priced call is held for when it names no max_tokens (and is then sent with); default 1,024. */
  defaultMaxTokens?: number;
  /** How long prices, licences and grants are kept in memory; default 5 s. */
  cacheMs?: number;
  /** What grants' expiry is judged by; default the system clock. */
  clock?: () => Date;
}

/** A call the gateway refuses for money: 402 (not 429, which OpenAI clients retry on their own). */
export class UsageRefused extends Error {
  override name = 'UsageRefused';
  constructor(
    readonly status: 401 | 402 | 503,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface PricedBreed {
  repository: string;
  ownerId: string;
  trainerHandle: string;
  price: UsePrice;
  licenceIncludesUse: boolean;
}

/** A budget that may pay for a call, in the order tried. */
export interface Payer {
  /** The budget workflow reserved from: credit/<handle> or sponsor/<name>. */
  budget: string;
  /** The person the charge is theirs to see. */
  handle: string;
  /** "alice's credit", "Acme's grant": in refusals. */
  whose: string;
  grant?: GrantHold;
}

/** What a call pays for and who may pay, in order. */
export interface Terms {
  payerHandle: string;
  breeds: PricedBreed[];
  payers: Payer[];
}

/** A call held against its payer's allotment: ended once, charged or released. */
export interface HeldCall {
  charges: Array<{ id: string; price: UsePrice; held: bigint }>;
  estimate: TokenCounts;
}

/** The body a priced call is forwarded with: its answer's length bounded, and its stream reporting usage. */
export interface PricedForward {
  body: Record<string, unknown>;
  worst: TokenCounts;
}

/** How long prices, licences and grants are read from memory: a change reaches calls within this. */
const DEFAULT_CACHE_MS = 5_000;
/** How long a call may take to be held (allotments opened, closed and settled for it) before it is refused as busy. */
const HOLD_DEADLINE_MS = 30_000;
/** How often an allotment another call is opening is looked at again. */
const OPENING_POLL_MS = 100;
/** Tries to end a charge (finishCharge is idempotent: a charge no longer held changes nothing). */
const FINISH_ATTEMPTS = 3;
/** Closing allotments older than this are not waited for (their calls are long lost, or their workflow is gone). */
const CLOSING_RECENT_MS = 30 * 60_000;
/** A row left `opening` this long without its workflow was abandoned by a gateway that went away. */
const ABANDONED_OPENING_MS = 30_000;

/** Characters of the messages' text: what an answer cut off before the instance reported its usage is charged for its prompt. */
export function promptCharacters(messages: unknown[]): number {
  let count = 0;
  for (const message of messages) {
    const content = (message as { content?: unknown })?.content;
    if (typeof content === 'string') count += [...content].length;
    else if (Array.isArray(content))
      for (const part of content) {
        const text = (part as { text?: unknown })?.text;
        if (typeof text === 'string') count += [...text].length;
      }
  }
  return count;
}

export class Metering {
  private readonly breeds = new Map<string, { at: number; breeds: PricedBreed[] }>();
  private readonly accounts = new Map<string, { at: number; account: { id: string; role: string } | null }>();
  private readonly licences = new Map<string, { at: number; holds: boolean }>();
  private sponsors:
    | {
        at: number;
        rows: Array<{
          name: string;
          title: string;
          dailyAllowance: bigint;
          eligibleDomain: string | null;
          expiresAt: Date | null;
        }>;
      }
    | undefined;
  private readonly allotmentMinor: bigint;
  private readonly allotmentSeconds: number;
  readonly defaultMaxTokens: number;
  private readonly cacheMs: number;
  private readonly clock: () => Date;

  constructor(
    private readonly db: Database,
    private readonly settings: MeteringSettings,
  ) {
    this.allotmentMinor = settings.allotmentMinor ?? 10n ** BigInt(currencyExponent(settings.currency));
    this.allotmentSeconds = settings.allotmentSeconds ?? 60;
    this.defaultMaxTokens = settings.defaultMaxTokens ?? 1024;
    this.cacheMs = settings.cacheMs ?? DEFAULT_CACHE_MS;
    this.clock = settings.clock ?? (() => new Date());
  }

  /** A charge in micros as the caller reads it. */
  format(micros: bigint): string {
    return formatMicros(micros, this.settings.currency);
  }

  /** The breeds with a per-use price that govern the instance's content: the breed itself, and those it came from. */
  private async pricedBreeds(repository: string): Promise<PricedBreed[]> {
    const cached = this.breeds.get(repository);
    if (cached && Date.now() - cached.at < this.cacheMs) return cached.breeds;
    const rows = await this.db.breed.findMany({
      where: {
        OR: [{ repository }, { inheritors: { some: { repository } } }],
        AND: [{ OR: [{ inputPricePerMillion: { gt: 0 } }, { outputPricePerMillion: { gt: 0 } }] }],
      },
      include: { owner: { select: { handle: true } } },
      orderBy: { repository: 'asc' },
    });
    const breeds = rows.map((row) => ({
      repository: row.repository,
      ownerId: row.ownerId,
      trainerHandle: row.owner.handle,
      price: { inputPerMillion: row.inputPricePerMillion ?? 0n, outputPerMillion: row.outputPricePerMillion ?? 0n },
      licenceIncludesUse: row.licenceIncludesUse,
    }));
    this.breeds.set(repository, { at: Date.now(), breeds });
    return breeds;
  }

  private async accountOf(handle: string): Promise<{ id: string; role: string } | null> {
    const cached = this.accounts.get(handle);
    if (cached && Date.now() - cached.at < this.cacheMs) return cached.account;
    const account = await this.db.account.findUnique({ where: { handle }, select: { id: true, role: true } });
    this.accounts.set(handle, { at: Date.now(), account });
    return account;
  }

  private async holdsLicence(accountId: string, repository: string): Promise<boolean> {
    const key = entitlementId(accountId, repository);
    const cached = this.licences.get(key);
    if (cached && Date.now() - cached.at < this.cacheMs) return cached.holds;
    const holds = (await this.db.entitlement.count({ where: { id: key } })) > 0;
    this.licences.set(key, { at: Date.now(), holds });
    return holds;
  }

  /**
   * What the call pays for and who pays, or undefined when it is free: no priced breed governs the
   * instance, or the payer is each breed's owner, an operator, or holds a licence that includes use.
   */
  async termsOf(caller: Caller, row: InstanceRow): Promise<Terms | undefined> {
    const priced = await this.pricedBreeds(row.repository);
    if (priced.length === 0) return undefined;
    const payerHandle = caller.account?.handle ?? row.ownerHandle;
    if (!payerHandle)
      throw new UsageRefused(
        401,
        `${row.repository} is priced per use (${describePrices(priced, this.settings.currency)}): sign in (an API token) to pay for it from your credit`,
        'sign_in_to_pay',
      );
    const payer = caller.account ?? (await this.accountOf(payerHandle));
    if (!payer)
      throw new UsageRefused(402, `instance ${row.id}'s owner ${payerHandle} no longer pays for its use`, 'no_payer');
    if (payer.role === 'operator') return undefined;
    const breeds: PricedBreed[] = [];
    for (const breed of priced) {
      if (breed.ownerId === payer.id) continue;
      if (breed.licenceIncludesUse && (await this.holdsLicence(payer.id, breed.repository))) continue;
      breeds.push(breed);
    }
    if (breeds.length === 0) return undefined;
    // A person's own call is paid by a sponsor's grant while it lasts, then by their credit; a
    // visitor's by the instance's owner.
    const own: Payer = { budget: creditWorkflowId(payerHandle), handle: payerHandle, whose: `${payerHandle}'s credit` };
    const grants = caller.account ? await this.grantsFor(caller.account) : [];
    return { payerHandle, breeds, payers: [...grants, own] };
  }

  /** The sponsors' grants a person may use now: eligible, not expired, with an allowance. */
  private async grantsFor(account: { handle: string; email: string; role: string }): Promise<Payer[]> {
    if (account.role !== 'trainer') return [];
    if (!this.sponsors || Date.now() - this.sponsors.at >= this.cacheMs)
      this.sponsors = {
        at: Date.now(),
        rows: await this.db.sponsor.findMany({
          where: { dailyAllowance: { gt: 0 }, currency: this.settings.currency },
          orderBy: { createdAt: 'asc' },
        }),
      };
    const domain = account.email.slice(account.email.lastIndexOf('@') + 1).toLowerCase();
    const now = this.clock();
    return this.sponsors.rows
      .filter((s) => (!s.expiresAt || s.expiresAt > now) && (!s.eligibleDomain || s.eligibleDomain === domain))
      .map((s) => ({
        budget: sponsorWorkflowId(s.name),
        handle: account.handle,
        whose: `${s.title}'s grant`,
        grant: { sponsor: s.name, handle: account.handle, allowance: s.dailyAllowance },
      }));
  }

  /** The body as the instance gets it, and the call's worst case: the whole prompt and the longest answer allowed. */
  forward(body: Record<string, unknown>): PricedForward {
    const cost = callCost(body, this.defaultMaxTokens);
    const forwarded: Record<string, unknown> = { ...body };
    if (askedAnswerTokens(body) === undefined) forwarded.max_tokens = this.defaultMaxTokens;
    if (body.stream === true)
      forwarded.stream_options = {
        ...(typeof body.stream_options === 'object' && body.stream_options ? body.stream_options : {}),
        include_usage: true,
      };
    return { body: forwarded, worst: { input: cost.promptBytes, output: cost.answerTokens } };
  }

  /**
   * Holds the call's worst case for each breed with the first payer that can cover it (a sponsor's
   * grant, then the person's credit), opening an allotment when none has room; refuses
   * (UsageRefused) when none can, saying why each could not and what would make it work.
   */
  async hold(
    terms: Terms,
    context: { interactionId: string; caller: string; instanceId: string },
    worst: TokenCounts,
  ): Promise<HeldCall> {
    const held: HeldCall = { charges: [], estimate: worst };
    try {
      for (const breed of terms.breeds) {
        const micros = chargeMicros(worst, breed.price);
        const charge: ChargeContext = {
          id: terms.breeds.length === 1 ? context.interactionId : `${context.interactionId}/${breed.repository}`,
          payerHandle: terms.payerHandle,
          caller: context.caller,
          instanceId: context.instanceId,
          repository: breed.repository,
          trainerHandle: breed.trainerHandle,
          currency: this.settings.currency,
        };
        const reasons: string[] = [];
        for (const payer of terms.payers) {
          const reason = await this.holdWith(payer, micros, charge);
          if (!reason) break;
          reasons.push(reason);
        }
        if (reasons.length === terms.payers.length) {
          const refusal = new UsageRefused(
            402,
            `this call may cost up to ${this.format(micros)} (a ${worst.input}-byte prompt and up to ${worst.output} tokens of answer at ${describePrices([breed], this.settings.currency)}): ${reasons.join('; ')}. Add credit (computatrum credit fund, or fundCredit) or ask for fewer tokens (max_tokens)`,
            'insufficient_quota',
          );
          if (context.caller.startsWith('account:'))
            void recordRefusal(this.db, charge, refusal.message).catch(() => undefined);
          throw refusal;
        }
        held.charges.push({ id: charge.id, price: breed.price, held: micros });
      }
      return held;
    } catch (error) {
      await this.release(held, 'another of its charges was refused');
      throw error;
    }
  }

  /** Charges what the call used, each breed at its price (never more than was held). Answers the micros charged. */
  async charge(held: HeldCall, used: TokenCounts): Promise<bigint> {
    let total = 0n;
    for (const charge of held.charges)
      total += await this.finish(charge.id, { tokens: used, micros: chargeMicros(used, charge.price) });
    return total;
  }

  /** Releases the holds of a call nothing reached the caller from (a refusal by the instance, a failed wake). */
  async release(held: HeldCall, why: string): Promise<void> {
    for (const charge of held.charges) await this.finish(charge.id, { released: why });
  }

  /**
   * Ends a held charge, tried again while the database is busy for a moment: a charge never ended
   * keeps its allotment from settling until it is released as lost, uncharged, 15 minutes on.
   */
  private async finish(id: string, outcome: Parameters<typeof finishCharge>[2]): Promise<bigint> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await finishCharge(this.db, id, outcome);
      } catch (error) {
        if (attempt >= FINISH_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
      }
    }
  }

  /** Holds the call with `payer`; answers why it could not, or undefined when held. */
  private async holdWith(payer: Payer, micros: bigint, charge: ChargeContext): Promise<string | undefined> {
    const { db } = this;
    let waited = false;
    // A deadline, not a count of tries: under load an allotment another call is opening may take a
    // while to answer, and waiting for it must not use up this call's chances.
    const deadline = Date.now() + HOLD_DEADLINE_MS;
    while (Date.now() < deadline) {
      const outcome = await holdCharge(db, payer.budget, micros, charge, payer.grant);
      if ('allotmentId' in outcome) return undefined;
      if (outcome.noRoom === 'grant') return this.grantLeft(payer);
      const current = await db.usageAllotment.findFirst({
        where: { payer: payer.budget, state: { in: ['opening', 'open'] } },
      });
      if (current?.state === 'open') {
        // Opened between the hold and this read: held again.
        const room = current.amount * MICROS_PER_MINOR - current.used - current.held;
        if (room >= micros && current.expiresAt && current.expiresAt > new Date()) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
        // Full (or expired): settled now, and another opened for this call.
        await closeAllotment(db, current.id);
        void this.settings.client.workflow
          .getHandle(allotmentWorkflowId(current.id))
          .signal(closeAllotmentSignal)
          .catch(() => undefined);
        continue;
      }
      const opening = current ?? (await this.startAllotment(payer, micros));
      if (typeof opening === 'string') {
        // Short now, perhaps not in a moment: an allotment of this payer that is closing gives back
        // what its calls did not use once they end. The call waits for that rather than be refused.
        if (!waited && (await this.settled(payer.budget, deadline))) {
          waited = true;
          continue;
        }
        return opening;
      }
      if (!opening) continue;
      const answer = await this.opened(opening);
      if (answer?.state === 'refused') return `${payer.whose} refused: ${answer.reason}`;
    }
    return `${payer.whose} is busy with other calls: try again in a moment`;
  }

  /**
   * Waits for the payer's closing allotments to settle, until the call's hold deadline at most (a
   * covered call waits out a slow settlement rather than be refused); true when there were any, so
   * the money they held is available to look at again.
   */
  private async settled(payer: string, deadline: number): Promise<boolean> {
    const closing = await this.db.usageAllotment.findMany({
      where: { payer, state: 'closing', createdAt: { gt: new Date(Date.now() - CLOSING_RECENT_MS) } },
      select: { id: true },
    });
    if (closing.length === 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
    await Promise.race([
      Promise.all(
        closing.map(({ id }) =>
          this.settings.client.workflow
            .getHandle(allotmentWorkflowId(id))
            .result()
            .catch(() => undefined),
        ),
      ),
      timeUp,
    ]);
    clearTimeout(timer);
    return true;
  }

  /** What a grant has left today, in words. */
  private async grantLeft(payer: Payer): Promise<string> {
    const grant = payer.grant!;
    const day = new Date().toISOString().slice(0, 10);
    const use = await this.db.grantUse.findUnique({
      where: { sponsor_handle_day: { sponsor: grant.sponsor, handle: grant.handle, day } },
    });
    const spent = (use?.used ?? 0n) + (use?.held ?? 0n);
    const left = grant.allowance * MICROS_PER_MINOR - spent;
    return `${payer.whose} has ${this.format(left > 0n ? left : 0n)} of its ${formatMoney(grant.allowance, this.settings.currency)} a day left today`;
  }

  /**
   * Opens an allotment of the payer's budget: as much as the allotment size it has available, and
   * at least this call's worst case (or why not, when it has less). Undefined when another call began
   * opening one first (that one is waited for instead).
   */
  private async startAllotment(
    payer: Payer,
    micros: bigint,
  ): Promise<{ id: string; createdAt: Date } | string | undefined> {
    const { client, taskQueue, currency } = this.settings;
    const needed = microsToMinor(micros);
    let available: bigint;
    try {
      // Started when missing (a fund or a credit is never nothing: an empty one refuses, saying so).
      const status = payer.grant
        ? await (await sponsorHandle(client, taskQueue, payer.grant.sponsor, currency)).query(statusQuery)
        : await creditStatus(client, taskQueue, payer.handle, currency);
      available = BigInt(status.available);
    } catch (error) {
      // One payer out of reach is not the end of the call: the next one may pay.
      if (payer.grant) return `${payer.whose} could not be reached (${(error as Error).message})`;
      throw error;
    }
    if (available < needed) return `${payer.whose} has ${formatMoney(available, currency)} available`;
    let amount = available < this.allotmentMinor ? available : this.allotmentMinor;
    if (amount < needed) amount = needed;
    if (amount > MAX_ALLOTMENT_MINOR) amount = MAX_ALLOTMENT_MINOR;
    if (amount * MICROS_PER_MINOR < micros) return 'the call may cost more than one allotment can hold';
    const id = randomUUID();
    const inserted = await this.db.$executeRaw(Prisma.sql`
      INSERT INTO "UsageAllotment" ("id", "payer", "handle", "currency", "state")
      VALUES (${id}, ${payer.budget}, ${payer.grant ? `sponsor:${payer.grant.sponsor}` : payer.handle}, ${currency}, 'opening')
      ON CONFLICT ("payer") WHERE "state" IN ('opening', 'open') DO NOTHING`);
    if (inserted === 0) return undefined;
    const input: AllotmentInput = {
      id,
      payer: payer.budget,
      currency,
      amount: amount.toString(),
      openSeconds: this.allotmentSeconds,
      germline: this.settings.germline,
      feePercent: this.settings.feePercent,
    };
    try {
      await client.workflow.start<typeof allotmentWorkflow>('allotmentWorkflow', {
        workflowId: allotmentWorkflowId(id),
        taskQueue,
        args: [input],
        staticSummary: allotmentSummary(input),
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) {
        await this.db.usageAllotment.updateMany({
          where: { id, state: 'opening' },
          data: { state: 'refused', reason: `its workflow could not start: ${(error as Error).message}` },
        });
        throw error;
      }
    }
    return { id, createdAt: new Date() };
  }

  /** The allotment's reservation answer; undefined when it went away without one (then looked for again). */
  private async opened(allotment: { id: string; createdAt: Date }): Promise<AllotmentOpening | undefined> {
    try {
      return await this.settings.client.workflow
        .getHandle(allotmentWorkflowId(allotment.id))
        .executeUpdate(allotmentOpenedUpdate);
    } catch {
      // No workflow yet (the call opening it has not started it), or no more (its row says how), or its
      // gateway went away before starting it: looked at again in a moment.
      await new Promise((resolve) => setTimeout(resolve, OPENING_POLL_MS));
      if (Date.now() - allotment.createdAt.getTime() > ABANDONED_OPENING_MS)
        await this.db.usageAllotment.updateMany({
          where: { id: allotment.id, state: 'opening' },
          data: { state: 'refused', reason: 'abandoned: its gateway went away before it opened' },
        });
      return undefined;
    }
  }
}

/** "0.002 USD in / 0.006 USD out per 1,000 tokens" for each breed. */
export function describePrices(breeds: Array<{ price: UsePrice }>, currency: string): string {
  return breeds
    .map(
      ({ price }) =>
        `${formatUsePrice(price.inputPerMillion, currency)} in, ${formatUsePrice(price.outputPerMillion, currency)} out per 1,000 tokens`,
    )
    .join('; ');
}
