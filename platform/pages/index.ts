// The platform's pages, rendered on the server: home, learn, hub, marketplace, zookeeper and the
// account forms. Every page works without JavaScript (plain HTML forms, urlencoded, with the CSRF
// token); their Content-Security-Policy allows no script at all.
import type { FastifyError, FastifyInstance } from 'fastify';
import { isResolvePath, type ResolveHandler } from '../oci-distribution';
import { registerAccountPages } from './account';
import type { PagesDeps } from './deps';
import { registerHomePages } from './home';
import { registerHubPages } from './hub';
import { registerMarketplacePages } from './marketplace';
import { STYLESHEET, STYLESHEET_ETAG } from './stylesheet';
import { sendProblem, viewOf } from './view';
import { registerZookeeperPages } from './zookeeper';
import { toRefusal } from '../errors';

export interface PagesOptions extends PagesDeps {
  /** The friendly download links' handler (oci-distribution.ts), reached through the pages' /hub/* route. */
  resolve: ResolveHandler;
}

/** Where forms may send the browser: here, and Stripe's Checkout and onboarding pages (after a 303). */
const FORM_TARGETS = "'self' https://checkout.stripe.com https://connect.stripe.com";

function contentSecurityPolicy(https: boolean): string {
  return [
    "default-src 'self'",
    "script-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    `form-action ${FORM_TARGETS}`,
    ...(https ? ['upgrade-insecure-requests'] : []),
  ].join('; ');
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

    registerHomePages(pages, options);
    registerAccountPages(pages, options);
    registerHubPages(pages, options);
    registerMarketplacePages(pages, options);
    registerZookeeperPages(pages, options);
  });
}
