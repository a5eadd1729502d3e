// The Temporal Web UI as a status board: workflows started by computatrum carry a summary in words,
// and long-lived ones keep their current details (where the money stands, an instance's state) up
// to date, read here as the UI reads them (describe's static summary, the metadata query).
import { creditHandle } from '../../platform/credit';
import { updateBudget } from '../../temporal/budget-client';
import { instanceHandle, launchInstance } from '../../temporal/instance-client';
import { depositUpdate, reserveUpdate } from '../../workflows/budget-api';
import { instanceStatusQuery } from '../../workflows/instance-api';
import { formatMoney } from '../../workflows/money';
import { germlineInstanceRequest } from '../helpers/instances';
import { eventually } from '../helpers/eventually';
import { type TestEnvironment, testEnvironment, uniqueName } from '../helpers/temporal';

let env: TestEnvironment;

beforeAll(async () => {
  env = await testEnvironment();
  await env.startWorker();
});

afterAll(async () => {
  await env?.close();
});

/** What the UI shows in a workflow's "Current Details". */
const currentDetails = async (workflowId: string) =>
  (await env.client.workflow.getHandle(workflowId).query<{ currentDetails: string }>('__temporal_workflow_metadata'))
    .currentDetails;

test("a trainer's credit says whose it is, and where its money stands after every change", async () => {
  const handle = uniqueName('board');
  const credit = await creditHandle(env.client, env.taskQueue, handle, 'usd');
  expect(await (await credit.describe()).staticSummary()).toBe(
    `credit of ${handle}: training runs and priced calls they pay for`,
  );
  await updateBudget(credit, depositUpdate, { amount: '2500', currency: 'usd', reference: 'paid-in' });
  await updateBudget(credit, reserveUpdate, { amount: '700', ref: 'a-run', purpose: 'training' });
  // As soon as the journal has booked the changes, nothing is said to wait for it.
  await eventually(
    async () =>
      (await currentDetails(credit.workflowId)) ===
      '**funded** · 18.00 USD available, 7.00 USD reserved in 1 reservation(s), 0.00 USD spent of 25.00 USD deposited'
        ? true
        : undefined,
    'the details to show the books',
  );
});

test('an instance says what it serves, for whom and who pays; its details follow its state', async () => {
  const { name } = await env.startGermline();
  // No instance runner on this worker: the launch fails, and the board says why.
  const request = germlineInstanceRequest(name, { id: uniqueName('board') });
  await launchInstance(env.client, env.taskQueue, request);
  const handle = instanceHandle(env.client, request.id);
  expect(await (await handle.describe()).staticSummary()).toBe(
    `instance ${request.id}: germline/${name}:${request.image.reference}, public, paid by germline/${name}, at most ${formatMoney(request.maxCost, 'usd')}`,
  );
  await eventually(
    async () => ((await handle.query(instanceStatusQuery)).state === 'failed' ? true : undefined),
    'the launch to fail',
  );
  expect(await currentDetails(handle.workflowId)).toBe(
    `**failed** · 0.00 USD of at most ${formatMoney(request.maxCost, 'usd')} spent, 0 s billed · the local runner of instances is not configured on this worker`,
  );
});
