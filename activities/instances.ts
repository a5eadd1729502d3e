// The instance/<id> workflow's side effects: checking a launch and resolving its image to a digest,
// materializing the checkpoint read-only and starting the process through a runner (which adopts a
// process it finds already running for the id, so a restarted worker or a continued-as-new workflow
// picks up where it was), checking the process and its idleness, stopping it, and keeping the
// Instance row that the platform and the gateway read.
import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { recordLaunch } from '../db/instances';
import type { Database } from '../db/prisma';
import { requireManifest } from '../store/checkpoint';
import { materializeCheckpoint } from '../store/materialize';
import { assertRepository, assertTag, isDigest } from '../store/names';
import { type CheckpointStore, StoreError } from '../store/types';
import { instanceHandle, launchInstance } from '../temporal/instance-client';
import {
  FINAL_INSTANCE_STATES,
  type InstanceRequest,
  type InstanceStatus,
  stopInstanceUpdate,
} from '../workflows/instance-api';
import { germlineRepository, germlineWorkflowId, NAME, PAYER } from '../workflows/names';
import { InstanceFailedError, type RunnerKind } from './runners/types';

/** What the workflow needs of a runner of instances (activities/runners/local-instances.ts, ...). */
export interface InstanceRunner {
  start(spec: {
    instanceId: string;
    modelDir: string;
    modelName: string;
    /** The checkpoint the model folder holds, for runners that fetch it themselves (a pod pulls it). */
    checkpoint: { repo: string; digest: string };
    gpus: number;
    command?: string[];
  }): Promise<{ endpoint: string; adopted: boolean }>;
  check(instanceId: string): Promise<{ state: 'ready' | 'starting' | 'gone'; logTail?: string }>;
  stop(instanceId: string): Promise<{ stopped: boolean }>;
}

/**
 * The germline's own public instance: a computatrum anyone can talk to on the zookeeper, paid by the
 * germline within an operator's cap, moved to each new gpc tag. Absent: the germline keeps none.
 */
export interface GermlineInstanceSettings {
  taskQueue: string;
  currency: string;
  ratePerGpuHour: bigint;
  /** The most one tag's instance may cost over its life (it is replaced by the next day's). */
  maxCost: bigint;
  idleTimeoutSeconds: number;
  runner: RunnerKind;
}

export interface InstanceActivities {
  prepareInstance(input: { request: InstanceRequest }): Promise<{ digest: string }>;
  startInstance(input: { request: InstanceRequest; digest: string }): Promise<{ endpoint: string }>;
  checkInstance(input: {
    id: string;
  }): Promise<{ process: 'ready' | 'starting' | 'gone'; lastRequestAt?: string; logTail?: string }>;
  stopInstance(input: { id: string }): Promise<void>;
  recordInstance(input: { status: InstanceStatus }): Promise<void>;
  /** Moves the germline's public instance to `tag` (the day's gpc checkpoint); nothing when it keeps none. */
  moveGermlineInstance(input: { germline: string; tag: string }): Promise<{ id?: string; stopped: string[] }>;
}

export interface InstanceDependencies {
  db: Database;
  store: CheckpointStore;
  /** Where instances' checkpoints are materialized: `<data>/instances/<id>/model-<digest>`. */
  instancesDir: string;
  instanceRunners: Partial<Record<RunnerKind, InstanceRunner>>;
  /** For the germline's public instance: starting and stopping instance workflows. */
  client?: Client;
  germlineInstance?: GermlineInstanceSettings;
}

/** The most GPUs one instance may ask for: more is a typo, not a plan. */
export const MAX_INSTANCE_GPUS = 16;

function invalid(message: string): never {
  throw ApplicationFailure.create({ type: 'InstanceRequestInvalid', message, nonRetryable: true });
}

const wholeAtLeast = (value: unknown, least: number): boolean =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= least;

/** Checks what the workflow cannot: names, the image, the runner, and the numbers a person typed. */
function validate(request: InstanceRequest, runners: InstanceDependencies['instanceRunners']): void {
  if (request.version !== 1) invalid(`unsupported instance request version ${String(request.version)}`);
  if (!NAME.test(request.id))
    invalid(`instance id "${request.id}" must be lowercase letters, digits and dashes (at most 63)`);
  if (!PAYER.test(request.payer)) {
    invalid(
      `payer "${request.payer}" is not a budget: use germline/<name>, child/<germline>/<child> or credit/<trainer>`,
    );
  }
  if (request.visibility !== 'private' && request.visibility !== 'public') invalid('visibility is private or public');
  if (!runners[request.runner]) invalid(`the ${request.runner} runner of instances is not configured on this worker`);
  if (!wholeAtLeast(request.gpus, 1) || request.gpus > MAX_INSTANCE_GPUS) {
    invalid(`gpus is a whole number from 1 to ${MAX_INSTANCE_GPUS}, not ${String(request.gpus)}`);
  }
  if (!wholeAtLeast(request.idleTimeoutSeconds, 0))
    invalid('the idle timeout is a whole number of seconds (0: never sleeps)');
  if (!wholeAtLeast(request.maxDurationSeconds, 1))
    invalid('the maximum duration is a whole number of seconds above zero');
  if (request.leaseSeconds !== undefined && !wholeAtLeast(request.leaseSeconds, 1))
    invalid('a lease is at least 1 second');
  if (request.checkSeconds !== undefined && !wholeAtLeast(request.checkSeconds, 1))
    invalid('checks are at least 1 second apart');
  try {
    assertRepository(request.image.repo);
    if (!isDigest(request.image.reference)) assertTag(request.image.reference);
  } catch (error) {
    invalid((error as Error).message);
  }
}

const modelFolder = (instancesDir: string, id: string, digest: string) =>
  path.join(instancesDir, id, `model-${digest.slice('sha256:'.length, 'sha256:'.length + 16)}`);

/** Materializes the checkpoint once per digest, verified file by file, and leaves it read-only. */
async function materializeReadOnly(store: CheckpointStore, repo: string, digest: string, dir: string): Promise<void> {
  const done = path.join(dir, '.complete');
  if (await stat(done).catch(() => undefined)) return;
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await materializeCheckpoint(store, repo, digest, partial);
  await writeFile(path.join(partial, '.complete'), `${digest}\n`);
  // The instance reads its model and may never change it: the next start adopts these very files.
  const files = await readdir(partial, { recursive: true });
  for (const file of files) await chmod(path.join(partial, file), 0o444).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  await rename(partial, dir);
}

/**
 * Launches the germline's public instance of `tag` (idempotent: its id is the germline and the tag)
 * and stops the germline's other public instances, so the zookeeper always serves the newest day.
 */
export async function moveGermlineInstance(
  deps: { db: Database; client: Client; settings: GermlineInstanceSettings },
  germline: string,
  tag: string,
): Promise<{ id: string; stopped: string[] }> {
  const { db, client, settings } = deps;
  const id = `${germline}-${tag}`.slice(0, 63).replace(/-+$/, '');
  try {
    await launchInstance(client, settings.taskQueue, {
      version: 1,
      id,
      image: { repo: germlineRepository(germline), reference: tag },
      payer: germlineWorkflowId(germline),
      currency: settings.currency,
      visibility: 'public',
      runner: settings.runner,
      gpus: 1,
      ratePerGpuHour: settings.ratePerGpuHour.toString(),
      idleTimeoutSeconds: settings.idleTimeoutSeconds,
      // Replaced by the next day's tag; two days is the backstop if a day is missed.
      maxDurationSeconds: 2 * 86_400,
      maxCost: settings.maxCost.toString(),
    });
  } catch (error) {
    // A retried activity (or a second start of `up`) finds it launched: that is the instance.
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
  const older = await db.instance.findMany({
    where: {
      payer: germlineWorkflowId(germline),
      visibility: 'public',
      ownerHandle: null,
      id: { not: id },
      state: { notIn: [...FINAL_INSTANCE_STATES] },
    },
    select: { id: true },
  });
  for (const { id: old } of older) {
    await instanceHandle(client, old).executeUpdate(stopInstanceUpdate, {
      args: [{ by: germlineWorkflowId(germline), reason: `replaced by ${id}` }],
    });
  }
  return { id, stopped: older.map((o) => o.id) };
}

export function createInstanceActivities(deps: InstanceDependencies): InstanceActivities {
  const { db, store } = deps;
  const runner = (kind: RunnerKind): InstanceRunner =>
    deps.instanceRunners[kind] ?? invalid(`the ${kind} runner of instances is not configured on this worker`);

  return {
    async prepareInstance({ request }) {
      validate(request, deps.instanceRunners);
      let digest: string;
      try {
        digest = (await requireManifest(store, request.image.repo, request.image.reference)).digest;
      } catch (error) {
        if (error instanceof StoreError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN')) {
          invalid(error.message);
        }
        throw error;
      }
      await recordLaunch(db, request, digest);
      return { digest };
    },

    async startInstance({ request, digest }) {
      const modelDir = modelFolder(deps.instancesDir, request.id, digest);
      await materializeReadOnly(store, request.image.repo, digest, modelDir);
      try {
        const started = await runner(request.runner).start({
          instanceId: request.id,
          modelDir,
          modelName: `${request.image.repo}:${request.image.reference}`,
          checkpoint: { repo: request.image.repo, digest },
          gpus: request.gpus,
          ...(request.command ? { command: request.command } : {}),
        });
        return { endpoint: started.endpoint };
      } catch (error) {
        if (error instanceof InstanceFailedError) {
          throw ApplicationFailure.create({ type: 'InstanceFailed', message: error.message, nonRetryable: true });
        }
        throw error;
      }
    },

    async checkInstance({ id }) {
      const row = await db.instance.findUnique({ where: { id }, select: { runner: true, lastRequestAt: true } });
      if (!row) return { process: 'gone', logTail: `no instance ${id} is recorded` };
      const checked = await runner(row.runner as RunnerKind).check(id);
      return {
        process: checked.state,
        ...(row.lastRequestAt ? { lastRequestAt: row.lastRequestAt.toISOString() } : {}),
        ...(checked.logTail ? { logTail: checked.logTail } : {}),
      };
    },

    async stopInstance({ id }) {
      const row = await db.instance.findUnique({ where: { id }, select: { runner: true } });
      if (!row) return;
      await runner(row.runner as RunnerKind).stop(id);
    },

    async moveGermlineInstance({ germline, tag }) {
      if (!deps.client || !deps.germlineInstance) return { stopped: [] };
      return moveGermlineInstance({ db, client: deps.client, settings: deps.germlineInstance }, germline, tag);
    },

    async recordInstance({ status }) {
      await db.instance.updateMany({
        where: { id: status.id },
        data: {
          state: status.state,
          endpoint: status.endpoint ?? null,
          cost: BigInt(status.cost),
          billedSeconds: status.billedSeconds,
          reason: status.reason ?? null,
          ...(status.digest ? { digest: status.digest } : {}),
        },
      });
    },
  };
}
