// Errors of the Kubernetes runner: KubernetesRunnerError, and the classification of a failed API
// call or watch (its HTTP status, its Status message) into one that says what to do about it.
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

/** A misconfiguration or an API failure, with what to do about it. */
export class KubernetesRunnerError extends Error {
  override name = 'KubernetesRunnerError';
  constructor(
    message: string,
    /** The HTTP status the API answered, when it answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The HTTP status of a failed API call (ApiException.code) or watch (statusCode); undefined when none came back. */
export function apiStatus(error: unknown): number | undefined {
  const candidate = error as { code?: unknown; statusCode?: unknown } | null | undefined;
  if (typeof candidate?.code === 'number') return candidate.code;
  if (typeof candidate?.statusCode === 'number') return candidate.statusCode;
  return undefined;
}

/** The message of the Status object an API error carries, when it carries one. */
function statusMessage(error: unknown): string | undefined {
  const raw = (error as { body?: unknown } | null)?.body;
  let body = raw;
  if (typeof raw === 'string') {
    try {
      body = JSON.parse(raw);
    } catch {
      return raw.trim() || undefined;
    }
  }
  const message = (body as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

export function explainApiError(
  error: unknown,
  action: string,
  kubeConfig: KubeConfig,
  namespace: string,
): KubernetesRunnerError {
  const status = apiStatus(error);
  const server = kubeConfig.getCurrentCluster()?.server ?? 'the configured server';
  if (status === 401 || status === 403) {
    return new KubernetesRunnerError(
      `the Kubernetes API at ${server} refused to ${action} (HTTP ${status}): check the service account's RBAC for jobs in namespace ${namespace} ` +
        '(the Role in deploy/kustomize/base/rbac.yaml) and its credentials',
      status,
    );
  }
  if (status === 422) {
    return new KubernetesRunnerError(
      `the Kubernetes API rejected the Job as invalid: ${statusMessage(error) ?? messageOf(error)}; fix the training Job template or the run's settings`,
      status,
    );
  }
  if (status !== undefined) {
    return new KubernetesRunnerError(
      `the Kubernetes API could not ${action} (HTTP ${status}): ${statusMessage(error) ?? 'no message'}`,
      status,
    );
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (
    (error as { name?: unknown } | null)?.name === 'FetchError' ||
    (typeof code === 'string' && /^E[A-Z]/.test(code))
  ) {
    return new KubernetesRunnerError(
      `cannot reach the Kubernetes API at ${server} to ${action} (${messageOf(error)}): check the kubeconfig's server address and the network to it`,
    );
  }
  return new KubernetesRunnerError(`could not ${action}: ${messageOf(error)}`);
}

export function messageOf(error: unknown): string {
  return (error as { message?: unknown } | null)?.message
    ? String((error as { message: unknown }).message)
    : String(error);
}
