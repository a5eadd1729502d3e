// Germlines that are running when a new computatrum is deployed go on under the new code: a history
// recorded by the code of commit 0dc56fd (budget answers waited for the journal then) replays with
// the current workflows without a nondeterminism error. Recorded by running that commit's worker
// against a dev server (deposits, four concurrent reserves, a settle, a release and a repeated
// deposit) and writing `History.toObject` of `fetchHistory()`. (The SDK's own historyFromJSON cannot
// be used here: it meets two protobufjs versions in node_modules and fails with "type must be a Type".)
// A second history, recorded the same way by the code before ended children were archived in
// PostgreSQL: four children spawned, two retired and settled, and the run's continue-as-new carrying
// every child; it replays without the archive (the patch germline-archive-ended-children).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { quietTemporalLogs } from '../helpers/temporal';
import { testGlobals } from '../setup/globals';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const { History } = temporal.api.history.v1;

test.each([
  ['germline-history-0dc56fd.json', 8],
  ['germline-history-children-before-archive.json', 65],
])('%s replays with the current workflows', async (file, updates) => {
  quietTemporalLogs();
  const history = History.fromObject(JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')));
  expect(history.events.filter((e) => e.workflowExecutionUpdateCompletedEventAttributes)).toHaveLength(updates);
  await expect(
    Worker.runReplayHistory(
      { workflowBundle: { codePath: testGlobals().workflowBundlePath } },
      history,
      'germline/recorded',
    ),
  ).resolves.toBeUndefined();
});
