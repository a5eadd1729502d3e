// Every workflow the worker registers.
export { germlineWorkflow } from './germline';
export { dailyGpcScheduleWorkflow, dailyGpcWorkflow } from './daily-gpc';
export { trainingWorkflow } from './training';
export { childWorkflow } from './child';
export { creditWorkflow } from './credit';
export { instanceWorkflow } from './instance';
export { genesisWorkflow } from './genesis';
export { learnWorkflow } from './learn';
export { allotmentWorkflow } from './allotment';
export { sponsorWorkflow } from './sponsor';
export { probeWorkflow } from './probe';
export { probeSweepWorkflow, datasetBuildsWorkflow } from './maintenance';
