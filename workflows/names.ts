// Every name computatrum gives to things, in one place: the patterns names must match, the ids of
// workflows and the repositories and books that belong to them. Workflows, activities, the platform
// and the CLI build these strings only through here, so two callers never disagree on an id.

/** A germline's, child's or training run's name: lowercase letters, digits and dashes, at most 63. */
export const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const NAME_RULE = 'lowercase letters, digits and dashes, starting with a letter or digit (at most 63)';

/** A person's account handle (also the owner a child leaves to): 2 to 39 characters, like GitHub's. */
export const ACCOUNT_HANDLE = /^[a-z0-9][a-z0-9-]{1,38}$/;
export const ACCOUNT_HANDLE_RULE =
  'a handle is 2 to 39 lowercase letters, digits and dashes, starting with a letter or digit';

/** An OCI repository name (the Distribution spec's path grammar). */
export const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

const name = NAME.source.slice(1, -1);
const handle = ACCOUNT_HANDLE.source.slice(1, -1);

export const germlineWorkflowId = (germline: string): string => `germline/${germline}`;
export const germlineRepository = (germline: string): string => `germline/${germline}`;

export const childWorkflowId = (germline: string, child: string): string => `child/${germline}/${child}`;
/** Every child workflow of a germline starts with this (a payer prefix for queries). */
export const childWorkflowPrefix = (germline: string): string => `child/${germline}/`;
export const childRepository = (child: string): string => `children/${child}`;

export const creditWorkflowId = (handle: string): string => `credit/${handle}`;

/** A sponsor's fund (its grants pay for personal users' calls), and its book in the journal. */
export const sponsorWorkflowId = (sponsor: string): string => `sponsor/${sponsor}`;
export const sponsorBook = (sponsor: string): string => `sponsors/${sponsor}`;
/** A trainer's book in the journal. */
export const creditBook = (handle: string): string => `trainers/${handle}`;

/** Where an account's own repositories live: `trainers/<handle>/`. */
export const trainerNamespace = (handle: string): string => `trainers/${handle}/`;
/** Where a child's branch goes when it leaves to a trainer. */
export const trainerRepository = (handle: string, repository: string): string =>
  `${trainerNamespace(handle)}${repository}`;

export const trainingWorkflowId = (run: string): string => `training/${run}`;
/** The tag a training run's checkpoints carry in its output repository. */
export const runTag = (run: string): string => `run-${run}`;

export const dailyGpcWorkflowId = (germline: string, day: string): string => `daily-gpc/${germline}/${day}`;

/** The germline learning from feedback: building the datasets, the run, promoting what passes the gate. */
export const learnWorkflowId = (run: string): string => `learn/${run}`;

/** The germline's first day on a fresh install: its first training run and gpc tag. */
export const genesisWorkflowId = (germline: string): string => `genesis/${germline}`;

/** The workflows that hold a budget and may pay: a germline, one of its children, a trainer's credit, a sponsor's fund. */
export const PAYER = new RegExp(`^(germline/${name}|child/${name}/${name}|credit/${handle}|sponsor/${handle})$`);

export const instanceWorkflowId = (instance: string): string => `instance/${instance}`;

/** Credit reserved for a payer's priced calls, metered by the gateway (db/usage.ts). */
export const allotmentWorkflowId = (allotment: string): string => `allotment/${allotment}`;
/** The reservation ref of an allotment, and the deposit reference of the platform's fee from it. */
export const allotmentReservationRef = (allotment: string): string => `allotment/${allotment}`;
export const usageFeeReference = (allotment: string): string => `usage-fee/${allotment}`;

/** A behaviour probe of one image: once per repository and manifest digest (`probe/<repo>@<digest>`). */
export const probeWorkflowId = (repository: string, digest: string): string => `probe/${repository}@${digest}`;
