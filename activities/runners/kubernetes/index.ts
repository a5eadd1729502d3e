// The Kubernetes training runner: runs a training run as a batch/v1 Job built from
// deploy/training-job.yaml, watches it to an outcome and counts its GPU-seconds. The pod pulls its
// base and pushes its output itself. job.ts builds the Job, runner.ts creates or adopts it,
// monitor.ts follows it through watch.ts, api-errors.ts explains API failures, client.ts loads the
// client library and the kubeconfig. instances.ts runs hosted instances as Deployments behind
// Services. This index re-exports what the rest of the project uses.
export { KubernetesRunnerError } from './api-errors';
export { kubeConfigFrom } from './client';
export { KubernetesInstanceRunner, instanceResourceName, type KubernetesInstanceRunnerOptions } from './instances';
export { trainingJobName } from './job';
export { KubernetesJobRunner, type KubernetesJobRunnerOptions } from './runner';
