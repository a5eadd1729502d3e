// @kubernetes/client-node 1.x is an ES module; Jest on Node 20 cannot require() one. Tests load it
// with Node's own loader and hand it to Jest with
//   jest.mock('@kubernetes/client-node', () => kubernetesClient.module)
// (jest.mock must sit in the test file itself). Under tsx, production code imports it natively.
import vm from 'node:vm';
import type { KubeConfig } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

export const kubernetesClient: { module: unknown } = { module: undefined };

const importNatively = new vm.Script('(specifier) => import(specifier)', {
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
}).runInThisContext() as (specifier: string) => Promise<unknown>;

/** Loads the client natively; call in beforeAll, before anything uses it. */
export async function loadKubernetesClientNatively(): Promise<void> {
  kubernetesClient.module ??= await importNatively('@kubernetes/client-node');
}

/** A KubeConfig for a plain-http API server on loopback (the fake). */
export async function loopbackKubeConfig(server: string, namespace: string): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'runner' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'runner', namespace }],
    currentContext: 'fake',
  });
  return config;
}
