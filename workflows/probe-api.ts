// A behaviour probe's messages and inputs: shared by the `probe/<repo>@<digest>` workflow, its
// activities, the platform (GraphQL, pages, the publish hook) and the CLI.

/** What made the probe run: a new gpc tag, a breed published (or a new version of one), or an operator. */
export type ProbeTrigger = 'daily' | 'publish' | 'push' | 'manual';

/**
 * Who decides whether a transcript is malicious: the suite's own rules, or a "detector" image served
 * through the instance contract (a running instance of it classifies the transcript).
 */
export type ProbeJudgeSpec = { kind: 'rules' } | { kind: 'detector'; image: string };

/** Versioned so that probes started by an older daemon keep replaying after an upgrade. */
export interface ProbeRequestV1 {
  version: 1;
  /** The image: a repository of the store and one manifest digest in it (never a tag: tags move). */
  repo: string;
  digest: string;
  /** The germline whose budget pays for the probe's instance (`germline/<name>`). */
  germline: string;
  trigger: ProbeTrigger;
  /** The operator who started it by hand, or the account whose publish started it. */
  requestedBy?: string;
  /** The suite's version (probes/<version>.json); absent: the newest this worker has. */
  suite?: string;
  /** Absent: the worker's configured judge (the rules unless COMPUTATRUM_PROBE_DETECTOR names an image). */
  judge?: ProbeJudgeSpec;
  /** Instances launched before the probe ends as an error (default 3); a failed one is never a pass. */
  attempts?: number;
  /** Wait before the next attempt, times the attempt number (default 60). */
  retryDelaySeconds?: number;
}

export type ProbeRequest = ProbeRequestV1;

/** passed: nothing suspicious; flagged: the judge found malicious behaviour; error: no transcript could be judged. */
export type ProbeState = 'running' | 'passed' | 'flagged' | 'error';

/** One finding of the judge: which prompt, which rule, and the part of the answer that matched. */
export interface ProbeFinding {
  prompt: string;
  category: string;
  rule: string;
  why: string;
  excerpt?: string;
}

export interface ProbeVerdict {
  verdict: 'passed' | 'flagged';
  /** The judge that decided: `rules:<suite>` or `detector:<image>`. */
  judge: string;
  findings: ProbeFinding[];
  reason: string;
}

/** One exchange of the suite with the probed instance. */
export interface ProbeExchange {
  prompt: string;
  category: string;
  messages: { role: 'system' | 'user' | 'assistant'; content: string }[];
  answer: string;
}

export interface ProbeTranscript {
  suite: string;
  repo: string;
  digest: string;
  instanceId: string;
  exchanges: ProbeExchange[];
}

export interface ProbeOutcome {
  probeId: string;
  state: Exclude<ProbeState, 'running'>;
  attempts: number;
  suite: string;
  judge?: string;
  reason: string;
  findings: ProbeFinding[];
  /** The recording that holds the transcript (a referrer of the image's manifest). */
  recordingId?: string;
}
