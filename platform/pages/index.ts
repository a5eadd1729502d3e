// The platform's pages, rendered on the server: home, learn, hub, marketplace, the zookeeper (the
// people's client of hosted instances), the operators' console and the account forms. Every page
// works without JavaScript (plain HTML forms, urlencoded, with the CSRF token); their
// Content-Security-Policy allows no script at all, except the zookeeper's chat page, which may run its
// one script from /assets/ (it streams the answer as it comes; the form works without it).
import type { FastifyError, FastifyInstance } from 'fastify';
import { isResolvePath, type ResolveHandler } from '../oci-distribution';
import { registerAccountPages } from './account';
import type { PagesDeps } from './deps';
import { registerHomePages } from './home';
import { registerHubPages } from './hub';
import { registerMarketplacePages } from './marketplace';
import { registerOperatorPages } from './operator';
import { registerUsagePages } from './usage';
import { CHAT_SCRIPT, CHAT_SCRIPT_ETAG, CHAT_SCRIPT_PATH } from './scripts';
import { STYLESHEET, STYLESHEET_ETAG } from './stylesheet';
import { contentSecurityPolicy, sendProblem, viewOf } from './view';
import { registerZookeeperPages } from './zookeeper';
import { toRefusal } from '../errors';

export interface PagesOptions extends PagesDeps {
  /** The friendly download links' handler (oci-distribution.ts), reached through the pages' /hub/* route. */
  resolve: ResolveHandler;
}

export async function registerPages(app: FastifyInstance, options: PagesOptions): Promise<void> {
  await app.register(async (pages) => {
    // Helmet's default policy is for the API; pages get a stricter one (no scripts) that lets a form lead to Stripe.
    pages.addHook('onRequest', async (request, reply) => {
      reply.header('content-security-policy', contentSecurityPolicy(request.protocol === 'https'));
    });

    // A page that fails says so as a page; a refusal keeps its status, a fault is logged and is a 500.
    pages.setErrorHandler(async (error: FastifyError, request, reply) => {
      if (isResolvePath(request.url.split('?')[0]!)) throw error; // downloads keep their JSON errors
      const view = viewOf(request, reply);
      const refusal = toRefusal(error);
      const status =
        refusal?.status ??
        (error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500);
      if (status >= 500) {
        request.log.error({ err: error }, 'a page failed');
        return sendProblem(
          reply,
          view,
          500,
          'Something went wrong on our side',
          'The page could not be made. Nothing you did caused it; try again in a moment.',
        );
      }
      return sendProblem(
        reply,
        view,
        status,
        status === 429 ? 'Too many requests' : 'This could not be done',
        refusal?.message ?? error.message,
      );
    });

    pages.get('/assets/site.css', async (request, reply) => {
      reply.header('cache-control', 'public, max-age=31536000, immutable').header('etag', STYLESHEET_ETAG);
      if (request.headers['if-none-match'] === STYLESHEET_ETAG) return reply.code(304).send();
      return reply.header('content-type', 'text/css; charset=utf-8').send(STYLESHEET);
    });
    pages.get(CHAT_SCRIPT_PATH, async (request, reply) => {
      reply.header('cache-control', 'public, max-age=31536000, immutable').header('etag', CHAT_SCRIPT_ETAG);
      if (request.headers['if-none-match'] === CHAT_SCRIPT_ETAG) return reply.code(304).send();
      return reply.header('content-type', 'text/javascript; charset=utf-8').send(CHAT_SCRIPT);
    });

    registerHomePages(pages, options);
    registerAccountPages(pages, options);
    registerHubPages(pages, options);
    registerMarketplacePages(pages, options);
    registerZookeeperPages(pages, options);
    registerOperatorPages(pages, options);
    registerUsagePages(pages, options);
  });
}
