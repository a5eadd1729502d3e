// The gateway: one OpenAI-compatible base URL, /v1, in front of every hosted instance. `model` names
// an instance (its id) or an image (`<repository>:<tag>` or `<repository>@<digest>`, routed to an
// instance of it the caller may use). A public instance answers anyone, no sign-in; a private one its
// owner and operators. A sleeping instance is woken and the request held until it is ready (a
// streaming request is kept alive with SSE comments meanwhile). Every request writes the instance's
// lastRequestAt (its idle timeout counts from it), and every exchange is stored as an Interaction
// whose id is answered in `x-computatrum-interaction`. Errors have OpenAI's shape, so any OpenAI
// client shows them as such. Chats are limited per caller and image (gateway-limits.ts), and every
// answer says where the caller stands in OpenAI's x-ratelimit-* headers.
import { randomBytes, randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Prisma } from '@prisma/client';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../db/prisma';
import { metrics } from '../runtime/metrics';
import { parseReference, isDigest } from '../store/names';
import { instanceHandle } from '../temporal/instance-client';
import { FINAL_INSTANCE_STATES, wakeInstanceUpdate } from '../workflows/instance-api';
import type { Caller } from './accounts';
import {
  answerOk,
  headerOf,
  readText,
  relayEvents,
  StreamCollector,
  Unreachable,
  type UpstreamAnswer,
  upstreamClient,
} from './gateway-upstream';
import { type Admission, callCost, GatewayLimiter, type GatewayLimits, QuotaExceeded } from './gateway-limits';
import { instanceRefusal, type InstanceRow, visibleInstances } from './instances';
import { type HeldCall, type Metering, promptCharacters, UsageRefused } from './metering';
import { visitorIds } from './visitors';

export const GATEWAY_PREFIX = '/v1';
/** The interaction stored for an exchange: its id, answered before the body. */
export const INTERACTION_HEADER = 'x-computatrum-interaction';
/** What a priced call that is not a stream was charged, e.g. `0.000512 USD`. */
export const CHARGE_HEADER = 'x-computatrum-charge';
/** Chats carry whole conversations: more room than the platform's other requests. */
export const GATEWAY_BODY_LIMIT = 1024 * 1024;
/** Anonymous visitors (keyed by address) share public instances that others pay for: fewer requests a minute. */
export const DEFAULT_ANONYMOUS_PER_MINUTE = 60;
const DEFAULT_WAKE_TIMEOUT_MS = 90_000;
const DEFAULT_HEARTBEAT_MS = 2_000;
/** How long a stream runs before the instance's lastRequestAt is written (see chat). */
const STREAM_TOUCH_DELAY_MS = 100;
/** Tries to store an exchange before it is given up. */
const STORE_ATTEMPTS = 3;

export interface GatewayOptions {
  db: Database;
  /** Temporal, to wake sleeping instances; without it a sleeping instance is answered 503. */
  client?: Client;
  /** How long a request waits for a sleeping instance to be ready; default 90 s. */
  wakeTimeoutMs?: number;
  /** How often a streaming request that waits is sent an SSE comment; default 2 s. */
  heartbeatMs?: number;
  /** Requests a minute per account (the platform's limit), and per anonymous address (default 60, never more). */
  perMinute: number;
  anonymousPerMinute?: number;
  /** Salt of anonymous visitors' ids (a hash of their address); random per process when absent. */
  visitorSalt?: string;
  /** Per-use prices: without it (no Temporal), every call is free. */
  metering?: Metering;
  /** Chats per caller and image, a minute and a day (operators are not limited); without it, none. */
  limits?: GatewayLimits;
  /** The platform's currency, of refusals recorded as the caller's usage; default usd. */
  currency?: string;
}

/** A refusal as OpenAI's API words it: `{ error: { message, type, param, code } }`. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const TYPE_OF_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'insufficient_quota',
  403: 'permission_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
};

const typeOf = (status: number) => TYPE_OF_STATUS[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error');

/** What the caller may use, asking for `model`: an instance id, or an image reference. */
async function resolveModel(db: Database, caller: Caller, model: string): Promise<InstanceRow> {
  const listHint = 'GET /v1/models lists the instances you may use';
  if (/[/:@]/.test(model)) {
    let image: { repo: string; reference: string };
    try {
      image = parseReference(model);
    } catch (error) {
      throw new GatewayError(404, `${(error as Error).message}; ${listHint}`, typeOf(404), 'model_not_found', 'model');
    }
    const rows = await db.instance.findMany({
      where: {
        repository: image.repo,
        state: { notIn: [...FINAL_INSTANCE_STATES] },
        OR: [{ reference: image.reference }, ...(isDigest(image.reference) ? [{ digest: image.reference }] : [])],
      },
      take: 200,
    });
    const usable = rows.filter((row) => !instanceRefusal(caller, row));
    const whose = (row: InstanceRow) =>
      caller.account && row.ownerHandle === caller.account.handle ? 0 : row.visibility === 'public' ? 1 : 2;
    const readiness = (row: InstanceRow) => STATE_RANK[row.state] ?? 9;
    usable.sort((a, b) => whose(a) - whose(b) || readiness(a) - readiness(b) || +b.createdAt - +a.createdAt);
    const chosen = usable[0];
    if (!chosen)
      throw new GatewayError(
        404,
        `no running instance of ${model} that you may use: launch one (the launchInstance mutation, or the CLI), or use one that GET /v1/models lists`,
        typeOf(404),
        'model_not_found',
        'model',
      );
    return chosen;
  }
  const row = await db.instance.findUnique({ where: { id: model } });
  if (!row)
    throw new GatewayError(
      404,
      `the model \`${model}\` does not exist: name an instance id or an image (<repository>:<tag>); ${listHint}`,
      typeOf(404),
      'model_not_found',
      'model',
    );
  const refusal = instanceRefusal(caller, row);
  if (refusal) throw new GatewayError(refusal.status, refusal.message, typeOf(refusal.status), null, 'model');
  if ((FINAL_INSTANCE_STATES as readonly string[]).includes(row.state))
    throw new GatewayError(
      404,
      `instance ${row.id} has ${row.state}: ${row.reason ?? 'no reason given'}; launch another (${listHint})`,
      typeOf(404),
      `instance_${row.state}`,
      'model',
    );
  return row;
}

/** Ready instances first; one coming up before one asleep. */
const STATE_RANK: Record<string, number> = { ready: 0, starting: 1, pending: 2, sleeping: 3, draining: 4 };

const SAMPLING = [
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'n',
  'stop',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'response_format',
  'stream',
  'stream_options',
] as const;

interface ChatBody {
  model: string;
  messages: unknown[];
  stream?: boolean;
  [key: string]: unknown;
}

function checkBody(body: unknown): ChatBody {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new GatewayError(400, 'send the chat as a JSON object (content-type: application/json)', typeOf(400));
  const chat = body as Record<string, unknown>;
  if (typeof chat.model !== 'string' || chat.model === '')
    throw new GatewayError(
      400,
      "'model' is required: an instance id, or an image (<repository>:<tag>); GET /v1/models lists them",
      typeOf(400),
      null,
      'model',
    );
  if (!Array.isArray(chat.messages) || chat.messages.length === 0)
    throw new GatewayError(400, "'messages' must be a non-empty array", typeOf(400), null, 'messages');
  return chat as ChatBody;
}

/** The fields of a chat completion's usage, when the instance reported them. */
function usageOf(value: unknown): Prisma.InputJsonValue | undefined {
  if (!value || typeof value !== 'object') return undefined;
  return value as Prisma.InputJsonValue;
}

/** The tokens an instance reported using, when it did. */
function tokensUsed(usage: unknown): { input: number; output: number } | undefined {
  if (!usage || typeof usage !== 'object') return undefined;
  const { prompt_tokens: input, completion_tokens: output } = usage as Record<string, unknown>;
  const count = (value: unknown) =>
    Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
  const [inputTokens, outputTokens] = [count(input), count(output)];
  return inputTokens === undefined || outputTokens === undefined
    ? undefined
    : { input: inputTokens, output: outputTokens };
}

/** Why a wake did not give an endpoint, as a refusal. */
function wakeRefusal(id: string, error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure)
    return new GatewayError(
      404,
      `${error.cause.message}; launch another (GET /v1/models lists the instances you may use)`,
      typeOf(404),
      error.cause.type === 'InstanceEnded' ? 'instance_ended' : null,
      'model',
    );
  if (error instanceof WorkflowNotFoundError)
    return new GatewayError(404, `instance ${id} is not running`, typeOf(404), 'instance_ended', 'model');
  return new GatewayError(
    503,
    `instance ${id} could not be woken (${(error as Error).message}): try again shortly`,
    typeOf(503),
    'instance_unavailable',
    null,
    { 'retry-after': '10' },
  );
}

/** A connection that never reached the instance (it went to sleep, or moved), worth one wake and retry. */
const unreachable = (error: unknown) => error instanceof Unreachable;

/** Writes to the client, waiting when its buffer is full (the instance is read no faster than the client reads). */
function write(raw: ServerResponse, data: string | Uint8Array): Promise<void> {
  if (raw.destroyed || raw.writableEnded) return Promise.resolve();
  if (raw.write(data)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      raw.off('drain', done);
      raw.off('close', done);
      resolve();
    };
    raw.on('drain', done);
    raw.on('close', done);
  });
}

export async function registerGateway(app: FastifyInstance, options: GatewayOptions): Promise<void> {
  const { db, client, metering } = options;
  const wakeTimeoutMs = options.wakeTimeoutMs ?? DEFAULT_WAKE_TIMEOUT_MS;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const visitorId = visitorIds(options.visitorSalt ?? randomBytes(32).toString('hex'));
  const limiter = options.limits
    ? new GatewayLimiter(db, { limits: options.limits, currency: options.currency ?? 'usd' })
    : undefined;

  /** Per caller: a signed-in account by its handle (wherever it calls from), anyone else by address. */
  const { perMinute } = options;
  const anonymousPerMinute = Math.min(perMinute, options.anonymousPerMinute ?? DEFAULT_ANONYMOUS_PER_MINUTE);
  const rateLimit = {
    max: (request: FastifyRequest) => (request.caller?.account ? perMinute : anonymousPerMinute),
    keyGenerator: (request: FastifyRequest) =>
      request.caller?.account ? `gateway:account:${request.caller.account.handle}` : `gateway:address:${request.ip}`,
  };

  /** Wakes the instance; answers where it serves, or refuses (ended, not in time). */
  async function wake(row: InstanceRow): Promise<string> {
    if (!client)
      throw new GatewayError(503, `instance ${row.id} is ${row.state} and cannot be woken here`, typeOf(503), null);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new GatewayError(
              503,
              `instance ${row.id} is still waking after ${Math.round(wakeTimeoutMs / 1000)} s: retry in a moment`,
              typeOf(503),
              'instance_waking',
              null,
              { 'retry-after': '10' },
            ),
          ),
        wakeTimeoutMs,
      );
    });
    try {
      const status = await Promise.race([instanceHandle(client, row.id).executeUpdate(wakeInstanceUpdate), timeout]);
      if (!status.endpoint) throw new Error(`instance ${row.id} is ${status.state} without an endpoint`);
      return status.endpoint;
    } catch (error) {
      throw wakeRefusal(row.id, error);
    } finally {
      clearTimeout(timer);
    }
  }

  const touch = (id: string) =>
    db.instance.update({ where: { id }, data: { lastRequestAt: new Date() } }).catch(() => undefined);

  const upstreamHttp = upstreamClient();
  app.addHook('onClose', async () => upstreamHttp.close());

  await app.register(
    async (gateway) => {
      gateway.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
        if (error instanceof GatewayError) return reply.code(error.status).headers(error.headers).send(error.body);
        const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
        if (status >= 500) request.log.error({ err: error }, 'gateway fault');
        const message =
          status >= 500
            ? 'the gateway failed to answer: try again, and tell the operators if it persists'
            : error.message;
        return reply.code(status).send(new GatewayError(status, message, typeOf(status)).body);
      });
      gateway.setNotFoundHandler({}, (request, reply) =>
        reply
          .code(404)
          .send(
            new GatewayError(
              404,
              `unknown request URL: ${request.method} ${request.url.split('?')[0]}; the gateway serves GET /v1/models and POST /v1/chat/completions`,
              typeOf(404),
              'unknown_url',
            ).body,
          ),
      );

      const modelOf = (row: InstanceRow) => ({
        id: row.id,
        object: 'model' as const,
        created: Math.floor(row.createdAt.getTime() / 1000),
        owned_by: row.ownerHandle ?? 'computatrum',
        image: `${row.repository}:${row.reference}`,
        state: row.state,
        visibility: row.visibility,
      });

      gateway.get('/models', { config: { rateLimit } }, async (request) => {
        const rows = await visibleInstances(db, request.caller, { limit: 200 });
        return { object: 'list', data: rows.map(modelOf) };
      });

      gateway.get<{ Params: { id: string } }>('/models/:id', { config: { rateLimit } }, async (request) => {
        return modelOf(await resolveModel(db, request.caller, request.params.id));
      });

      gateway.post('/chat/completions', { config: { rateLimit }, bodyLimit: GATEWAY_BODY_LIMIT }, (request, reply) =>
        chat(request, reply),
      );
    },
    { prefix: GATEWAY_PREFIX },
  );

  async function chat(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const started = Date.now();
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    // JSON only: a cross-site form cannot send it without a preflight, so a browser session cannot be ridden.
    if (contentType !== 'application/json')
      throw new GatewayError(415, 'send the chat as JSON (content-type: application/json)', typeOf(415));
    const body = checkBody(request.body);
    const streaming = body.stream === true;
    const row = await resolveModel(db, request.caller, body.model);
    const interactionId = randomUUID();
    const caller = request.caller.account
      ? `account:${request.caller.account.handle}`
      : `visitor:${visitorId(request.ip)}`;
    // Within the caller's quotas for the image, before any money is held; the answer carries where they stand.
    let admitted: Admission | undefined;
    if (limiter && request.caller.role !== 'operator') {
      const call = {
        caller,
        handle: request.caller.account?.handle,
        image: row.repository,
        instanceId: row.id,
        interactionId,
      };
      try {
        admitted = await limiter.admit(call, callCost(body, metering?.defaultMaxTokens));
      } catch (error) {
        if (error instanceof QuotaExceeded)
          throw new GatewayError(error.status, error.message, typeOf(error.status), error.code, null, error.headers);
        throw error;
      }
      reply.headers(admitted.headers);
    }
    let held: HeldCall | undefined;
    /** Ends a call once: its quotas counted as what it used, and a priced call charged it (released when nothing reached the caller). */
    let ended = false;
    const endCall = async (used: { input: number; output: number } | undefined): Promise<bigint> => {
      if (ended) return 0n;
      ended = true;
      const { gatewayDuration, gatewayTokens } = metrics();
      gatewayDuration.record(Date.now() - started, { outcome: used ? 'answered' : 'unanswered' });
      if (used) {
        gatewayTokens.add(used.input, { kind: 'prompt' });
        gatewayTokens.add(used.output, { kind: 'completion' });
      }
      admitted
        ?.finish(used ? used.input + used.output : 0)
        .catch((error: unknown) =>
          request.log.warn({ err: error, interaction: interactionId }, 'correcting a quota failed'),
        );
      if (!held) return 0n;
      try {
        if (!used) {
          await metering!.release(held, 'nothing was answered');
          return 0n;
        }
        return await metering!.charge(held, used);
      } catch (error) {
        request.log.error({ err: error, interaction: interactionId }, 'ending a priced call failed');
        return 0n;
      }
    };
    // A priced call holds its worst case before the instance sees it, and is sent bounded by it.
    let sent: Record<string, unknown> = body;
    if (metering) {
      try {
        const terms = await metering.termsOf(request.caller, row);
        if (terms) {
          const priced = metering.forward(body);
          sent = priced.body;
          held = await metering.hold(terms, { interactionId, caller, instanceId: row.id }, priced.worst);
        }
      } catch (error) {
        await endCall(undefined);
        if (error instanceof UsageRefused)
          throw new GatewayError(error.status, error.message, typeOf(error.status), error.code);
        throw error;
      }
    }
    // lastRequestAt, from which the instance's idle timeout counts, is written as the request begins
    // and again as it ends. The first write goes out beside the request to the instance, not in front
    // of it, and is done before an answer that is not a stream; a stream's is made a moment later
    // (STREAM_TOUCH_DELAY_MS), by when its first events have usually gone out, and one shorter than
    // that is written once, at its end. With the embedded database (PGlite) a write runs on this
    // thread for milliseconds: in front of the instance's first events, it would hold them back.
    let touched: Promise<unknown> | undefined;
    const touchNow = () => (touched ??= touch(row.id));
    const touchLater = streaming ? setTimeout(touchNow, STREAM_TOUCH_DELAY_MS) : undefined;
    if (!streaming) void touchNow();
    /** Before an answer that is not a stream: the first write done. */
    const touchedNow = () => {
      clearTimeout(touchLater);
      return touchNow();
    };
    const raw = reply.raw;

    // The client going away aborts the wait's heartbeats and the instance's request.
    const upstreamAbort = new AbortController();
    const onClose = () => {
      if (!raw.writableFinished) upstreamAbort.abort();
    };
    raw.on('close', onClose);

    // A streaming answer is committed (200, event stream) once the first byte must go out.
    let committed = false;
    const commit = () => {
      if (committed) return;
      committed = true;
      reply.hijack();
      const set = Object.entries(reply.getHeaders()).filter(([, value]) => value !== undefined);
      raw.writeHead(200, {
        ...(Object.fromEntries(set) as OutgoingHttpHeaders),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        [INTERACTION_HEADER]: interactionId,
      });
    };
    /** A refusal: OpenAI's error JSON, or an error event once the stream has begun. */
    const refuse = async (error: GatewayError) => {
      if (!committed) return reply.code(error.status).headers(error.headers).send(error.body);
      await write(raw, `data: ${JSON.stringify(error.body)}\n\n`);
      raw.end();
      return reply;
    };

    const store = async (completion: string, usage: Prisma.InputJsonValue | undefined) => {
      const sampling = Object.fromEntries(SAMPLING.filter((key) => key in body).map((key) => [key, body[key]]));
      const data = {
        id: interactionId,
        instanceId: row.id,
        digest: row.digest ?? '',
        callerHandle: request.caller.account?.handle ?? null,
        visitorId: request.caller.account ? null : visitorId(request.ip),
        request: { model: body.model, messages: body.messages, ...sampling } as Prisma.InputJsonValue,
        completion,
        ...(usage ? { usage } : {}),
        latencyMs: Date.now() - started,
      };
      // A burst can find the database's connections all busy for a moment: the exchange is tried again
      // before it is given up (and logged), since feedback and datasets are made of it.
      for (let attempt = 1; ; attempt++) {
        try {
          await db.interaction.create({ data });
          return;
        } catch (error) {
          // An earlier attempt that was answered too late stored it after all.
          if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') return;
          if (attempt < STORE_ATTEMPTS) {
            await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
            continue;
          }
          request.log.error({ err: error, instance: row.id }, 'storing an interaction failed');
          return;
        }
      }
    };
    /** Where the instance serves, waking it (and keeping a waiting stream alive) when it is not ready. */
    const wakeHolding = async (): Promise<string> => {
      const heartbeat = streaming
        ? setInterval(() => {
            if (upstreamAbort.signal.aborted) return;
            commit();
            void write(raw, `: waking ${row.id}\n\n`);
          }, heartbeatMs)
        : undefined;
      try {
        return await wake(row);
      } finally {
        clearInterval(heartbeat);
      }
    };

    const forward = (endpoint: string) =>
      upstreamHttp.post(
        `${endpoint}/v1/chat/completions`,
        JSON.stringify({ ...sent, model: `${row.repository}:${row.reference}` }),
        streaming ? 'text/event-stream' : 'application/json',
        upstreamAbort.signal,
      );

    let upstream: UpstreamAnswer;
    try {
      let woken = false;
      let endpoint: string;
      if (row.state === 'ready' && row.endpoint) endpoint = row.endpoint;
      else {
        endpoint = await wakeHolding();
        woken = true;
      }
      try {
        upstream = await forward(endpoint);
      } catch (error) {
        // The row said ready but the process is gone (it went to sleep just now): wake it and try once more.
        if (woken || !unreachable(error)) throw error;
        upstream = await forward(await wakeHolding());
      }
    } catch (error) {
      raw.off('close', onClose);
      await Promise.all([touchedNow(), endCall(undefined)]);
      if (upstreamAbort.signal.aborted) {
        if (committed) raw.end();
        return reply;
      }
      if (error instanceof GatewayError) return refuse(error);
      if (unreachable(error))
        return refuse(
          new GatewayError(502, `instance ${row.id} did not answer: try again shortly`, typeOf(502), null, null, {
            'retry-after': '5',
          }),
        );
      throw error;
    }

    const passHeaders: Record<string, string> = {};
    const retryAfter = headerOf(upstream, 'retry-after');
    if (retryAfter) passHeaders['retry-after'] = retryAfter;
    const status = upstream.statusCode;

    // The instance refused (busy, a bad request): its status and error pass through as they are.
    if (!answerOk(upstream)) {
      raw.off('close', onClose);
      const text = await readText(upstream).catch(() => '');
      await Promise.all([touchedNow(), endCall(undefined)]);
      let parsed: { error?: { message?: string; type?: string; code?: string | null; param?: string | null } };
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        parsed = {};
      }
      const error = new GatewayError(
        status,
        parsed.error?.message ?? `instance ${row.id} answered ${status}: ${text.slice(0, 500)}`,
        parsed.error?.type ?? typeOf(status),
        parsed.error?.code ?? null,
        parsed.error?.param ?? null,
        passHeaders,
      );
      return refuse(error);
    }

    const isStream = (headerOf(upstream, 'content-type') ?? '').includes('text/event-stream');
    if (!streaming || !isStream) {
      let text: string;
      try {
        text = await readText(upstream);
      } catch (error) {
        raw.off('close', onClose);
        await Promise.all([touchedNow(), endCall(undefined)]);
        if (upstreamAbort.signal.aborted) return reply;
        throw error;
      }
      raw.off('close', onClose);
      await touchedNow();
      let answer: {
        choices?: { index?: number; message?: { content?: unknown }; delta?: { content?: unknown } }[];
        usage?: unknown;
      };
      try {
        answer = JSON.parse(text) as typeof answer;
      } catch {
        await endCall(undefined);
        return refuse(
          new GatewayError(502, `instance ${row.id} answered something that is not JSON: try again`, typeOf(502)),
        );
      }
      const first = answer.choices?.find((choice) => (choice.index ?? 0) === 0);
      const content = typeof first?.message?.content === 'string' ? first.message.content : '';
      const charged = await endCall(
        tokensUsed(answer.usage) ?? { input: promptCharacters(body.messages), output: [...content].length },
      );
      await store(content, usageOf(answer.usage));
      void touch(row.id);
      const charge = held && metering ? { [CHARGE_HEADER]: metering.format(charged) } : {};
      const send = () =>
        reply
          .code(status)
          .headers({ ...passHeaders, ...charge, [INTERACTION_HEADER]: interactionId })
          .type('application/json')
          .send(text);
      if (!committed) return send();
      // A streaming request that was kept waiting, answered with one JSON body: sent as one event.
      await write(raw, `data: ${text}\n\ndata: [DONE]\n\n`);
      raw.end();
      return reply;
    }

    // Streaming: the instance's events go to the client as they come, byte for byte, and are read for
    // the record once they have gone out.
    commit();
    const collector = new StreamCollector();
    const broke = await relayEvents(upstream, raw, collector);
    if (broke && !upstreamAbort.signal.aborted)
      request.log.warn({ err: broke, instance: row.id }, 'instance stream broke');
    raw.off('close', onClose);
    if (!raw.writableEnded) raw.end();
    if (raw.destroyed) upstreamAbort.abort();
    const { text, usage, contentEvents } = collector.finish();
    // What was streamed is charged: the instance's usage when it reported it, else (the client went
    // away first) the prompt and one token an event of answer that went out.
    await endCall(tokensUsed(usage) ?? { input: promptCharacters(body.messages), output: contentEvents });
    clearTimeout(touchLater);
    await touched;
    await store(text, usage);
    void touch(row.id);
    return reply;
  }
}
