// A token server for tests, speaking the Docker Registry v2 token protocol as GHCR's, Docker Hub's
// and Harbor's do: `GET /token?service=…&scope=…&scope=…` with Basic credentials or none, answering
// `{ token, access_token, expires_in, issued_at }` with a JWT signed (RS256) by a key whose
// self-signed certificate is the registry's rootcertbundle. CNCF Distribution 2.8 (Debian's
// docker-registry) trusts a token whose header carries that certificate as its `x5c` chain.
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The actions `account` (undefined: anonymous) may take on the resource `type`/`name`. */
export type Grant = (account: string | undefined, type: string, name: string) => string[];

export interface TokenServerOptions {
  /** user → password */
  users: Record<string, string>;
  grant: Grant;
  /** Seconds each token lives, as `expires_in` says and its `exp` claim holds. */
  expiresIn?: number;
}

/** One request the token server answered, as tests count and inspect them. */
export interface TokenRequest {
  account: string | undefined;
  service: string | null;
  scopes: string[];
  status: number;
  /** `type:name:actions` actually granted. */
  granted: string[];
}

export interface TokenServer {
  /** The realm a registry names in its challenge. */
  realm: string;
  service: string;
  issuer: string;
  /** The certificate (PEM file) the registry trusts tokens by. */
  certFile: string;
  requests: TokenRequest[];
  /** Every token issued, so a test can look for it where it must never be. */
  issued: string[];
  /**
   * The answer's shape, changeable between requests: both `token` and `access_token` (as Docker
   * Hub answers), or only one; with `expires_in`, or without it (the spec's default is 60 s then).
   */
  answer: {
    fields: Array<'token' | 'access_token'>;
    expiresIn: boolean;
    /** How many of the next tokens to issue already expired (the registry refuses them), as a revoked one is. */
    alreadyExpired: number;
  };
  /** The registry's `auth` configuration for this server. */
  registryAuth(): Record<string, unknown>;
  stop(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'computatrum-token-server-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  await run('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2'],
    ...['-keyout', keyFile, '-out', certFile, '-subj', '/CN=computatrum test token issuer'],
  ]);
  const key = createPrivateKey(await readFile(keyFile));
  const chain = [new X509Certificate(await readFile(certFile)).raw.toString('base64')];
  const service = 'computatrum-test-registry';
  const issuer = 'computatrum-test-token-issuer';
  const requests: TokenRequest[] = [];
  const issued: string[] = [];
  const shape: TokenServer['answer'] = { fields: ['token', 'access_token'], expiresIn: true, alreadyExpired: 0 };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const scopes = url.searchParams.getAll('scope');
    const record = (status: number, account?: string, granted: string[] = []) =>
      requests.push({ account, service: url.searchParams.get('service'), scopes, status, granted });
    if (url.pathname !== '/token') return answer(404, { details: 'not found' });
    const login = basicLogin(req.headers.authorization);
    if (login === 'malformed' || (login && options.users[login.user] !== login.password)) {
      record(401, login === 'malformed' ? undefined : login.user);
      return answer(401, { details: 'incorrect username or password' });
    }
    const account = login?.user;
    const access = scopes.flatMap((scope) => grantedAccess(scope, account, options.grant));
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn ?? 300;
    const expired = shape.alreadyExpired > 0;
    if (expired) shape.alreadyExpired--;
    const token = signJwt(key, chain, {
      iss: issuer,
      sub: account ?? '',
      aud: service,
      exp: expired ? now - 600 : now + expiresIn,
      nbf: now - 900,
      iat: now,
      jti: randomUUID(),
      access,
    });
    issued.push(token);
    record(
      200,
      account,
      access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`),
    );
    answer(200, {
      ...Object.fromEntries(shape.fields.map((field) => [field, token])),
      ...(shape.expiresIn ? { expires_in: expiresIn } : {}),
      issued_at: new Date(now * 1000).toISOString(),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;

  return {
    realm,
    service,
    issuer,
    certFile,
    requests,
    issued,
    answer: shape,
    registryAuth: () => ({ token: { realm, service, issuer, rootcertbundle: certFile } }),
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function basicLogin(header: string | undefined): { user: string; password: string } | 'malformed' | undefined {
  if (header === undefined) return undefined;
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (!match) return 'malformed';
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The part of `type:name:actions` that `account` may have; nothing when it may have none of it. */
function grantedAccess(scope: string, account: string | undefined, grant: Grant): Access[] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return [];
  const [type, name] = [scope.slice(0, first), scope.slice(first + 1, last)];
  const allowed = new Set(grant(account, type, name));
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((action) => allowed.has(action) || allowed.has('*'));
  return actions.length > 0 ? [{ type, name, actions }] : [];
}

function signJwt(key: KeyObject, chain: string[], claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signed = `${encode({ typ: 'JWT', alg: 'RS256', x5c: chain })}.${encode(claims)}`;
  return `${signed}.${sign('sha256', Buffer.from(signed), key).toString('base64url')}`;
}
