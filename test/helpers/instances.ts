// Instance requests as the workflow tests launch them: the germline's head, public, on the local
// runner, one GPU at 36.00 an hour (a cent a GPU-second, so every charge is easy to check), never
// asleep, its process checked every second; each test overrides what it is about.
import type { InstanceRequest } from '../../workflows/instance-api';
import { germlineWorkflowId } from '../../workflows/names';
import { uniqueName } from './temporal';

export function germlineInstanceRequest(germline: string, overrides: Partial<InstanceRequest> = {}): InstanceRequest {
  return {
    version: 1,
    id: uniqueName('inst'),
    image: { repo: `germline/${germline}`, reference: 'main' },
    payer: germlineWorkflowId(germline),
    currency: 'usd',
    visibility: 'public',
    runner: 'local',
    gpus: 1,
    ratePerGpuHour: '3600',
    idleTimeoutSeconds: 0,
    maxDurationSeconds: 3600,
    maxCost: '1000000',
    leaseSeconds: 30,
    checkSeconds: 1,
    ...overrides,
  };
}
