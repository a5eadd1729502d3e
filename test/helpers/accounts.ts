// A person on the platform as the tests need one: signed up through /auth/signup (a session
// cookie), with an API token from /auth/tokens, and a GraphQL caller that sends the token.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/prisma';
import { setRole } from '../../platform/accounts';

export type Headers = Record<string, string>;

export interface GraphQLAnswer<T = Record<string, unknown>> {
  data?: T | null;
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string } }>;
}

export interface TestAccount {
  handle: string;
  id: string;
  /** The browser's session: `{ cookie }`. */
  cookie: Headers;
  /** The CLI's API token: `{ authorization: 'Bearer ctr_…' }`. */
  token: Headers;
  /** A GraphQL operation with the token (POST, JSON). */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<GraphQLAnswer<T>>;
}

/** Posts a GraphQL operation through the app with the given headers. */
export async function graphqlAs<T = Record<string, unknown>>(
  app: FastifyInstance,
  headers: Headers,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLAnswer<T> & { status: number }> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/graphql',
    headers: { 'content-type': 'application/json', ...headers },
    payload: JSON.stringify({ query, variables }),
  });
  return { status: response.statusCode, ...response.json<GraphQLAnswer<T>>() };
}

/**
 * Signs `handle` up (an operator when `operator` gives the database to promote it in), with an email at
 * example.org or at `emailDomain` (tests of sponsors' grants keep their eligible people to their own domain).
 */
export async function signUpAccount(
  app: FastifyInstance,
  handle: string,
  operator?: { db: Database },
  emailDomain = 'example.org',
): Promise<TestAccount> {
  const response = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { handle, email: `${handle}@${emailDomain}`, password: 'correct horse battery' },
  });
  if (response.statusCode !== 201)
    throw new Error(`sign-up of ${handle} answered ${response.statusCode}: ${response.body}`);
  const id = response.json<{ account: { id: string } }>().account.id;
  if (operator) await setRole(operator.db, handle, 'operator');
  const cookie = {
    cookie: `computatrum_session=${response.cookies.find((c) => c.name === 'computatrum_session')!.value}`,
  };
  const created = await app.inject({ method: 'POST', url: '/auth/tokens', headers: cookie, payload: { name: 'cli' } });
  const token = { authorization: `Bearer ${created.json<{ token: string }>().token}` };
  const gql = async <T>(query: string, variables?: Record<string, unknown>): Promise<GraphQLAnswer<T>> => {
    const { status: _status, ...answer } = await graphqlAs<T>(app, token, query, variables);
    return answer;
  };
  return { handle, id, cookie, token, gql };
}
