// probe/<repo>@<digest>: a behaviour probe of one image, so that a malicious model is hard to spread.
// It launches an instance of the image (a private one, paid by the germline within the probe budget),
// puts the versioned probe suite to it, stops it, has the judge (the suite's rules, or a detector
// image) decide, and records the transcript as an automated recording of the image with the verdict;
// a flagged verdict flags the image for the operators. An instance that fails, or answers nothing, is
// tried again with a new instance, and after the last attempt the probe ends as an error: a probe
// that could not see the model never passes it.
import { CancellationScope, proxyActivities, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ProbeActivities } from '../activities/probes';
import { now } from './clock';
import { failureMessage } from './failures';
import type { ProbeOutcome, ProbeRequest, ProbeTranscript, ProbeVerdict } from './probe-api';
import { Payer, RunKind, RunState } from './search-attributes';
import { germlineWorkflowId } from './names';

/** Rows and the store: quick, idempotent, retried until they succeed. */
const bookkeeping = proxyActivities<ProbeActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** Launching and talking to the probed instance: a few tries each, then the attempt is over. */
const probing = proxyActivities<ProbeActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    maximumInterval: '30 seconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: ['ProbeInstanceFailed', 'ProbeRequestInvalid'],
  },
});

/** The judge may be another instance (a detector image): retried a while, then the probe is an error. */
const judging = proxyActivities<ProbeActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

const DEFAULT_ATTEMPTS = 3;
const DEFAULT_RETRY_DELAY_SECONDS = 60;

export async function probeWorkflow(request: ProbeRequest): Promise<ProbeOutcome> {
  const probeId = workflowInfo().runId;
  const attempts = Math.max(1, Math.min(request.attempts ?? DEFAULT_ATTEMPTS, 10));
  upsertSearchAttributes([
    { key: RunKind, value: 'probe' },
    { key: Payer, value: germlineWorkflowId(request.germline) },
    { key: RunState, value: 'running' },
  ]);
  const finish = (outcome: ProbeOutcome): ProbeOutcome => {
    upsertSearchAttributes([{ key: RunState, value: outcome.state }]);
    return outcome;
  };

  const { suite, judge } = await bookkeeping.beginProbe({ probeId, request });
  let transcript: ProbeTranscript | undefined;
  let lastFailure = 'no attempt was made';
  let attempt = 0;
  while (!transcript && attempt < attempts) {
    attempt += 1;
    await bookkeeping.noteProbeAttempt({ probeId, attempt });
    let instanceId: string | undefined;
    try {
      instanceId = (await probing.startProbeInstance({ probeId, request, attempt })).instanceId;
      const { endpoint } = await probing.awaitProbeInstance({ instanceId });
      transcript = await probing.runProbeSuite({ request, suite, instanceId, endpoint });
    } catch (error) {
      lastFailure = `attempt ${attempt}: ${failureMessage(error)}`;
    }
    // Whatever happened, the instance stops now: its last lease is settled, nothing more is paid.
    if (instanceId) {
      const id = instanceId;
      await CancellationScope.nonCancellable(() => bookkeeping.stopProbeInstance({ instanceId: id, probeId }));
    }
    if (!transcript && attempt < attempts)
      await sleep((request.retryDelaySeconds ?? DEFAULT_RETRY_DELAY_SECONDS) * 1000 * attempt);
  }
  if (!transcript) {
    return finish(
      await bookkeeping.recordProbeError({
        probeId,
        attempts: attempt,
        reason: `no transcript after ${attempt} attempt(s); the last: ${lastFailure}`,
      }),
    );
  }

  let verdict: ProbeVerdict;
  try {
    verdict = await judging.judgeProbeTranscript({ transcript, judge });
  } catch (error) {
    return finish(
      await bookkeeping.recordProbeError({
        probeId,
        attempts: attempt,
        reason: `the judge failed: ${failureMessage(error)}`,
      }),
    );
  }
  return finish(
    await bookkeeping.recordProbeVerdict({
      probeId,
      request,
      attempts: attempt,
      transcript,
      verdict,
      recordedAt: now().toISOString(),
    }),
  );
}
