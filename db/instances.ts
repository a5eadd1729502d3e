// The Instance row of a launch: written by whoever launches first (the platform, before it starts the
// workflow, so the id it answers can be seen and stopped at once; or the workflow's preparation),
// kept as it is by the other. The workflow records each state into it afterwards.
import type { InstanceRequest } from '../workflows/instance-api';
import type { Database } from './prisma';

export async function recordLaunch(db: Database, request: InstanceRequest, digest: string): Promise<void> {
  await db.instance.upsert({
    where: { id: request.id },
    update: {},
    create: {
      id: request.id,
      repository: request.image.repo,
      reference: request.image.reference,
      digest,
      payer: request.payer,
      ownerHandle: request.owner ?? null,
      visibility: request.visibility,
      runner: request.runner,
      gpus: request.gpus,
      ratePerGpuHour: BigInt(request.ratePerGpuHour),
      currency: request.currency,
      maxCost: BigInt(request.maxCost),
      idleTimeoutSeconds: request.idleTimeoutSeconds,
      maxDurationSeconds: request.maxDurationSeconds,
      state: 'pending',
    },
  });
}
