// POST /v1/feedback: feedback on an answer right after the exchange, by whoever had it: an API token's
// account, a signed-in browser (the chat page), or the anonymous visitor of a public instance (known
// by address, as the gateway stored the exchange). Answered and refused in OpenAI's error shape, like
// the rest of /v1, with the gateway's rate limits per caller.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { toRefusal } from './errors';
import { FEEDBACK_LIMITS, giveFeedback } from './feedback';

/** A correction at its limit, in UTF-8, with room for the rest of the body; more is refused unread. */
export const FEEDBACK_BODY_LIMIT = 4 * FEEDBACK_LIMITS.correction + 4 * FEEDBACK_LIMITS.comment + 4096;
/** Anonymous visitors give at most this much feedback a minute each: judging is quick, flooding is not. */
export const ANONYMOUS_FEEDBACK_PER_MINUTE = 20;

const ERROR_TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
};

const openAiError = (status: number, message: string, code: string | null = null) => ({
  error: { message, type: ERROR_TYPE[status] ?? 'server_error', param: null, code },
});

export async function registerFeedbackRoute(
  app: FastifyInstance,
  options: {
    db: Parameters<typeof giveFeedback>[0];
    visitorId: (address: string) => string;
    perMinute: number;
    anonymousPerMinute?: number;
  },
): Promise<void> {
  const anonymous = Math.min(options.perMinute, options.anonymousPerMinute ?? ANONYMOUS_FEEDBACK_PER_MINUTE);
  await app.register(async (route) => {
    route.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
      const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
      if (status >= 500) request.log.error({ err: error }, 'feedback fault');
      const message =
        error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? `the feedback is larger than ${FEEDBACK_BODY_LIMIT} bytes: a correction is at most ${FEEDBACK_LIMITS.correction} characters and a comment ${FEEDBACK_LIMITS.comment}`
          : status >= 500
            ? 'the feedback could not be stored: try again, and tell the operators if it persists'
            : error.message;
      return reply.code(status).send(openAiError(status, message));
    });
    route.post<{ Body: { interaction?: unknown; label?: unknown; correction?: unknown; comment?: unknown } }>(
      '/v1/feedback',
      {
        bodyLimit: FEEDBACK_BODY_LIMIT,
        config: {
          rateLimit: {
            max: (request: FastifyRequest) => (request.caller?.account ? options.perMinute : anonymous),
            keyGenerator: (request: FastifyRequest) =>
              request.caller?.account
                ? `feedback:account:${request.caller.account.handle}`
                : `feedback:address:${request.ip}`,
          },
        },
      },
      async (request, reply) => {
        // JSON only: a page on another site cannot send it with this browser's cookie (no CORS is granted),
        // while it could post a form.
        if ((request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/json')
          return reply.code(415).send(openAiError(415, 'send JSON (content-type: application/json)'));
        const body = request.body;
        const text = (value: unknown, field: string): string | undefined => {
          if (value === undefined || value === null) return undefined;
          if (typeof value !== 'string') throw Object.assign(new Error(`${field} is a string`), { statusCode: 400 });
          return value;
        };
        if (!body || typeof body !== 'object')
          return reply
            .code(400)
            .send(
              openAiError(
                400,
                'send JSON: {"interaction": "<id>", "label": "good" | "bad", "correction"?, "comment"?}',
              ),
            );
        const interaction = text(body.interaction, 'interaction');
        const label = text(body.label, 'label');
        if (!interaction || !label)
          return reply
            .code(400)
            .send(
              openAiError(400, 'interaction (the x-computatrum-interaction id) and label (good or bad) are required'),
            );
        const correction = text(body.correction, 'correction');
        const comment = text(body.comment, 'comment');
        try {
          const given = await giveFeedback(
            options.db,
            request.caller,
            {
              interaction,
              label,
              ...(correction !== undefined ? { correction } : {}),
              ...(comment !== undefined ? { comment } : {}),
            },
            options.visitorId(request.ip),
          );
          return {
            id: given.id,
            object: 'feedback',
            interaction: given.interactionId,
            label: given.label,
            correction: given.correction,
            comment: given.comment,
            created: Math.floor(given.createdAt.getTime() / 1000),
            updated: Math.floor(given.updatedAt.getTime() / 1000),
          };
        } catch (error) {
          const refusal = toRefusal(error);
          if (!refusal) throw error;
          return reply
            .code(refusal.status)
            .send(openAiError(refusal.status, refusal.message, refusal.code.toLowerCase()));
        }
      },
    );
  });
}
