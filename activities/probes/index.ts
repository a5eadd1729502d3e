// The probe/<repo>@<digest> workflow's side effects: the Probe row, a private instance of the image
// paid by the germline within the probe budget (launched as an instance/<id> workflow like any other,
// so its leases are reserved and settled the same way), the suite put to it, the judge, and the
// automated recording with its verdict; a flagged verdict flags the image for the operators. Also the
// daily hook that starts probes of the new gpc tag and of breed versions not probed yet.
import { Context } from '@temporalio/activity';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { BLOCKING_FLAG_STATES, hasBeenProbed } from '../../db/probes';
import type { Database } from '../../db/prisma';
import { requireManifest } from '../../store/checkpoint';
import { assertRepository, isDigest, parseReference } from '../../store/names';
import type { CheckpointStore } from '../../store/types';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { startProbe } from '../../temporal/probe-client';
import { FINAL_INSTANCE_STATES, instanceStatusQuery, stopInstanceUpdate } from '../../workflows/instance-api';
import { germlineRepository, germlineWorkflowId, NAME, probeWorkflowId } from '../../workflows/names';
import type {
  ProbeExchange,
  ProbeJudgeSpec,
  ProbeOutcome,
  ProbeRequest,
  ProbeTranscript,
  ProbeTrigger,
  ProbeVerdict,
} from '../../workflows/probe-api';
import type { RunnerKind } from '../runners/types';
import { type ChatMessage, complete, servedModel } from './chat';
import { judgeByDetector } from './detector';
import { recordProbeTranscript } from './recording';
import { judgeByRules } from './rules';
import { loadSuite, newestSuiteVersion, SuiteError } from './suite';

/** How this worker runs probes; absent: probes are off here (the daily hook starts none). */
export interface ProbeSettings {
  currency: string;
  /** Minor units per GPU-hour, as the germline's other instances are charged. */
  ratePerGpuHour: bigint;
  /** The probe budget: the most one probe's instance may cost (COMPUTATRUM_PROBE_MAX_COST). */
  maxCost: bigint;
  runner: RunnerKind;
  /** The judge when a request names none: a detector image (`repo:tag`); absent: the suite's rules. */
  detector?: string;
  /** Billed seconds after which a probe's instance stops whatever happens (default 1800). */
  maxDurationSeconds?: number;
  /** Lease length of a probe's instance (default: the instance workflow's). */
  leaseSeconds?: number;
  /** How often a probe's instance is checked (default: the instance workflow's). */
  checkSeconds?: number;
  /** Breed versions one probe sweep (COMPUTATRUM_PROBE_SWEEP_CRON) starts probes of, at most. */
  sweepLimit?: number;
}

export interface ProbeActivities {
  beginProbe(input: { probeId: string; request: ProbeRequest }): Promise<{ suite: string; judge: ProbeJudgeSpec }>;
  noteProbeAttempt(input: { probeId: string; attempt: number }): Promise<void>;
  startProbeInstance(input: {
    probeId: string;
    request: ProbeRequest;
    attempt: number;
  }): Promise<{ instanceId: string }>;
  awaitProbeInstance(input: { instanceId: string }): Promise<{ endpoint: string }>;
  runProbeSuite(input: {
    request: ProbeRequest;
    suite: string;
    instanceId: string;
    endpoint: string;
  }): Promise<ProbeTranscript>;
  stopProbeInstance(input: { instanceId: string; probeId: string }): Promise<void>;
  judgeProbeTranscript(input: { transcript: ProbeTranscript; judge: ProbeJudgeSpec }): Promise<ProbeVerdict>;
  recordProbeVerdict(input: {
    probeId: string;
    request: ProbeRequest;
    attempts: number;
    transcript: ProbeTranscript;
    verdict: ProbeVerdict;
    recordedAt: string;
  }): Promise<ProbeOutcome>;
  recordProbeError(input: { probeId: string; attempts: number; reason: string }): Promise<ProbeOutcome>;
  /** The daily hook: probes the day's gpc tag; nothing when probes are off. */
  startDailyProbes(input: { germline: string; tag: string }): Promise<{ started: string[]; off?: boolean }>;
  /** The probe-sweep schedule's work: probes breed versions and germline tags never probed (at most `sweepLimit`). */
  sweepBreedVersions(input: { germline: string }): Promise<{ started: string[]; off?: boolean }>;
}

export interface ProbeDependencies {
  db: Database;
  store: CheckpointStore;
  client: Client;
  probes?: ProbeSettings;
  logger?: Logger;
}

const POLL_MS = 500;
const DEFAULT_SWEEP_LIMIT = 20;

function invalid(message: string): never {
  throw ApplicationFailure.create({ type: 'ProbeRequestInvalid', message, nonRetryable: true });
}

/** Checks what the workflow cannot: the names, the digest, and that the image is there. */
async function validate(store: CheckpointStore, request: ProbeRequest): Promise<void> {
  if (request.version !== 1) invalid(`unsupported probe request version ${String(request.version)}`);
  if (!NAME.test(request.germline)) invalid(`"${request.germline}" is not a germline name`);
  try {
    assertRepository(request.repo);
  } catch (error) {
    invalid((error as Error).message);
  }
  if (!isDigest(request.digest)) invalid(`a probe names a digest (sha256:…), not "${request.digest}"`);
  if (!(await store.getManifest(request.repo, request.digest)))
    invalid(`${request.repo}@${request.digest} is not in the store`);
}

/** The probe's instance: short enough to read, unique per probe run and attempt (an instance id is a NAME). */
const probeInstanceId = (digest: string, probeId: string, attempt: number) =>
  `probe-${digest.slice('sha256:'.length, 'sha256:'.length + 12)}-${probeId.replace(/-/g, '').slice(0, 8)}-${attempt}`;

function outcomeOf(row: {
  id: string;
  state: string;
  attempts: number;
  suite: string;
  judge: string;
  reason: string | null;
  findings: unknown;
  recordingId: string | null;
}): ProbeOutcome {
  return {
    probeId: row.id,
    state: row.state as ProbeOutcome['state'],
    attempts: row.attempts,
    suite: row.suite,
    judge: row.judge,
    reason: row.reason ?? '',
    findings: (row.findings as ProbeOutcome['findings'] | null) ?? [],
    ...(row.recordingId ? { recordingId: row.recordingId } : {}),
  };
}

const judgeName = (judge: ProbeJudgeSpec, suite: string) =>
  judge.kind === 'rules' ? `rules:${suite}` : `detector:${judge.image}`;

export function createProbeActivities(deps: ProbeDependencies): ProbeActivities {
  const { db, store, client } = deps;
  /**
   * A Temporal call of an activity ends with the activity: when the worker shuts down (Ctrl-C, SIGTERM)
   * the activity's cancellation aborts it, instead of the call retrying on a connection being closed.
   */
  const untilCancelled = <T>(call: () => Promise<T>): Promise<T> =>
    client.withAbortSignal(Context.current().cancellationSignal, call);

  const settings = (): ProbeSettings =>
    deps.probes ?? invalid('probes are off on this worker: it was started without probe settings');

  /** Starts probes of images not probed yet (the daily hook's part); answers the workflow ids started. */
  async function probeIfNew(
    germline: string,
    images: { repo: string; digest: string }[],
    trigger: ProbeTrigger,
  ): Promise<string[]> {
    const started: string[] = [];
    const taskQueue = Context.current().info.taskQueue;
    for (const image of images) {
      if (await hasBeenProbed(db, image.repo, image.digest)) continue;
      const result = await untilCancelled(() =>
        startProbe(client, taskQueue, { version: 1, ...image, germline, trigger }),
      );
      if (result.started) started.push(result.workflowId);
    }
    return started;
  }

  return {
    async beginProbe({ probeId, request }) {
      await validate(store, request);
      let suite: string;
      try {
        suite = request.suite ?? (await newestSuiteVersion());
        await loadSuite(suite);
      } catch (error) {
        if (error instanceof SuiteError) invalid(error.message);
        throw error;
      }
      const detector = deps.probes?.detector;
      const judge: ProbeJudgeSpec =
        request.judge ?? (detector ? { kind: 'detector', image: detector } : { kind: 'rules' });
      const row = {
        workflowId: probeWorkflowId(request.repo, request.digest),
        repository: request.repo,
        digest: request.digest,
        suite,
        judge: judgeName(judge, suite),
        trigger: request.trigger,
        requestedBy: request.requestedBy ?? null,
      };
      await db.probe.upsert({ where: { id: probeId }, create: { id: probeId, ...row, state: 'running' }, update: row });
      return { suite, judge };
    },

    async noteProbeAttempt({ probeId, attempt }) {
      await db.probe.update({ where: { id: probeId }, data: { attempts: attempt } });
    },

    async startProbeInstance({ probeId, request, attempt }) {
      const probes = settings();
      const id = probeInstanceId(request.digest, probeId, attempt);
      try {
        const taskQueue = Context.current().info.taskQueue;
        await untilCancelled(() =>
          launchInstance(client, taskQueue, {
            version: 1,
            id,
            image: { repo: request.repo, reference: request.digest },
            payer: germlineWorkflowId(request.germline),
            currency: probes.currency,
            // Private, with no owner: only operators see it; nobody but the probe talks to it.
            visibility: 'private',
            runner: probes.runner,
            gpus: 1,
            ratePerGpuHour: probes.ratePerGpuHour.toString(),
            idleTimeoutSeconds: 0,
            maxDurationSeconds: probes.maxDurationSeconds ?? 1800,
            maxCost: probes.maxCost.toString(),
            ...(probes.leaseSeconds ? { leaseSeconds: probes.leaseSeconds } : {}),
            ...(probes.checkSeconds ? { checkSeconds: probes.checkSeconds } : {}),
          }),
        );
      } catch (error) {
        // A retried activity finds the instance it launched.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
      return { instanceId: id };
    },

    async awaitProbeInstance({ instanceId }) {
      const handle = instanceHandle(client, instanceId);
      for (;;) {
        Context.current().heartbeat();
        const status = await untilCancelled(() => handle.query(instanceStatusQuery));
        if (status.state === 'ready' && status.endpoint) return { endpoint: status.endpoint };
        if (
          FINAL_INSTANCE_STATES.includes(status.state) ||
          status.state === 'draining' ||
          status.state === 'sleeping'
        ) {
          throw ApplicationFailure.create({
            type: 'ProbeInstanceFailed',
            message: `instance ${instanceId} ${status.state}${status.reason ? `: ${status.reason}` : ''}`,
            nonRetryable: true,
          });
        }
        // Rejects when the activity is cancelled (the worker shutting down): no query outlives the worker.
        await Context.current().sleep(POLL_MS);
      }
    },

    async runProbeSuite({ request, suite: version, instanceId, endpoint }) {
      const suite = await loadSuite(version);
      const model = await servedModel(endpoint);
      const exchanges: ProbeExchange[] = [];
      for (const prompt of suite.prompts) {
        Context.current().heartbeat(prompt.id);
        const messages: ChatMessage[] = [
          ...(prompt.system ? [{ role: 'system' as const, content: prompt.system }] : []),
          { role: 'user', content: prompt.user },
        ];
        const answer = await complete(endpoint, model, messages, suite.maxTokens);
        exchanges.push({ prompt: prompt.id, category: prompt.category, messages, answer });
      }
      return { suite: version, repo: request.repo, digest: request.digest, instanceId, exchanges };
    },

    async stopProbeInstance({ instanceId, probeId }) {
      const handle = instanceHandle(client, instanceId);
      try {
        const status = await untilCancelled(() => handle.query(instanceStatusQuery));
        if (FINAL_INSTANCE_STATES.includes(status.state)) return;
        // The update waits for the instance to stop: the longest call here, the first to abort at shutdown.
        await untilCancelled(() =>
          handle.executeUpdate(stopInstanceUpdate, {
            args: [{ by: `probe ${probeId}`, reason: 'the probe is done with it' }],
          }),
        );
      } catch (error) {
        // Never launched (the attempt failed before): nothing to stop.
        if (error instanceof WorkflowNotFoundError) return;
        throw error;
      }
    },

    async judgeProbeTranscript({ transcript, judge }) {
      if (judge.kind === 'rules') return judgeByRules(await loadSuite(transcript.suite), transcript);
      const { repo, reference } = parseReference(judge.image);
      const digest = (await requireManifest(store, repo, reference)).digest;
      const detector = await db.instance.findFirst({
        where: { repository: repo, digest, state: 'ready', endpoint: { not: null } },
        orderBy: { createdAt: 'desc' },
      });
      if (!detector?.endpoint)
        throw new Error(
          `no instance of the detector ${judge.image} is ready: launch one (computatrum launch ${judge.image})`,
        );
      return judgeByDetector({ image: judge.image, endpoint: detector.endpoint }, transcript);
    },

    async recordProbeVerdict({ probeId, request, attempts, transcript, verdict, recordedAt }) {
      const { recordingId } = await recordProbeTranscript({ db, store }, { probeId, transcript, verdict, recordedAt });
      const row = await db.$transaction(async (tx) => {
        const probe = await tx.probe.update({
          where: { id: probeId },
          data: {
            state: verdict.verdict,
            attempts,
            judge: verdict.judge,
            reason: verdict.reason,
            findings: verdict.findings as object[],
            recordingId,
            finishedAt: new Date(recordedAt),
          },
        });
        if (verdict.verdict === 'flagged') {
          // An operator's decision on this digest stands: a cleared flag stays cleared, a confirmed one confirmed.
          const existing = await tx.imageFlag.findUnique({
            where: { repository_digest: { repository: request.repo, digest: request.digest } },
          });
          if (!existing)
            await tx.imageFlag.create({
              data: {
                repository: request.repo,
                digest: request.digest,
                probeId,
                state: 'pending',
                reason: verdict.reason,
              },
            });
          else if ((BLOCKING_FLAG_STATES as readonly string[]).includes(existing.state))
            await tx.imageFlag.update({
              where: { repository_digest: { repository: request.repo, digest: request.digest } },
              data: { probeId, reason: verdict.reason },
            });
        }
        return probe;
      });
      if (verdict.verdict === 'flagged')
        deps.logger?.warn(
          { repository: request.repo, digest: request.digest, probeId, reason: verdict.reason },
          'a probe flagged an image: it waits for an operator on /operator',
        );
      return outcomeOf(row);
    },

    async recordProbeError({ probeId, attempts, reason }) {
      const row = await db.probe.update({
        where: { id: probeId },
        data: { state: 'error', attempts, reason, finishedAt: new Date() },
      });
      return outcomeOf(row);
    },

    async startDailyProbes({ germline, tag }) {
      if (!deps.probes) return { started: [], off: true };
      const repo = germlineRepository(germline);
      const day = await requireManifest(store, repo, tag);
      return { started: await probeIfNew(germline, [{ repo, digest: day.digest }], 'daily') };
    },

    async sweepBreedVersions({ germline }) {
      if (!deps.probes) return { started: [], off: true };
      // The germline's newest gpc tag, if its daily probe could not start (older days are not probed
      // after the fact: each probe is an instance the germline pays for), and breed versions pushed
      // since the last sweep (a push goes straight to the store): each digest never probed, once.
      const limit = deps.probes.sweepLimit ?? DEFAULT_SWEEP_LIMIT;
      const repo = germlineRepository(germline);
      const newestDay = (await store.listTags(repo))
        .filter((tag) => tag.startsWith('gpc-'))
        .sort()
        .at(-1);
      const breeds = await db.breed.findMany({ select: { repository: true }, orderBy: { createdAt: 'asc' } });
      const candidates = [
        ...(newestDay ? [{ repo, tags: [newestDay] }] : []),
        ...(await Promise.all(
          breeds.map(async (b) => ({ repo: b.repository, tags: await store.listTags(b.repository) })),
        )),
      ];
      const versions: { repo: string; digest: string }[] = [];
      for (const { repo, tags } of candidates) {
        for (const tag of tags) {
          const manifest = await store.getManifest(repo, tag);
          if (manifest && !versions.some((v) => v.repo === repo && v.digest === manifest.digest))
            versions.push({ repo, digest: manifest.digest });
        }
      }
      const fresh: { repo: string; digest: string }[] = [];
      for (const version of versions) {
        if (fresh.length >= limit) break;
        if (!(await hasBeenProbed(db, version.repo, version.digest))) fresh.push(version);
      }
      const [days, pushes] = [fresh.filter((v) => v.repo === repo), fresh.filter((v) => v.repo !== repo)];
      return {
        started: [...(await probeIfNew(germline, days, 'daily')), ...(await probeIfNew(germline, pushes, 'push'))],
      };
    },
  };
}
