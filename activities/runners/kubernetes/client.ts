// The Kubernetes client library, loaded once, and the KubeConfig the runner reaches the API with
// (the pod's service account, a kubeconfig file, or the usual lookup).
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { KubernetesRunnerError, messageOf } from './api-errors';

export type KubernetesClient = typeof import('@kubernetes/client-node', { with: { 'resolution-mode': 'import' } });

let kubernetesClient: Promise<KubernetesClient> | undefined;

/** @kubernetes/client-node is an ES module: import() loads it from this CommonJS project on any Node 20. */
export function loadKubernetesClient(): Promise<KubernetesClient> {
  kubernetesClient ??= import('@kubernetes/client-node');
  return kubernetesClient;
}

/**
 * A KubeConfig from the pod's service account (inCluster), a kubeconfig file, or else the usual
 * lookup (KUBECONFIG, ~/.kube/config, then in-cluster).
 */
export async function kubeConfigFrom(
  options: { inCluster?: boolean; kubeconfigPath?: string } = {},
): Promise<KubeConfig> {
  const { KubeConfig } = await loadKubernetesClient();
  const kubeConfig = new KubeConfig();
  let source: string;
  if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new KubernetesRunnerError(
        'not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set): give a kubeconfig file instead of inCluster',
      );
    }
    kubeConfig.loadFromCluster();
    source = 'the in-cluster service account';
  } else if (options.kubeconfigPath) {
    try {
      kubeConfig.loadFromFile(options.kubeconfigPath);
    } catch (error) {
      throw new KubernetesRunnerError(`cannot read the kubeconfig ${options.kubeconfigPath}: ${messageOf(error)}`);
    }
    source = `the kubeconfig ${options.kubeconfigPath}`;
  } else {
    kubeConfig.loadFromDefault();
    source = 'the default kubeconfig (KUBECONFIG or ~/.kube/config)';
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new KubernetesRunnerError(
      `${source} names no current cluster: set its current-context (kubectl config use-context <name>)`,
    );
  }
  return kubeConfig;
}
