// The germline's scheduled upkeep beside the daily tag, each started by its own Temporal Schedule at
// its configured cron (temporal/schedules.ts): the probe sweep (breed versions and the newest gpc tag
// never probed) and the dataset builds (the feedback not learned yet, built beside the images it is
// about). Each is one idempotent activity: a run that repeats, or overlaps another, changes nothing.
import { proxyActivities } from '@temporalio/workflow';
import type { DatasetActivities } from '../activities/datasets';
import type { ProbeActivities } from '../activities/probes';

const { sweepBreedVersions } = proxyActivities<ProbeActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

const { buildFeedbackDatasets } = proxyActivities<DatasetActivities>({
  // A dataset is every unlearned record of an image: seconds for thousands of records.
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 10 },
});

export async function probeSweepWorkflow(input: { germline: string }): Promise<{ started: string[]; off?: boolean }> {
  return sweepBreedVersions(input);
}

export async function datasetBuildsWorkflow(input: { germline: string }): Promise<{ datasets: string[] }> {
  return buildFeedbackDatasets(input);
}
