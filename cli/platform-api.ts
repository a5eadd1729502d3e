// The platform's API as the CLI uses it: GraphQL at /api/graphql and recording uploads, as the
// account whose token is in COMPUTATRUM_TOKEN. Every failure becomes a UserError that says what to do.
import type { Config } from '../runtime/config';
import { platformUrl, UserError } from './common';

interface GraphQLAnswer<T> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

export interface PlatformApi {
  readonly url: string;
  graphql<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** POSTs `body` to a platform path and answers its JSON. */
  post<T>(path: string, body: Buffer, contentType: string): Promise<T>;
}

/** The platform at --from (or this computatrum's own); `signedIn` requires COMPUTATRUM_TOKEN. */
export function platformApi(config: Config, options: { from?: string; signedIn?: boolean } = {}): PlatformApi {
  const url = platformUrl(config, options.from);
  if (options.signedIn && !config.apiToken) {
    throw new UserError(
      `this needs your account: create an API token (sign in at ${url}/auth/account, or POST ${url}/auth/tokens) and set COMPUTATRUM_TOKEN`,
    );
  }
  const authorization: Record<string, string> = config.apiToken ? { authorization: `Bearer ${config.apiToken}` } : {};

  const send = async (path: string, init: { body: string | Buffer; contentType: string }): Promise<Response> => {
    try {
      return await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': init.contentType, ...authorization },
        body: init.body,
      });
    } catch (error) {
      throw new UserError(
        `cannot reach the platform at ${url} (${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}): is \`computatrum up\` running, or is --from right?`,
      );
    }
  };
  const refusedToken = (response: Response) =>
    response.status === 401
      ? new UserError(
          `the platform at ${url} does not know this API token (COMPUTATRUM_TOKEN): it may be revoked; create a new one`,
        )
      : undefined;

  return {
    url,
    async graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
      const response = await send('/api/graphql', {
        body: JSON.stringify({ query, variables }),
        contentType: 'application/json',
      });
      const answer = (await response.json().catch(() => ({}))) as GraphQLAnswer<T> & { error?: string };
      if (response.status === 401 && !answer.errors) throw refusedToken(response)!;
      const error = answer.errors?.[0];
      if (error) {
        const code = error.extensions?.code;
        const advice = code === 'UNAUTHENTICATED' ? ' (set COMPUTATRUM_TOKEN to an API token of your account)' : '';
        throw new UserError(`refused by the platform${code ? ` (${code})` : ''}: ${error.message}${advice}`);
      }
      if (!answer.data)
        throw new UserError(
          `the platform at ${url} answered ${response.status} without data${answer.error ? `: ${answer.error}` : ''}`,
        );
      return answer.data;
    },
    async post<T>(path: string, body: Buffer, contentType: string): Promise<T> {
      const response = await send(path, { body, contentType });
      const answer = (await response.json().catch(() => ({}))) as T & { error?: string; code?: string };
      if (response.status === 401) throw refusedToken(response)!;
      if (response.status === 413)
        throw new UserError(`the platform refused the upload as too large (${body.length} bytes)`);
      if (!response.ok)
        throw new UserError(
          `refused by the platform (${answer.code ?? response.status}): ${answer.error ?? response.statusText}`,
        );
      return answer;
    },
  };
}
