// The benchmark worker's workflows: the project's, plus bare baselines that measure the engine's own
// cost: a workflow whose updates do nothing, and a parent that starts a bare child per update.
import { condition, defineUpdate, ParentClosePolicy, setHandler, startChild, workflowInfo } from '@temporalio/workflow';

export * from '../workflows';

export const noopUpdate = defineUpdate<void, [unknown]>('noop');

export async function bareUpdateWorkflow(): Promise<void> {
  setHandler(noopUpdate, () => undefined);
  await condition(() => false);
}

/** The baseline of bench/spawn: a parent that starts a bare child per update, with nothing else to do. */
export const spawnBareUpdate = defineUpdate<string, [string]>('spawnBare');

export async function bareChildWorkflow(): Promise<void> {
  await condition(() => false);
}

export async function bareParentWorkflow(): Promise<void> {
  setHandler(spawnBareUpdate, async (name) => {
    const child = await startChild(bareChildWorkflow, {
      workflowId: `${workflowInfo().workflowId}/${name}`,
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    return child.workflowId;
  });
  await condition(() => false);
}
