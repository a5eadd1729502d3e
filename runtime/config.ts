// All configuration in one zod schema. Values come from environment variables, optionally from a
// JSON file named by COMPUTATRUM_CONFIG (environment wins). Unset Temporal address or database URL
// means "embedded": `computatrum up` starts its own dev server and PGlite.
import { cronProblem } from './cron';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { isCurrency, parseAmount } from '../workflows/money';
import { NAME, NAME_RULE } from '../workflows/names';
import { type TrainingDefaults } from '../workflows/training-api';

const PORT = 'a TCP port number from 1 to 65535';
/** A five-field cron expression in UTC, checked with the `cron` package before any reaches Temporal. */
const cronSetting = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((value, context) => {
      const problem = cronProblem(value);
      if (problem) context.addIssue({ code: 'custom', message: problem });
    })
    .transform((value) => value.trim());

const port = z.coerce.number({ error: PORT }).int(PORT).min(1, PORT).max(65_535, PORT);
const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();
const QUOTA = 'a whole number (0: no limit)';
/** A gateway quota: a whole number, 0 for none; empty is the default (not 0, which would lift the limit). */
const quota = (fallback: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.coerce.number({ error: QUOTA }).int(QUOTA).min(0, QUOTA).max(Number.MAX_SAFE_INTEGER, QUOTA).default(fallback),
  );
const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Environment variable → what it means. The schema below is keyed by these names. */
export const configSchema = z
  .object({
    COMPUTATRUM_DATA_DIR: z.string().min(1).default('.computatrum'),
    COMPUTATRUM_GERMLINE: z.string().regex(NAME, NAME_RULE).default('computatrum'),
    COMPUTATRUM_CURRENCY: z
      .string()
      .refine(isCurrency, 'a supported ISO currency code such as usd or eur')
      .transform((v) => v.toLowerCase())
      .default('usd'),
    COMPUTATRUM_TASK_QUEUE: z.string().min(1).default('computatrum'),
    COMPUTATRUM_TOOLS_DIR: optionalText,

    TEMPORAL_ADDRESS: optionalText,
    TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
    TEMPORAL_API_KEY: optionalText,
    TEMPORAL_TLS: flag.optional(),
    TEMPORAL_TLS_CERT_PATH: optionalText,
    TEMPORAL_TLS_KEY_PATH: optionalText,
    TEMPORAL_TLS_CA_PATH: optionalText,
    TEMPORAL_TLS_SERVER_NAME: optionalText,
    TEMPORAL_CLI_PATH: optionalText,
    TEMPORAL_DEV_PORT: port.default(7233),
    TEMPORAL_UI_PORT: port.default(8233),
    /** Where operators open the Temporal Web UI of a cluster (the embedded one is known): the platform links into it. */
    TEMPORAL_UI_URL: optionalText.refine((v) => v === undefined || /^https?:\/\//.test(v), 'an http(s) URL'),

    DATABASE_URL: optionalText.refine(
      (v) => v === undefined || /^postgres(ql)?:\/\//.test(v),
      'a postgres:// or postgresql:// connection URL',
    ),
    PGLITE_PORT: port.default(55432),

    COMPUTATRUM_STORE: z.enum(['layout', 'registry']).default('layout'),
    COMPUTATRUM_STORE_PATH: optionalText,
    COMPUTATRUM_REGISTRY_URL: optionalText.refine(
      (v) => v === undefined || /^https?:\/\//.test(v),
      'an http:// or https:// registry URL',
    ),
    COMPUTATRUM_REGISTRY_USERNAME: optionalText,
    COMPUTATRUM_REGISTRY_PASSWORD: optionalText,
    /** A mounted secret holding the password (Kubernetes), read at start. */
    COMPUTATRUM_REGISTRY_PASSWORD_FILE: optionalText,

    /** The CLI's personal API token for the platform (paid breeds, the API); from /auth/tokens. */
    COMPUTATRUM_TOKEN: optionalText,
    /** Bearer token sent to the http decision policy's agent; a secret, never put in workflow input. */
    COMPUTATRUM_AGENT_TOKEN: optionalText,

    /** Price of one GPU-hour in the germline's currency, e.g. 2.40; runs are charged per GPU-second. */
    COMPUTATRUM_GPU_RATE: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'an amount like 2.40 (per GPU-hour)')
      .default('2.00'),
    COMPUTATRUM_RUNNER: z.enum(['local', 'kubernetes']).default('local'),
    /** The local runner's trainer when a run names none: a JSON array of argv; the bundled tiny trainer when unset. */
    COMPUTATRUM_TRAINER_COMMAND: optionalText.refine(
      (v) => v === undefined || isArgv(v),
      'a JSON array of strings, like ["python", "train.py"]',
    ),
    /** The local runner's instance server (the instance contract): a JSON argv; the bundled tiny model's server when unset. */
    COMPUTATRUM_INSTANCE_COMMAND: optionalText.refine(
      (v) => v === undefined || isArgv(v),
      'a JSON array of strings, like ["vllm", "serve", "/models/x"]',
    ),
    /** The most the germline's public instance of a gpc tag may cost (it moves to each new tag); 0: it keeps none. */
    COMPUTATRUM_PUBLIC_INSTANCE_MAX_COST: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'an amount like 5.00 (0: no public instance)')
      .default('5.00'),
    /** The probe budget: the most one behaviour probe's instance of a new image may cost the germline; 0: no probes. */
    COMPUTATRUM_PROBE_MAX_COST: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'an amount like 0.50 (0: no probes)')
      .default('0.50'),
    /** A detector image (`repo:tag`, with an instance of it running) that judges probe transcripts instead of the suite's rules. */
    COMPUTATRUM_PROBE_DETECTOR: optionalText.refine(
      (v) => v === undefined || /^[a-z0-9][a-z0-9._/-]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$/.test(v),
      'an image reference like trainers/alice/detector:main',
    ),
    /**
     * Deposited once, as the germline's opening balance, when its budget has never received a
     * deposit (reference `opening-balance`); 0: none. Default 10.00 where Temporal and PostgreSQL are
     * both embedded (a machine trying computatrum out), 0 against production services.
     */
    COMPUTATRUM_OPENING_BALANCE: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'an amount like 10.00 (0: no opening deposit)')
      .optional(),
    /** The most the germline's first training run (genesis, when it has no head yet) may cost; 0: no genesis. */
    COMPUTATRUM_GENESIS_MAX_COST: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'an amount like 1.00 (0: no genesis run)')
      .default('1.00'),
    COMPUTATRUM_MAX_PREEMPTIONS: z.coerce.number().int().min(0).max(100).default(3),
    /** The most GPUs a trainer's run through the platform may ask for. */
    COMPUTATRUM_TRAINER_MAX_GPUS: z.coerce.number().int().min(1).max(1024).default(8),
    COMPUTATRUM_TRAINING_MAX_HOURS: z.coerce
      .number()
      .positive()
      .max(24 * 30)
      .default(24),
    /** Enables the kubernetes runner: Jobs are created in this namespace. */
    COMPUTATRUM_KUBE_NAMESPACE: optionalText,
    /** A kubeconfig file; unset: the in-cluster service account. */
    COMPUTATRUM_KUBECONFIG: optionalText,
    COMPUTATRUM_KUEUE_QUEUE: optionalText,
    COMPUTATRUM_TRAINING_IMAGE: optionalText,
    /** The instance server's image: enables kubernetes instances (with COMPUTATRUM_KUBE_NAMESPACE). */
    COMPUTATRUM_INSTANCE_IMAGE: optionalText,
    COMPUTATRUM_TRAINING_JOB_TEMPLATE: optionalText,
    /** The PersistentVolumeClaim training pods keep their checkpoints on (resume after preemption). */
    COMPUTATRUM_KUBE_CHECKPOINT_CLAIM: optionalText,
    /**
     * Where this worker has COMPUTATRUM_KUBE_CHECKPOINT_CLAIM mounted (its data folder on it): instance
     * pods then mount their materialized checkpoint from the claim, read-only, instead of pulling it.
     */
    COMPUTATRUM_KUBE_CHECKPOINT_CLAIM_PATH: optionalText,
    /** The image of instance pods' init container that pulls the checkpoint (it runs the computatrum CLI); default: the instance image. */
    COMPUTATRUM_INSTANCE_PULL_IMAGE: optionalText,
    /** A Secret with COMPUTATRUM_REGISTRY_USERNAME/PASSWORD for training pods that push to the registry. */
    COMPUTATRUM_KUBE_REGISTRY_SECRET: optionalText,

    /**
     * Which proxies in front of the platform are believed about the client (X-Forwarded-For, -Proto):
     * `true` (all: only when nothing else can reach the platform), a number of hops, or addresses and
     * CIDRs, comma-separated (an Ingress controller's). Unset: none (every request is its socket's).
     */
    PLATFORM_TRUST_PROXY: optionalText.refine(
      (v) => v === undefined || trustProxyOf(v) !== undefined,
      'true, false, a number of proxy hops, or comma-separated IP addresses and CIDRs like 10.0.0.0/8,127.0.0.1',
    ),
    /** When the daily gpc tag is made: a five-field cron expression in UTC (the schedule is updated in place at `up`). */
    COMPUTATRUM_DAILY_TAG_CRON: cronSetting('0 0 * * *'),
    /** When published breed versions never probed are probed (at most 20 a sweep). */
    COMPUTATRUM_PROBE_SWEEP_CRON: cronSetting('30 1 * * *'),
    /** When the feedback the germline has not learned from yet is built into datasets beside its images. */
    COMPUTATRUM_DATASET_BUILD_CRON: cronSetting('0 3 * * *'),
    /** When trainers' earnings are paid out through Stripe (by the platform; only when Stripe is configured). */
    COMPUTATRUM_PAYOUTS_CRON: cronSetting('0 6 * * *'),
    /** How long activities in flight may finish when the worker stops (SIGTERM, Ctrl-C) before they are cancelled. */
    COMPUTATRUM_SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(0).max(3600).default(0),
    /** A workflow bundle built by `npm run build:workflows` (the daemon image's): loaded instead of bundling at start. */
    COMPUTATRUM_WORKFLOW_BUNDLE: optionalText,
    /** Prometheus metrics (the Temporal SDK's and computatrum's) on this port of PLATFORM_HOST; unset: none. */
    COMPUTATRUM_METRICS_PORT: port.optional(),
    /** How often the gauges read from PostgreSQL (budgets' books, runs and instances by state) are refreshed. */
    COMPUTATRUM_METRICS_REFRESH_SECONDS: z.coerce.number().int().min(1).max(3600).default(15),
    PLATFORM_HOST: z.string().min(1).default('127.0.0.1'),
    PLATFORM_PORT: port.default(8080),
    /** The address people reach the platform at (Checkout returns there); default: http://PLATFORM_HOST:PLATFORM_PORT. */
    PLATFORM_PUBLIC_URL: optionalText.refine(
      (v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v),
      'an http:// or https:// URL',
    ),
    /**
     * The secret that anonymous visitors' ids (a hash of their address) are salted with; every
     * platform replica needs the same one. Unset: one kept in <data>/visitor-salt.
     */
    COMPUTATRUM_VISITOR_SALT: optionalText.refine(
      (v) => v === undefined || v.length >= 16,
      'at least 16 characters (a secret, e.g. `openssl rand -hex 32`)',
    ),

    /** The gateway's quotas per caller and image (0: none); signed-in accounts, then anonymous visitors (lower). */
    COMPUTATRUM_GATEWAY_REQUESTS_PER_MINUTE: quota(60),
    COMPUTATRUM_GATEWAY_TOKENS_PER_MINUTE: quota(150_000),
    COMPUTATRUM_GATEWAY_REQUESTS_PER_DAY: quota(10_000),
    COMPUTATRUM_GATEWAY_TOKENS_PER_DAY: quota(3_000_000),
    COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE: quota(20),
    COMPUTATRUM_GATEWAY_ANONYMOUS_TOKENS_PER_MINUTE: quota(40_000),
    COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_DAY: quota(1_000),
    COMPUTATRUM_GATEWAY_ANONYMOUS_TOKENS_PER_DAY: quota(400_000),

    /** Stripe: payments are on when a secret key is set. */
    STRIPE_SECRET_KEY: optionalText.refine(
      (v) => v === undefined || /^(sk|rk)_(test|live)_/.test(v),
      'a Stripe secret key (sk_test_…, sk_live_… or a restricted rk_…)',
    ),
    STRIPE_WEBHOOK_SECRET: optionalText,
    /** The platform's share of each breed sale, in whole percent; it is deposited in the germline. */
    PLATFORM_FEE_PERCENT: z.coerce.number().int().min(0).max(50).default(10),
    /** Another Stripe API address, e.g. stripe-mock's http://127.0.0.1:12111 for trying payments locally. */
    STRIPE_API_BASE: optionalText.refine(
      (v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v),
      'an http:// or https:// URL',
    ),

    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    LOG_PRETTY: flag.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.STRIPE_SECRET_KEY && !c.STRIPE_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['STRIPE_WEBHOOK_SECRET'],
        message:
          "required with STRIPE_SECRET_KEY: the webhook endpoint's signing secret (whsec_…), so paid sessions can be verified",
      });
    }
    if (c.COMPUTATRUM_STORE === 'registry' && !c.COMPUTATRUM_REGISTRY_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['COMPUTATRUM_REGISTRY_URL'],
        message: 'required when COMPUTATRUM_STORE=registry',
      });
    }
    if (Boolean(c.TEMPORAL_TLS_CERT_PATH) !== Boolean(c.TEMPORAL_TLS_KEY_PATH)) {
      ctx.addIssue({
        code: 'custom',
        path: ['TEMPORAL_TLS_KEY_PATH'],
        message: 'set TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH together (mutual TLS needs both)',
      });
    }
  });

export type RawConfig = z.infer<typeof configSchema>;

export interface Config {
  dataDir: string;
  germline: string;
  currency: string;
  taskQueue: string;
  /** Seconds activities in flight may finish when the worker stops, before they are cancelled. */
  shutdownGraceSeconds: number;
  /** The prebuilt workflow bundle the worker loads (worker/workflow-bundle.ts); absent: it bundles at start. */
  workflowBundle?: string;
  /** Where `/metrics` is served (COMPUTATRUM_METRICS_PORT on PLATFORM_HOST); absent: no metrics. */
  metrics?: { host: string; port: number; refreshSeconds: number };
  /** Cron expressions (five fields, UTC) of the Temporal Schedules computatrum keeps. */
  schedules: { dailyTag: string; probeSweep: string; datasetBuilds: string; payouts: string };
  toolsDir: string;
  temporal: {
    /** Undefined: start the embedded dev server. */
    address?: string;
    namespace: string;
    apiKey?: string;
    tls?: { certPath?: string; keyPath?: string; caPath?: string; serverName?: string };
    cliPath?: string;
    devPort: number;
    uiPort: number;
    /** The Web UI of a cluster given by TEMPORAL_ADDRESS. */
    uiUrl?: string;
  };
  database: {
    /** Undefined: start embedded PGlite. */
    url?: string;
    pglitePort: number;
  };
  store:
    | { kind: 'layout'; path: string }
    | { kind: 'registry'; url: string; username?: string; password?: string; passwordFile?: string };
  training: {
    /** Minor units per GPU-hour. */
    ratePerGpuHour: bigint;
    defaultRunner: 'local' | 'kubernetes';
    trainerCommand?: string[];
    /** The local runner's instance server; the bundled tiny model's server when unset. */
    instanceCommand?: string[];
    /** The most the germline's public instance of a tag may cost; 0n: it keeps none. */
    publicInstanceMaxCost: bigint;
    maxPreemptions: number;
    maxDurationSeconds: number;
    /** The most GPUs one trainer's run through the platform may ask for. */
    trainerMaxGpus: number;
    kubernetes?: {
      namespace: string;
      kubeconfig?: string;
      queueName?: string;
      image?: string;
      /** The instance server's image (COMPUTATRUM_INSTANCE_IMAGE): kubernetes instances are on when set. */
      instanceImage?: string;
      template?: string;
      checkpointClaim?: string;
      /** Where this worker has the claim mounted: instances mount their checkpoint from it. */
      checkpointClaimPath?: string;
      /** The image that pulls an instance's checkpoint in its pod; default: instanceImage. */
      instancePullImage?: string;
      registrySecret?: string;
    };
  };
  /** What a germline's first start gives it (cli/commands/up.ts). */
  genesis: {
    /** Minor units deposited once when the budget has never had a deposit; 0n: none. */
    openingBalance: bigint;
    /** The cap of the first training run when the germline has no head; 0n: none is run. */
    maxCost: bigint;
  };
  /** Behaviour probes of new images: the probe budget (0n: no probes) and the judge. */
  probes: { maxCost: bigint; detector?: string };
  /** Bearer token for the http decision policy's agent. */
  agentToken?: string;
  /** The CLI's API token for the platform. */
  apiToken?: string;
  platform: {
    host: string;
    port: number;
    publicUrl: string;
    visitorSalt?: string;
    /** Fastify's trustProxy: which proxies' X-Forwarded-* headers are believed. */
    trustProxy: boolean | number | string[];
    feePercent: number;
    /** The gateway's chats per caller and image (0: no limit). */
    gatewayLimits: { account: GatewayQuota; anonymous: GatewayQuota };
  };
  /** Absent: payments are off. */
  stripe?: { secretKey: string; webhookSecret: string; apiBase?: string; feePercent: number };
  log: { level: RawConfig['LOG_LEVEL']; pretty: boolean };
}

/** How much one caller may use of one image through the gateway; 0: no limit. */
export interface GatewayQuota {
  requestsPerMinute: number;
  tokensPerMinute: number;
  requestsPerDay: number;
  tokensPerDay: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads, validates and shapes the configuration; a ConfigError names every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const fromFile = readConfigFile(env.COMPUTATRUM_CONFIG);
  const parsed = configSchema.safeParse({ ...fromFile, ...definedOnly(env) });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(config)';
      const given =
        key in env
          ? ` (got ${JSON.stringify(env[key])})`
          : key in fromFile
            ? ` (got ${JSON.stringify(fromFile[key])})`
            : '';
      return `  ${key}: ${issue.message}${given}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const tlsWanted = c.TEMPORAL_TLS ?? Boolean(c.TEMPORAL_TLS_CERT_PATH || c.TEMPORAL_TLS_CA_PATH || c.TEMPORAL_API_KEY);
  return {
    dataDir: path.resolve(c.COMPUTATRUM_DATA_DIR),
    germline: c.COMPUTATRUM_GERMLINE,
    currency: c.COMPUTATRUM_CURRENCY,
    taskQueue: c.COMPUTATRUM_TASK_QUEUE,
    shutdownGraceSeconds: c.COMPUTATRUM_SHUTDOWN_GRACE_SECONDS,
    ...(c.COMPUTATRUM_WORKFLOW_BUNDLE ? { workflowBundle: path.resolve(c.COMPUTATRUM_WORKFLOW_BUNDLE) } : {}),
    ...(c.COMPUTATRUM_METRICS_PORT
      ? {
          metrics: {
            host: c.PLATFORM_HOST,
            port: c.COMPUTATRUM_METRICS_PORT,
            refreshSeconds: c.COMPUTATRUM_METRICS_REFRESH_SECONDS,
          },
        }
      : {}),
    schedules: {
      dailyTag: c.COMPUTATRUM_DAILY_TAG_CRON,
      probeSweep: c.COMPUTATRUM_PROBE_SWEEP_CRON,
      datasetBuilds: c.COMPUTATRUM_DATASET_BUILD_CRON,
      payouts: c.COMPUTATRUM_PAYOUTS_CRON,
    },
    toolsDir: path.resolve(c.COMPUTATRUM_TOOLS_DIR ?? path.join(homedir(), '.cache', 'computatrum', 'tools')),
    temporal: {
      address: c.TEMPORAL_ADDRESS,
      namespace: c.TEMPORAL_NAMESPACE,
      apiKey: c.TEMPORAL_API_KEY,
      tls:
        c.TEMPORAL_ADDRESS && tlsWanted
          ? {
              certPath: c.TEMPORAL_TLS_CERT_PATH,
              keyPath: c.TEMPORAL_TLS_KEY_PATH,
              caPath: c.TEMPORAL_TLS_CA_PATH,
              serverName: c.TEMPORAL_TLS_SERVER_NAME,
            }
          : undefined,
      cliPath: c.TEMPORAL_CLI_PATH,
      devPort: c.TEMPORAL_DEV_PORT,
      uiPort: c.TEMPORAL_UI_PORT,
      ...(c.TEMPORAL_UI_URL ? { uiUrl: c.TEMPORAL_UI_URL.replace(/\/+$/, '') } : {}),
    },
    database: { url: c.DATABASE_URL, pglitePort: c.PGLITE_PORT },
    store:
      c.COMPUTATRUM_STORE === 'registry'
        ? {
            kind: 'registry',
            url: c.COMPUTATRUM_REGISTRY_URL!.replace(/\/+$/, ''),
            username: c.COMPUTATRUM_REGISTRY_USERNAME,
            password: c.COMPUTATRUM_REGISTRY_PASSWORD,
            passwordFile: c.COMPUTATRUM_REGISTRY_PASSWORD_FILE,
          }
        : {
            kind: 'layout',
            path: path.resolve(c.COMPUTATRUM_STORE_PATH ?? path.join(c.COMPUTATRUM_DATA_DIR, 'store')),
          },
    training: {
      ratePerGpuHour: gpuRate(c.COMPUTATRUM_GPU_RATE, c.COMPUTATRUM_CURRENCY),
      defaultRunner: c.COMPUTATRUM_RUNNER,
      ...(c.COMPUTATRUM_TRAINER_COMMAND
        ? { trainerCommand: JSON.parse(c.COMPUTATRUM_TRAINER_COMMAND) as string[] }
        : {}),
      ...(c.COMPUTATRUM_INSTANCE_COMMAND
        ? { instanceCommand: JSON.parse(c.COMPUTATRUM_INSTANCE_COMMAND) as string[] }
        : {}),
      publicInstanceMaxCost: amountSetting(
        'COMPUTATRUM_PUBLIC_INSTANCE_MAX_COST',
        c.COMPUTATRUM_PUBLIC_INSTANCE_MAX_COST,
        c.COMPUTATRUM_CURRENCY,
        'the most the public instance of a tag may cost',
      ),
      maxPreemptions: c.COMPUTATRUM_MAX_PREEMPTIONS,
      trainerMaxGpus: c.COMPUTATRUM_TRAINER_MAX_GPUS,
      maxDurationSeconds: Math.round(c.COMPUTATRUM_TRAINING_MAX_HOURS * 3600),
      ...(c.COMPUTATRUM_KUBE_NAMESPACE
        ? {
            kubernetes: {
              namespace: c.COMPUTATRUM_KUBE_NAMESPACE,
              ...(c.COMPUTATRUM_KUBECONFIG ? { kubeconfig: path.resolve(c.COMPUTATRUM_KUBECONFIG) } : {}),
              ...(c.COMPUTATRUM_KUEUE_QUEUE ? { queueName: c.COMPUTATRUM_KUEUE_QUEUE } : {}),
              ...(c.COMPUTATRUM_TRAINING_IMAGE ? { image: c.COMPUTATRUM_TRAINING_IMAGE } : {}),
              ...(c.COMPUTATRUM_INSTANCE_IMAGE ? { instanceImage: c.COMPUTATRUM_INSTANCE_IMAGE } : {}),
              ...(c.COMPUTATRUM_TRAINING_JOB_TEMPLATE
                ? { template: path.resolve(c.COMPUTATRUM_TRAINING_JOB_TEMPLATE) }
                : {}),
              ...(c.COMPUTATRUM_KUBE_CHECKPOINT_CLAIM ? { checkpointClaim: c.COMPUTATRUM_KUBE_CHECKPOINT_CLAIM } : {}),
              ...(c.COMPUTATRUM_KUBE_CHECKPOINT_CLAIM_PATH
                ? { checkpointClaimPath: path.resolve(c.COMPUTATRUM_KUBE_CHECKPOINT_CLAIM_PATH) }
                : {}),
              ...(c.COMPUTATRUM_INSTANCE_PULL_IMAGE ? { instancePullImage: c.COMPUTATRUM_INSTANCE_PULL_IMAGE } : {}),
              ...(c.COMPUTATRUM_KUBE_REGISTRY_SECRET ? { registrySecret: c.COMPUTATRUM_KUBE_REGISTRY_SECRET } : {}),
            },
          }
        : {}),
    },
    genesis: {
      openingBalance: amountSetting(
        'COMPUTATRUM_OPENING_BALANCE',
        c.COMPUTATRUM_OPENING_BALANCE ?? (c.TEMPORAL_ADDRESS || c.DATABASE_URL ? '0' : '10.00'),
        c.COMPUTATRUM_CURRENCY,
        "the germline's opening balance",
      ),
      maxCost: amountSetting(
        'COMPUTATRUM_GENESIS_MAX_COST',
        c.COMPUTATRUM_GENESIS_MAX_COST,
        c.COMPUTATRUM_CURRENCY,
        "the cap of the germline's first training run",
      ),
    },
    probes: {
      maxCost: amountSetting(
        'COMPUTATRUM_PROBE_MAX_COST',
        c.COMPUTATRUM_PROBE_MAX_COST,
        c.COMPUTATRUM_CURRENCY,
        "the most one probe's instance may cost",
      ),
      ...(c.COMPUTATRUM_PROBE_DETECTOR ? { detector: c.COMPUTATRUM_PROBE_DETECTOR } : {}),
    },
    ...(c.COMPUTATRUM_AGENT_TOKEN ? { agentToken: c.COMPUTATRUM_AGENT_TOKEN } : {}),
    ...(c.COMPUTATRUM_TOKEN ? { apiToken: c.COMPUTATRUM_TOKEN } : {}),
    platform: {
      host: c.PLATFORM_HOST,
      port: c.PLATFORM_PORT,
      publicUrl: (c.PLATFORM_PUBLIC_URL ?? `http://${c.PLATFORM_HOST}:${c.PLATFORM_PORT}`).replace(/\/+$/, ''),
      ...(c.COMPUTATRUM_VISITOR_SALT ? { visitorSalt: c.COMPUTATRUM_VISITOR_SALT } : {}),
      trustProxy: c.PLATFORM_TRUST_PROXY ? trustProxyOf(c.PLATFORM_TRUST_PROXY)! : false,
      feePercent: c.PLATFORM_FEE_PERCENT,
      gatewayLimits: {
        account: {
          requestsPerMinute: c.COMPUTATRUM_GATEWAY_REQUESTS_PER_MINUTE,
          tokensPerMinute: c.COMPUTATRUM_GATEWAY_TOKENS_PER_MINUTE,
          requestsPerDay: c.COMPUTATRUM_GATEWAY_REQUESTS_PER_DAY,
          tokensPerDay: c.COMPUTATRUM_GATEWAY_TOKENS_PER_DAY,
        },
        anonymous: {
          requestsPerMinute: c.COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_MINUTE,
          tokensPerMinute: c.COMPUTATRUM_GATEWAY_ANONYMOUS_TOKENS_PER_MINUTE,
          requestsPerDay: c.COMPUTATRUM_GATEWAY_ANONYMOUS_REQUESTS_PER_DAY,
          tokensPerDay: c.COMPUTATRUM_GATEWAY_ANONYMOUS_TOKENS_PER_DAY,
        },
      },
    },
    ...(c.STRIPE_SECRET_KEY
      ? {
          stripe: {
            secretKey: c.STRIPE_SECRET_KEY,
            webhookSecret: c.STRIPE_WEBHOOK_SECRET!,
            feePercent: c.PLATFORM_FEE_PERCENT,
            ...(c.STRIPE_API_BASE ? { apiBase: c.STRIPE_API_BASE } : {}),
          },
        }
      : {}),
    log: { level: c.LOG_LEVEL, pretty: c.LOG_PRETTY ?? Boolean(process.stdout.isTTY) },
  };
}

/** The address clients use: the configured cluster, or the embedded dev server. */
export function temporalAddress(config: Config): string {
  return config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`;
}

/** The URL clients use: the configured PostgreSQL, or embedded PGlite on loopback. */
export function databaseUrl(config: Config): string {
  return config.database.url ?? `postgres://postgres@127.0.0.1:${config.database.pglitePort}/postgres`;
}

function readConfigFile(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read COMPUTATRUM_CONFIG file ${file}: ${(error as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? v : String(v)]));
  } catch (error) {
    throw new ConfigError(
      `COMPUTATRUM_CONFIG file ${file} must be a JSON object of KEY: value, like {"PLATFORM_PORT": 8080}: ${(error as Error).message}`,
    );
  }
}

function gpuRate(text: string, currency: string): bigint {
  return amountSetting('COMPUTATRUM_GPU_RATE', text, currency, 'the price of one GPU-hour');
}

/** An amount of money in the configuration, in minor units; "0" is zero. */
function amountSetting(name: string, text: string, currency: string, meaning: string): bigint {
  if (/^0+(\.0+)?$/.test(text)) return 0n;
  try {
    return parseAmount(text, currency);
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${name}: ${(error as Error).message} (${meaning})`);
  }
}

function isArgv(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.length > 0);
  } catch {
    return false;
  }
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** How runs are made where the asker does not say (the CLI, the platform, the germline's autonomy): one shape for all. */
export function trainingDefaults(config: Config): TrainingDefaults {
  const { training } = config;
  return {
    runner: training.defaultRunner,
    ratePerGpuHour: training.ratePerGpuHour,
    maxDurationSeconds: training.maxDurationSeconds,
    maxPreemptions: training.maxPreemptions,
    ...(training.kubernetes?.image ? { image: training.kubernetes.image } : {}),
  };
}

/**
 * How the worker probes new images (worker/worker.ts `probes`): the germline pays, at the GPU rate,
 * within the probe budget, on the local runner; undefined when the budget is 0 (no probes).
 */
export function probeSettings(
  config: Config,
): { currency: string; ratePerGpuHour: bigint; maxCost: bigint; runner: 'local'; detector?: string } | undefined {
  if (config.probes.maxCost <= 0n) return undefined;
  return {
    currency: config.currency,
    ratePerGpuHour: config.training.ratePerGpuHour,
    maxCost: config.probes.maxCost,
    runner: 'local',
    ...(config.probes.detector ? { detector: config.probes.detector } : {}),
  };
}

/** PLATFORM_TRUST_PROXY as Fastify takes it, or undefined when it is none of the forms it may be. */
export function trustProxyOf(text: string): boolean | number | string[] | undefined {
  const value = text.trim().toLowerCase();
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d{1,2}$/.test(value)) return Number(value);
  const entries = value.split(',').map((entry) => entry.trim());
  const valid = entries.every((entry) => {
    const [address, bits, ...rest] = entry.split('/');
    if (rest.length > 0 || !address || isIP(address) === 0) return false;
    if (bits === undefined) return true;
    return /^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(address) === 4 ? 32 : 128);
  });
  return valid && entries.length > 0 ? entries : undefined;
}
