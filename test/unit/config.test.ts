import { nextRuns } from '../../runtime/cron';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, databaseUrl, loadConfig, probeSettings, temporalAddress } from '../../runtime/config';

test('with nothing set, everything is embedded on loopback', () => {
  const config = loadConfig({});
  expect(config.temporal.address).toBeUndefined();
  expect(config.database.url).toBeUndefined();
  expect(temporalAddress(config)).toBe('127.0.0.1:7233');
  expect(databaseUrl(config)).toBe('postgres://postgres@127.0.0.1:55432/postgres');
  expect(config).toMatchObject({
    germline: 'computatrum',
    currency: 'usd',
    platform: { host: '127.0.0.1', port: 8080 },
  });
});

test('a production Temporal cluster and PostgreSQL replace the embedded ones', () => {
  const config = loadConfig({
    TEMPORAL_ADDRESS: 'computatrum.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'computatrum.a1b2c',
    TEMPORAL_API_KEY: 'secret',
    DATABASE_URL: 'postgresql://app@db.internal:5432/computatrum',
  });
  expect(temporalAddress(config)).toBe('computatrum.a1b2c.tmprl.cloud:7233');
  expect(config.temporal).toMatchObject({ namespace: 'computatrum.a1b2c', apiKey: 'secret', tls: {} });
  expect(databaseUrl(config)).toBe('postgresql://app@db.internal:5432/computatrum');
});

test('a germline trying computatrum out starts with an opening balance and a genesis run; one on production services starts with nothing', () => {
  expect(loadConfig({}).genesis).toEqual({ openingBalance: 1000n, maxCost: 100n });
  expect(loadConfig({ DATABASE_URL: 'postgresql://app@db.internal:5432/computatrum' }).genesis.openingBalance).toBe(0n);
  expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233' }).genesis.openingBalance).toBe(0n);
  expect(
    loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233', COMPUTATRUM_OPENING_BALANCE: '25.50' }).genesis,
  ).toEqual({ openingBalance: 2550n, maxCost: 100n });
  expect(loadConfig({ COMPUTATRUM_OPENING_BALANCE: '0', COMPUTATRUM_GENESIS_MAX_COST: '0' }).genesis).toEqual({
    openingBalance: 0n,
    maxCost: 0n,
  });
  expect(() => loadConfig({ COMPUTATRUM_OPENING_BALANCE: '1.234' })).toThrow(
    /COMPUTATRUM_OPENING_BALANCE: amount "1.234" has 3 decimals/,
  );
});

test("anonymous visitors' salt is a secret of some length, shared by replicas when set", () => {
  expect(loadConfig({}).platform.visitorSalt).toBeUndefined();
  expect(loadConfig({ COMPUTATRUM_VISITOR_SALT: 'a'.repeat(64) }).platform.visitorSalt).toBe('a'.repeat(64));
  expect(() => loadConfig({ COMPUTATRUM_VISITOR_SALT: 'short' })).toThrow(/COMPUTATRUM_VISITOR_SALT: at least 16/);
});

test("the gateway's quotas per caller and image: lower for anonymous visitors, 0 for none, whole numbers only", () => {
  expect(loadConfig({}).platform.gatewayLimits).toEqual({
    account: { requestsPerMinute: 60, tokensPerMinute: 150_000, requestsPerDay: 10_000, tokensPerDay: 3_000_000 },
    anonymous: { requestsPerMinute: 20, tokensPerMinute: 40_000, requestsPerDay: 1_000, tokensPerDay: 400_000 },
  });
  const set = loadConfig({
    COMPUTATRUM_GATEWAY_REQUESTS_PER_MINUTE: '5',
    COMPUTATRUM_GATEWAY_TOKENS_PER_DAY: '0',
    COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_DAY: '',
    COMPUTATRUM_GATEWAY_ANONYMOUS_TOKENS_PER_MINUTE: '1000',
  }).platform.gatewayLimits;
  expect(set.account).toMatchObject({ requestsPerMinute: 5, tokensPerDay: 0 });
  expect(set.anonymous).toMatchObject({ requestsPerDay: 1_000, tokensPerMinute: 1000 });
  expect(() => loadConfig({ COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE: '-1' })).toThrow(
    'COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE: a whole number (0: no limit) (got "-1")',
  );
});

test('every bad key is named with what it expects and what it got', () => {
  let error: unknown;
  try {
    loadConfig({
      PLATFORM_PORT: 'eighty',
      COMPUTATRUM_CURRENCY: 'doubloons',
      DATABASE_URL: 'mysql://x',
      COMPUTATRUM_GERMLINE: 'Bad Name',
      LOG_LEVEL: 'loud',
    });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as Error).message;
  expect(message).toContain('PLATFORM_PORT: a TCP port number from 1 to 65535 (got "eighty")');
  expect(message).toContain('COMPUTATRUM_CURRENCY: a supported ISO currency code such as usd or eur (got "doubloons")');
  expect(message).toContain('DATABASE_URL: a postgres:// or postgresql:// connection URL (got "mysql://x")');
  expect(message).toContain('COMPUTATRUM_GERMLINE: lowercase letters, digits and dashes');
  expect(message).toMatch(/LOG_LEVEL: .*(got "loud")/);
});

test('mutual TLS needs both the certificate and the key', () => {
  expect(() => loadConfig({ TEMPORAL_ADDRESS: 'x:7233', TEMPORAL_TLS_CERT_PATH: '/c.pem' })).toThrow(
    'TEMPORAL_TLS_KEY_PATH: set TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH together',
  );
});

test('a config file supplies values and the environment overrides them', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'cfg-')), 'computatrum.json');
  writeFileSync(file, JSON.stringify({ PLATFORM_PORT: 9090, COMPUTATRUM_GERMLINE: 'from-file' }));
  const config = loadConfig({ COMPUTATRUM_CONFIG: file, COMPUTATRUM_GERMLINE: 'from-env' });
  expect(config.platform.port).toBe(9090);
  expect(config.germline).toBe('from-env');

  writeFileSync(file, '[1, 2]');
  expect(() => loadConfig({ COMPUTATRUM_CONFIG: file })).toThrow(/must be a JSON object of KEY: value/);
  expect(() => loadConfig({ COMPUTATRUM_CONFIG: '/nonexistent/c.json' })).toThrow(
    /cannot read COMPUTATRUM_CONFIG file/,
  );
});

test('payments are on with a Stripe secret key, which needs its webhook secret beside it', () => {
  expect(loadConfig({}).stripe).toBeUndefined();
  expect(() => loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc' })).toThrow(
    /STRIPE_WEBHOOK_SECRET: required with STRIPE_SECRET_KEY/,
  );
  expect(() => loadConfig({ STRIPE_SECRET_KEY: 'pk_test_abc', STRIPE_WEBHOOK_SECRET: 'whsec_x' })).toThrow(
    /STRIPE_SECRET_KEY: a Stripe secret key/,
  );
  const config = loadConfig({
    STRIPE_SECRET_KEY: 'sk_test_abc',
    STRIPE_WEBHOOK_SECRET: 'whsec_x',
    STRIPE_API_BASE: 'http://127.0.0.1:12111',
    PLATFORM_PUBLIC_URL: 'https://computatrum.io/',
  });
  expect(config.stripe).toEqual({
    secretKey: 'sk_test_abc',
    webhookSecret: 'whsec_x',
    apiBase: 'http://127.0.0.1:12111',
    feePercent: 10,
  });
  expect(config.platform.publicUrl).toBe('https://computatrum.io');
});

test('probes of new images are paid by the germline within the probe budget; 0 turns them off', () => {
  expect(loadConfig({}).probes).toEqual({ maxCost: 50n });
  expect(probeSettings(loadConfig({ COMPUTATRUM_GPU_RATE: '3.00' }))).toEqual({
    currency: 'usd',
    ratePerGpuHour: 300n,
    maxCost: 50n,
    runner: 'local',
  });
  expect(probeSettings(loadConfig({ COMPUTATRUM_PROBE_MAX_COST: '0' }))).toBeUndefined();
  expect(
    loadConfig({ COMPUTATRUM_PROBE_MAX_COST: '2.25', COMPUTATRUM_PROBE_DETECTOR: 'trainers/alice/detector:main' })
      .probes,
  ).toEqual({ maxCost: 225n, detector: 'trainers/alice/detector:main' });
  expect(() => loadConfig({ COMPUTATRUM_PROBE_MAX_COST: 'lots' })).toThrow(
    /COMPUTATRUM_PROBE_MAX_COST: an amount like 0.50 \(0: no probes\) \(got "lots"\)/,
  );
  expect(() => loadConfig({ COMPUTATRUM_PROBE_DETECTOR: 'no tag here' })).toThrow(
    /COMPUTATRUM_PROBE_DETECTOR: an image reference like trainers\/alice\/detector:main/,
  );
});

test('the proxies trusted about the client: none unless said, then all, a number of hops, or addresses and CIDRs', () => {
  expect(loadConfig({}).platform.trustProxy).toBe(false);
  expect(loadConfig({ PLATFORM_TRUST_PROXY: 'true' }).platform.trustProxy).toBe(true);
  expect(loadConfig({ PLATFORM_TRUST_PROXY: '2' }).platform.trustProxy).toBe(2);
  expect(loadConfig({ PLATFORM_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1' }).platform.trustProxy).toEqual([
    '10.0.0.0/8',
    '127.0.0.1',
    '::1',
  ]);
  for (const wrong of ['10.0.0.0/33', 'ingress.local', '1.2.3'])
    expect(() => loadConfig({ PLATFORM_TRUST_PROXY: wrong })).toThrow(
      /PLATFORM_TRUST_PROXY.*comma-separated IP addresses and CIDRs/,
    );
});

test("the daily tag's time is a five-field cron expression in UTC, checked before any schedule sees it", () => {
  expect(loadConfig({}).schedules.dailyTag).toBe('0 0 * * *');
  expect(loadConfig({ COMPUTATRUM_DAILY_TAG_CRON: ' 30 2 * * * ' }).schedules.dailyTag).toBe('30 2 * * *');
  expect(() => loadConfig({ COMPUTATRUM_DAILY_TAG_CRON: '61 * * * *' })).toThrow(
    /COMPUTATRUM_DAILY_TAG_CRON.*"61 \* \* \* \*" is not a cron expression: Field value \(61\) is out of range/,
  );
  expect(() => loadConfig({ COMPUTATRUM_DAILY_TAG_CRON: '0 0 0 * * *' })).toThrow(
    /has 6 fields; write five: minute hour day-of-month month day-of-week/,
  );
  const [first, second] = nextRuns('30 2 * * *', 2);
  expect(first!.toISOString()).toMatch(/T02:30:00\.000Z$/);
  expect(second!.getTime() - first!.getTime()).toBe(86_400_000);
});
