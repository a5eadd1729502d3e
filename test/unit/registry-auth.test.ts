// The pure parts of the registry's token auth: reading WWW-Authenticate as registries write it,
// merging scopes, and refusing a plain-http token service before anything is sent to it.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryAuth, normalizeScopes, parseChallenges } from '../../store/registry-auth';

describe('WWW-Authenticate', () => {
  test('a Bearer challenge as Distribution, GHCR and Docker Hub write it', () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/alpine:pull',
        },
      },
    ]);
  });

  test('commas and escaped quotes inside quoted values, spaces around separators, token values', () => {
    expect(
      parseChallenges(
        'Bearer realm="https://h/t" , scope="repository:a:pull,push repository:b:pull", error=insufficient_scope, note="say \\"hi\\""',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://h/t',
          scope: 'repository:a:pull,push repository:b:pull',
          error: 'insufficient_scope',
          note: 'say "hi"',
        },
      },
    ]);
  });

  test('several challenges in one header, with and without spaces after the comma', () => {
    expect(parseChallenges('Basic realm="Registry Realm",Bearer realm="https://h/token",service="s"')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: { realm: 'https://h/token', service: 's' } },
    ]);
    expect(parseChallenges('Negotiate abc==, BEARER Realm="https://h/token", Basic')).toEqual([
      { scheme: 'negotiate', params: {}, token68: 'abc==' },
      { scheme: 'bearer', params: { realm: 'https://h/token' } },
      { scheme: 'basic', params: {} },
    ]);
  });

  test('a malformed tail is dropped, what came before is kept', () => {
    expect(parseChallenges('Basic realm="a"x, Bearer realm="b"')).toEqual([
      { scheme: 'basic', params: { realm: 'a' } },
    ]);
    expect(parseChallenges('Bearer realm="https://h/t", service="unterminated')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://h/t' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});

test('scopes are one sorted set, the actions on a resource merged', () => {
  expect(
    normalizeScopes([
      'repository:trainers/alice/x:pull,push',
      'repository:germline/a:pull',
      'repository:trainers/alice/x:pull',
      '',
      'nonsense',
    ]),
  ).toEqual(['repository:germline/a:pull', 'repository:trainers/alice/x:pull,push']);
});

test('a registry on https that sends for tokens to a plain-http realm elsewhere is refused before the realm is asked', async () => {
  const auth = new RegistryAuth({ url: 'https://registry.example', username: 'alice', password: 'pat-secret' });
  const challenge = new Response(null, {
    status: 401,
    headers: { 'www-authenticate': 'Bearer realm="http://auth.example/token",service="registry.example"' },
  });
  const attempt = auth.afterRefusal(challenge, ['repository:a/b:pull'], undefined);
  await expect(attempt).rejects.toMatchObject({ code: 'DENIED' });
  await expect(attempt).rejects.toThrow(/http:\/\/auth\.example\/token over plain http.*must be https/);
  await expect(attempt).rejects.not.toThrow(/pat-secret/);
});

test('a Bearer challenge whose realm is no address (a platform asking for its own API token) starts no exchange', async () => {
  const auth = new RegistryAuth({ url: 'http://127.0.0.1:1' });
  const challenge = new Response(null, { status: 401, headers: { 'www-authenticate': 'Bearer realm="computatrum"' } });
  await expect(auth.afterRefusal(challenge, ['repository:a/b:pull'], undefined)).resolves.toBeUndefined();
  expect(auth.refusalAdvice(challenge)).toBeUndefined();
});

test('tokens past their renewal are dropped as new ones come: the cache holds live tokens only, however many repositories', async () => {
  const server = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ token: `t-${Math.random()}`, expires_in: 60 }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
    let now = Date.parse('2026-12-01T00:00:00Z');
    const auth = new RegistryAuth({ url: 'http://127.0.0.1:1', now: () => now });
    const challenge = () =>
      new Response(null, { status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="r"` } });
    for (let i = 0; i < 50; i++)
      await expect(auth.afterRefusal(challenge(), [`repository:trainers/t${i}/m:pull`], undefined)).resolves.toMatch(
        /^Bearer t-/,
      );
    expect(auth.cachedTokens).toBe(50);
    now += 61_000;
    await auth.afterRefusal(challenge(), ['repository:trainers/late/m:pull'], undefined);
    expect(auth.cachedTokens).toBe(1);
  } finally {
    server.close();
  }
});
