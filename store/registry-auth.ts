// How computatrum authenticates to an OCI registry, for every client that talks to one (the registry
// store, `pull`): Basic credentials as sent so far, a static Bearer token, and the Docker Registry
// v2 token exchange that GHCR, Docker Hub, Quay and Harbor demand. On a 401 carrying
// `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, a token for the scopes the request needs is
// fetched from the realm (anonymously, or with the Basic credentials), cached per service and scope
// set until `expires_in` (60 s when absent) less a margin, and the request is retried once with it.
//
// Where secrets go: credentials and tokens are sent only to the registry's own origin and to the
// realm it names. A realm must be https, unless the registry itself is reached over plain http (the
// operator already sends the credentials unencrypted to it) or the realm is on loopback. Nothing
// here logs or puts into a message a password, a token or an Authorization header.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { StoreError } from './types';

export interface RegistryLogin {
  username?: string;
  password?: string;
  /** A token the operator already holds, sent as it is (`Authorization: Bearer <token>`); no exchange. */
  token?: string;
}

export interface RegistryAuthOptions extends RegistryLogin {
  /** The registry's base URL, e.g. https://ghcr.io. */
  url: string;
  /** Milliseconds since the epoch, for token expiry (tests pass a clock they move). */
  now?: () => number;
  /** Debug lines about token exchanges: never a secret. */
  logger?: Pick<Logger, 'debug'>;
}

/** One challenge of a `WWW-Authenticate` header: its scheme (lowercase) and parameters (names lowercase). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), where the challenge has one instead of parameters. */
  token68?: string;
}

/** A request to a registry: a body that is a stream is sent once (see RegistryAuth.fetch). */
export type RegistryRequestInit = Omit<RequestInit, 'body'> & { body?: Readable | Buffer; duplex?: 'half' };

/** What a registry's Bearer challenge named: where tokens come from, and for which service. */
interface TokenService {
  realm: URL;
  service: string | undefined;
}

interface CachedToken {
  header: string;
  /** The service key and the scopes it was asked for (what it grants may be less). */
  service: string;
  scopes: string[];
  /** When to stop sending it (ms): the token's lifetime less a margin. */
  renewAt: number;
}

/** A token outliving a request that is already on its way; at most this much, or a quarter of its life. */
const RENEW_MARGIN_MS = 10_000;
/** The spec's lifetime of a token whose answer gives none. */
const DEFAULT_EXPIRES_IN_S = 60;

export const pullScope = (repo: string) => `repository:${repo}:pull`;
export const pushScope = (repo: string) => `repository:${repo}:pull,push`;
export const CATALOG_SCOPE = 'registry:catalog:*';

export class RegistryAuth {
  readonly origin: string;
  private readonly location: string;
  private readonly protocol: string;
  private readonly username: string | undefined;
  private readonly password: string | undefined;
  private readonly staticToken: string | undefined;
  private readonly now: () => number;
  private readonly logger: Pick<Logger, 'debug'> | undefined;
  /** Learned from the registry's first Bearer challenge; from then on every request carries a token. */
  private tokenService: TokenService | undefined;
  private probed = false;
  private readonly tokens = new Map<string, CachedToken>();
  /** Exchanges in flight, so parallel requests for the same scopes share one. */
  private readonly exchanges = new Map<string, Promise<CachedToken>>();

  constructor(options: RegistryAuthOptions) {
    const url = new URL(options.url);
    this.origin = url.origin;
    this.protocol = url.protocol;
    this.location = options.url.replace(/\/+$/, '');
    this.username = options.username;
    this.password = options.password;
    this.staticToken = options.token || undefined;
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
  }

  /** Tokens kept for reuse (each live until its renewal time). */
  get cachedTokens(): number {
    return this.tokens.size;
  }

  private get hasCredentials(): boolean {
    return this.username !== undefined || this.password !== undefined;
  }

  private get who(): string {
    return this.hasCredentials ? `user ${JSON.stringify(this.username ?? '')}` : 'anonymous';
  }

  /**
   * The Authorization header for a request to `url` that needs `scopes`: none for another origin;
   * a token once the registry is known to want one (exchanged now when none is cached); otherwise
   * the static token or the Basic credentials, or nothing.
   */
  async authorization(url: string, scopes: string[]): Promise<string | undefined> {
    if (new URL(url).origin !== this.origin) return undefined;
    if (this.staticToken) return `Bearer ${this.staticToken}`;
    if (this.tokenService) return (await this.token(this.tokenService, normalizeScopes(scopes))).header;
    return this.basic();
  }

  /**
   * Sends a request to the registry with its authorization, and after a 401 that names a token
   * service, once more with a token for the scopes asked (theirs and the registry's). A body that is
   * a stream cannot be sent twice: the token service is learned first (`GET /v2/`) instead. Answers
   * the response, a refusal included, for the caller to read.
   */
  async fetch(url: string, init: RegistryRequestInit, scopes: string[]): Promise<Response> {
    const own = new URL(url).origin === this.origin;
    const streamed = init.body !== undefined && !Buffer.isBuffer(init.body);
    if (own && streamed) await this.learnTokenService();
    const sent = await this.authorization(url, scopes);
    const first = await fetch(url, withAuthorization(init, sent));
    if (first.status !== 401 || !own || streamed) return first;
    const retry = await this.afterRefusal(first, scopes, sent);
    if (retry === undefined) return first;
    await first.body?.cancel().catch(() => undefined);
    return fetch(url, withAuthorization(init, retry));
  }

  /**
   * After a 401: the header to try once more with, or undefined when another try cannot help (a
   * Basic challenge, a static token, a token just issued for these very scopes).
   */
  async afterRefusal(res: Response, scopes: string[], sent: string | undefined): Promise<string | undefined> {
    if (this.staticToken) return undefined;
    const bearer = bearerChallenge(res);
    const service = bearer && this.tokenServiceOf(bearer);
    if (!service) return undefined;
    const wanted = normalizeScopes([...scopes, ...(bearer.params.scope ?? '').split(' ')]);
    this.tokenService = service;
    const refused = sent?.startsWith('Bearer ') ? this.forget(sent) : undefined;
    // A token asked for exactly these scopes was refused for what it grants: asking again gives the same.
    const same = refused?.service === serviceKey(service) && refused.scopes.join(' ') === wanted.join(' ');
    if (same && bearer.params.error === 'insufficient_scope') return undefined;
    const token = await this.token(service, wanted);
    return token.header === sent ? undefined : token.header;
  }

  /**
   * A token for `scopes` in place of `sent`, which the registry refused (a download that got a 401
   * half way through a long pull); undefined where the registry hands out no tokens.
   */
  async renew(scopes: string[], sent: string | undefined): Promise<string | undefined> {
    if (!this.tokenService || this.staticToken) return undefined;
    if (sent !== undefined) this.forget(sent);
    const token = await this.token(this.tokenService, normalizeScopes(scopes));
    return token.header === sent ? undefined : token.header;
  }

  /**
   * What to tell the user when a registry that hands out tokens refused a request (401/403) even
   * so; undefined for other registries, whose callers know what to say.
   */
  refusalAdvice(res: Response): string | undefined {
    const bearer = bearerChallenge(res);
    const service = bearer && !this.staticToken ? this.tokenServiceOf(bearer) : undefined;
    if (!bearer || !service) return undefined;
    const scope = bearer.params.scope ? ` (${bearer.params.scope})` : '';
    if (!this.hasCredentials) {
      return `the token service ${realmName(service)} grants anonymous callers no access to that${scope}: set COMPUTATRUM_REGISTRY_USERNAME and COMPUTATRUM_REGISTRY_PASSWORD (GHCR: a GitHub user and a personal access token)`;
    }
    return `the token that ${realmName(service)} issued to ${this.who} does not grant that${scope}: give this account access to the repository, or use credentials that have it`;
  }

  /** Learns whether the registry wants tokens before a body that cannot be sent twice goes out. */
  private async learnTokenService(): Promise<void> {
    if (this.tokenService || this.staticToken || this.probed) return;
    this.probed = true;
    const probe = await fetch(`${this.location}/v2/`, withAuthorization({ method: 'GET' }, this.basic()));
    await probe.body?.cancel().catch(() => undefined);
    if (probe.status !== 401) return;
    const bearer = bearerChallenge(probe);
    const service = bearer && this.tokenServiceOf(bearer);
    if (service) this.tokenService = service;
  }

  private basic(): string | undefined {
    if (!this.hasCredentials) return undefined;
    return `Basic ${Buffer.from(`${this.username ?? ''}:${this.password ?? ''}`).toString('base64')}`;
  }

  /** The token service a Bearer challenge names, or undefined when it names none (a realm that is no URL). */
  private tokenServiceOf(challenge: Challenge): TokenService | undefined {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm ?? '');
    } catch {
      return undefined; // `Bearer realm="computatrum"`: a platform's own token, not an exchange
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') return undefined;
    return { realm, service: challenge.params.service };
  }

  /** A live token for `scopes`: one asked for them, or for more on the same resources (push covers pull). */
  private token(service: TokenService, scopes: string[]): Promise<CachedToken> {
    const key = cacheKey(service, scopes);
    const cached = [this.tokens.get(key), ...this.tokens.values()].find(
      (token) =>
        token !== undefined &&
        this.now() < token.renewAt &&
        token.service === serviceKey(service) &&
        covers(token.scopes, scopes),
    );
    if (cached) return Promise.resolve(cached);
    const running = this.exchanges.get(key);
    if (running) return running;
    const exchange = this.exchange(service, scopes)
      .then((token) => {
        // Tokens past renewal are never sent again: dropped here, so the cache holds only live ones
        // however many repositories the process touches.
        for (const [cachedKey, cached] of this.tokens) if (this.now() >= cached.renewAt) this.tokens.delete(cachedKey);
        this.tokens.set(key, token);
        return token;
      })
      .finally(() => this.exchanges.delete(key));
    this.exchanges.set(key, exchange);
    return exchange;
  }

  /** GET <realm>?service=…&scope=…: the token endpoint of the Docker Registry v2 token spec. */
  private async exchange(service: TokenService, scopes: string[]): Promise<CachedToken> {
    if (service.realm.protocol === 'http:' && this.protocol !== 'http:' && !isLoopback(service.realm.hostname)) {
      throw new StoreError(
        'DENIED',
        `registry ${this.location} sends its clients for tokens to ${realmName(service)} over plain http: refusing to ask there; its token service must be https`,
      );
    }
    const url = new URL(service.realm);
    if (service.service !== undefined) url.searchParams.set('service', service.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    if (this.username) url.searchParams.set('account', this.username);
    const basic = this.basic();
    const started = this.now();
    let res: Response;
    try {
      // A redirect would carry the credentials to a host the registry did not name.
      res = await fetch(url, withAuthorization({ method: 'GET', redirect: basic ? 'manual' : 'follow' }, basic));
    } catch (error) {
      throw new StoreError(
        'UNREACHABLE',
        `cannot reach the token service ${realmName(service)} of registry ${this.location}: ${describeCause(error)}`,
      );
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => undefined);
      throw new StoreError('DENIED', this.credentialsRefused(service, res.status, scopes));
    }
    const body = res.ok ? ((await res.json().catch(() => undefined)) as TokenAnswer | undefined) : undefined;
    if (!res.ok) await res.body?.cancel().catch(() => undefined);
    const token = body?.token || body?.access_token;
    if (!res.ok || typeof token !== 'string') {
      throw new Error(
        `the token service ${realmName(service)} of registry ${this.location} answered ${res.status}${res.ok ? ' without a token' : ''} when asked for ${scopes.join(' ') || 'a token'}`,
      );
    }
    const lifetimeMs = (positive(body?.expires_in) ?? DEFAULT_EXPIRES_IN_S) * 1000;
    const renewAt = started + lifetimeMs - Math.min(RENEW_MARGIN_MS, lifetimeMs / 4);
    this.logger?.debug(
      {
        registry: this.location,
        realm: realmName(service),
        service: service.service,
        scopes,
        as: this.who,
        expiresInSeconds: lifetimeMs / 1000,
      },
      'registry token issued',
    );
    return { header: `Bearer ${token}`, renewAt, service: serviceKey(service), scopes };
  }

  /** Drops a token the registry refused; answers what it was cached as. */
  private forget(header: string): CachedToken | undefined {
    for (const [key, token] of this.tokens) {
      if (token.header !== header) continue;
      this.tokens.delete(key);
      return token;
    }
    return undefined;
  }

  private credentialsRefused(service: TokenService, status: number, scopes: string[]): string {
    const refused = `the token service ${realmName(service)} of registry ${this.location} refused`;
    if (!this.hasCredentials) {
      return `${refused} an anonymous token for ${scopes.join(' ')} (${status}): set COMPUTATRUM_REGISTRY_USERNAME and COMPUTATRUM_REGISTRY_PASSWORD (or _PASSWORD_FILE) to an account of that registry`;
    }
    return `${refused} the credentials of ${this.who} (${status}): check COMPUTATRUM_REGISTRY_USERNAME and COMPUTATRUM_REGISTRY_PASSWORD (or _PASSWORD_FILE); for GHCR, a GitHub user and a personal access token with read:packages (and write:packages to push)`;
  }
}

interface TokenAnswer {
  token?: unknown;
  access_token?: unknown;
  expires_in?: unknown;
}

/** The first Bearer challenge of a 401, if it has one. */
function bearerChallenge(res: Response): Challenge | undefined {
  return parseChallenges(res.headers.get('www-authenticate') ?? '').find((c) => c.scheme === 'bearer');
}

function withAuthorization(init: RegistryRequestInit, authorization: string | undefined): RequestInit {
  const headers = {
    ...(init.headers as Record<string, string> | undefined),
    ...(authorization ? { authorization } : {}),
  };
  return { ...init, headers } as RequestInit;
}

const serviceKey = (service: TokenService) => `${service.realm.href}\n${service.service ?? ''}`;
const cacheKey = (service: TokenService, scopes: string[]) => `${serviceKey(service)}\n${scopes.join(' ')}`;

/** Whether a token asked for `held` scopes was asked for every action of `wanted` (both normalized). */
function covers(held: string[], wanted: string[]): boolean {
  const actions = new Map(held.map((scope) => splitScope(scope)));
  return wanted.every((scope) => {
    const [resource, want] = splitScope(scope);
    const have = actions.get(resource);
    return have !== undefined && want.every((action) => have.includes(action) || have.includes('*'));
  });
}

function splitScope(scope: string): [string, string[]] {
  const last = scope.lastIndexOf(':');
  return [scope.slice(0, last), scope.slice(last + 1).split(',')];
}

/**
 * Scopes as one sorted set, the actions on one resource merged: `repository:a:pull` and
 * `repository:a:pull,push` are `repository:a:pull,push`.
 */
export function normalizeScopes(scopes: string[]): string[] {
  const actions = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const last = scope.lastIndexOf(':');
    const first = scope.indexOf(':');
    if (first <= 0 || last === first) continue; // not type:name:actions
    const resource = scope.slice(0, last);
    const set = actions.get(resource) ?? new Set<string>();
    for (const action of scope.slice(last + 1).split(',')) if (action) set.add(action);
    actions.set(resource, set);
  }
  return [...actions].map(([resource, set]) => `${resource}:${[...set].sort().join(',')}`).sort();
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)/y;

/**
 * The challenges of a `WWW-Authenticate` header (RFC 9110 §11.6.1): several per header, comma
 * separated like their parameters, values as tokens or quoted strings (commas and escaped quotes
 * inside them). A malformed tail is dropped, not guessed at.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let at = 0;
  const skipSpace = () => {
    while (header[at] === ' ' || header[at] === '\t') at++;
  };
  const match = (pattern: RegExp): string | undefined => {
    pattern.lastIndex = at;
    const found = pattern.exec(header);
    if (!found) return undefined;
    at = pattern.lastIndex;
    return found[0];
  };
  const quoted = (): string | undefined => {
    let value = '';
    for (at++; at < header.length; at++) {
      const char = header[at]!;
      if (char === '"') {
        at++;
        return value;
      }
      if (char === '\\') at++;
      value += header[at] ?? '';
    }
    return undefined; // unterminated
  };

  while (at < header.length) {
    skipSpace();
    if (header[at] === ',') {
      at++;
      continue;
    }
    const scheme = match(TOKEN);
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skipSpace();
    const token68 = match(TOKEN68);
    if (token68 !== undefined) {
      challenge.token68 = token68.trim();
      continue;
    }
    // Parameters until the end, or a word that is not `name=`: the next challenge's scheme.
    let separated = true;
    while (separated) {
      skipSpace();
      const start = at;
      const name = match(TOKEN);
      skipSpace();
      if (!name || header[at] !== '=') {
        at = start;
        break;
      }
      at++;
      skipSpace();
      const value = header[at] === '"' ? quoted() : (match(TOKEN) ?? '');
      if (value === undefined) return challenges; // an unterminated quote: the rest cannot be read
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      separated = header[at] === ',';
      if (separated) at++;
    }
    if (!separated && at < header.length) break; // `realm="a"x`: malformed from here on
  }
  return challenges;
}

/** The realm as messages name it: its address without the query. */
function realmName(service: TokenService): string {
  return `${service.realm.origin}${service.realm.pathname}`;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

function describeCause(error: unknown): string {
  const cause = (error as Error & { cause?: Error & { code?: string; errors?: Error[] } }).cause;
  if (!cause) return (error as Error).message;
  return cause.message || cause.errors?.[0]?.message || cause.code || String(cause);
}
