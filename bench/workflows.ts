// The benchmark worker's workflows: the project's, plus a bare workflow whose updates do nothing,
// the baseline that measures the engine's own cost of an update round trip.
import { condition, defineUpdate, setHandler } from '@temporalio/workflow';

export * from '../workflows';

export const noopUpdate = defineUpdate<void, [unknown]>('noop');

export async function bareUpdateWorkflow(): Promise<void> {
  setHandler(noopUpdate, () => undefined);
  await condition(() => false);
}
