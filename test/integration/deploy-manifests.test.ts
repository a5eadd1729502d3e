// deploy/ as an operator applies it: every manifest, and every overlay as the real kustomize renders
// it (`kubectl kustomize` is the same code), validated against the Kubernetes schema
// (kubernetes-models), then read for what would break a cluster: the two Deployments and their
// commands, probes, metrics port, the runner's ServiceAccount and Role, the registry password as a
// mounted file, the volumes, the shutdown grace, the network policies, no Secret values.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { V1Job } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { buildTrainingJob, DEFAULT_TRAINING_JOB_TEMPLATE } from '../../activities/runners/kubernetes/job';
import { loadConfig } from '../../runtime/config';
import { PROJECT_ROOT } from '../../runtime/paths';
import { KUSTOMIZE, requireTool } from '../../runtime/tools';

const execute = promisify(execFile);
const DEPLOY = path.join(PROJECT_ROOT, 'deploy');
const KUSTOMIZE_DIR = path.join(DEPLOY, 'kustomize');
const OVERLAYS = ['single-node', 'gpu-cluster'] as const;
const DAEMON_IMAGE = 'ghcr.io/computatrum/computatrum-daemon';
const TRAINER_IMAGE = 'ghcr.io/computatrum/computatrum-trainer';
const INSTANCE_IMAGE = 'ghcr.io/computatrum/computatrum-instance';
const METRICS_PORT = 9464;

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string } & Record<string, any>;
} & Record<string, any>;

/** The kubernetes-models class of every kind deploy/ holds. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'networking.k8s.io/v1/Ingress': Ingress,
};

function parseManifests(text: string): Manifest[] {
  return (loadAll(text) as (Manifest | null)[]).filter((doc): doc is Manifest => doc !== null);
}

function validate(manifest: Manifest, where: string): void {
  const model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
  // Custom resources (a PodMonitor, say) are not in the Kubernetes schema: they need a name at least.
  if (!model) {
    expect({ where, apiVersion: manifest.apiVersion, name: manifest.metadata?.name }).toEqual({
      where,
      apiVersion: expect.stringMatching(/\./),
      name: expect.stringMatching(/^[a-z0-9-]+$/),
    });
    return;
  }
  try {
    new model(manifest).validate();
  } catch (error) {
    throw new Error(`${where}: ${manifest.kind}/${manifest.metadata.name} is not valid: ${(error as Error).message}`);
  }
}

/** Every manifest file under deploy/: not kustomizations, not Helm values. */
function manifestFiles(dir = DEPLOY): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return manifestFiles(full);
    if (!/\.ya?ml$/.test(name) || name === 'kustomization.yaml' || full.startsWith(path.join(DEPLOY, 'temporal')))
      return [];
    return [full];
  });
}

let kustomize: string;
const rendered: Record<string, Manifest[]> = {};

async function render(dir: string): Promise<Manifest[]> {
  const { stdout } = await execute(kustomize, ['build', dir], { maxBuffer: 16 * 1024 * 1024 });
  return parseManifests(stdout);
}

beforeAll(async () => {
  kustomize = requireTool(KUSTOMIZE, loadConfig({}).toolsDir);
  for (const overlay of OVERLAYS) rendered[overlay] = await render(path.join(KUSTOMIZE_DIR, 'overlays', overlay));
  rendered.base = await render(path.join(KUSTOMIZE_DIR, 'base'));
});

const find = (manifests: Manifest[], kind: string, name: string): Manifest => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found)
    throw new Error(`no ${kind} ${name} among ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
};
const all = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
/** The one ConfigMap the Deployments read their settings from (its name carries kustomize's hash). */
const settingsOf = (manifests: Manifest[]): Record<string, string> =>
  all(manifests, 'ConfigMap').find((m) => m.metadata.name.startsWith('computatrum-') && m.data?.PLATFORM_PORT)!.data;
const containerOf = (deployment: Manifest) => deployment.spec.template.spec.containers[0];

test('every manifest file in deploy/ is valid against the Kubernetes schema', () => {
  const files = manifestFiles();
  expect(files.map((file) => path.relative(DEPLOY, file))).toEqual(
    expect.arrayContaining([
      'training-job.yaml',
      'kustomize/base/worker.yaml',
      'kustomize/base/platform.yaml',
      'kustomize/base/rbac.yaml',
      'kustomize/base/pdb.yaml',
      'kustomize/base/ingress.yaml',
      'kustomize/base/networkpolicy.yaml',
      'kustomize/overlays/gpu-cluster/training-job.yaml',
    ]),
  );
  for (const file of files) {
    for (const manifest of parseManifests(readFileSync(file, 'utf8'))) validate(manifest, path.relative(DEPLOY, file));
  }
});

test.each(['base', ...OVERLAYS])('kustomize renders %s into manifests valid against the Kubernetes schema', (name) => {
  expect(rendered[name]!.length).toBeGreaterThan(10);
  for (const manifest of rendered[name]!) validate(manifest, `kustomize build ${name}`);
});

describe.each(OVERLAYS)('the %s overlay', (overlay) => {
  const manifests = () => rendered[overlay]!;

  test('runs the worker and the platform as two Deployments of the daemon image, each with its `up --only`', () => {
    const deployments = all(manifests(), 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['computatrum-platform', 'computatrum-worker']);
    for (const part of ['worker', 'platform']) {
      const container = containerOf(find(manifests(), 'Deployment', `computatrum-${part}`));
      expect(container.command).toEqual(['node', 'bin/computatrum.js', 'up', '--only', part]);
      expect(container.image).toMatch(new RegExp(`^${DAEMON_IMAGE}:[\\w.-]+$`));
      // Their settings are the rendered ConfigMap (a hashed name) and the Secret nobody commits.
      const configMaps = container.envFrom.filter((e: any) => e.configMapRef).map((e: any) => e.configMapRef.name);
      expect(configMaps).toHaveLength(1);
      expect(find(manifests(), 'ConfigMap', configMaps[0]).data.PLATFORM_PORT).toBe('8080');
      expect(container.envFrom).toContainEqual({ secretRef: { name: 'computatrum' } });
    }
  });

  test('probes /livez and /readyz on PLATFORM_PORT, exposes the metrics port, drains within the grace', () => {
    const settings = settingsOf(manifests());
    expect(settings.COMPUTATRUM_METRICS_PORT).toBe(String(METRICS_PORT));
    const grace = Number(settings.COMPUTATRUM_SHUTDOWN_GRACE_SECONDS);
    expect(grace).toBe(30);
    for (const deployment of all(manifests(), 'Deployment')) {
      const pod = deployment.spec.template;
      const container = containerOf(deployment);
      const http = container.ports.find((p: any) => p.name === 'http');
      expect(http.containerPort).toBe(Number(settings.PLATFORM_PORT));
      expect(container.ports).toContainEqual({ name: 'metrics', containerPort: METRICS_PORT });
      expect(pod.metadata.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(METRICS_PORT),
      });
      expect(container.startupProbe.httpGet).toEqual({ path: '/livez', port: 'http' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/livez', port: 'http' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      // preStop, then the activities' grace, then at most 15 s for those that do not stop.
      const preStop = container.lifecycle.preStop.sleep.seconds;
      expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + grace + 15);
      expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(container.resources.limits.memory).toEqual(expect.any(String));
    }
  });

  test('runs as a non-root user on a read-only root filesystem, writing only to its volumes', () => {
    for (const deployment of all(manifests(), 'Deployment')) {
      const spec = deployment.spec.template.spec;
      const container = containerOf(deployment);
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      const mounts = Object.fromEntries(container.volumeMounts.map((m: any) => [m.mountPath, m.name]));
      const volumes = Object.fromEntries(spec.volumes.map((v: any) => [v.name, v]));
      expect(volumes[mounts['/tmp']].emptyDir).toBeDefined();
      expect(volumes[mounts[settingsOf(manifests()).COMPUTATRUM_DATA_DIR!]]).toBeDefined();
    }
  });

  test('reads the registry password from a mounted Secret file, and no secret value is in the manifests', () => {
    const settings = settingsOf(manifests());
    expect(settings.COMPUTATRUM_STORE).toBe('registry');
    expect(settings.COMPUTATRUM_REGISTRY_URL).toMatch(/^https:\/\//);
    for (const deployment of all(manifests(), 'Deployment')) {
      const container = containerOf(deployment);
      const mount = container.volumeMounts.find((m: any) =>
        settings.COMPUTATRUM_REGISTRY_PASSWORD_FILE!.startsWith(`${m.mountPath}/`),
      );
      expect(mount).toBeDefined();
      const volume = deployment.spec.template.spec.volumes.find((v: any) => v.name === mount.name);
      expect(volume.secret.secretName).toBe('computatrum-registry');
      expect(settings.COMPUTATRUM_REGISTRY_PASSWORD_FILE).toBe(`${mount.mountPath}/password`);
    }
    expect(all(manifests(), 'Secret')).toEqual([]);
    const secretKeys = Object.keys(settings).filter((key) =>
      /^(DATABASE_URL|TEMPORAL_API_KEY|STRIPE_SECRET_KEY|STRIPE_WEBHOOK_SECRET|COMPUTATRUM_VISITOR_SALT|COMPUTATRUM_AGENT_TOKEN|COMPUTATRUM_TOKEN)$|PASSWORD$/.test(
        key,
      ),
    );
    expect(secretKeys).toEqual([]);
    // What the daemon would make of these settings, with the Secret's values: a valid configuration.
    const config = loadConfig({ ...settings, DATABASE_URL: 'postgres://computatrum@postgres:5432/computatrum' });
    expect(config.store).toMatchObject({ kind: 'registry', passwordFile: settings.COMPUTATRUM_REGISTRY_PASSWORD_FILE });
  });

  test('lets the platform take HTTP, the worker nothing but metrics scrapes, and both reach their services', () => {
    const policies = all(manifests(), 'NetworkPolicy');
    const deny = find(manifests(), 'NetworkPolicy', 'computatrum-default-deny');
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const policyOf = (part: string) =>
      policies.find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/component'] === part)!;
    const ingressPorts = (part: string) =>
      policyOf(part).spec.ingress.flatMap((rule: any) => rule.ports.map((p: any) => p.port));
    expect(ingressPorts('platform').sort()).toEqual(['http', 'metrics']);
    expect(ingressPorts('worker')).toEqual(['metrics']);
    for (const part of ['platform', 'worker']) {
      const egress = policyOf(part).spec.egress.flatMap((rule: any) => rule.ports.map((p: any) => p.port));
      // DNS, Temporal, PostgreSQL, the registry.
      expect(egress).toEqual(expect.arrayContaining([53, 7233, 5432, 443]));
      // Each policy selects the pods of its Deployment, and the ports it names by name are theirs.
      const deployment = find(manifests(), 'Deployment', `computatrum-${part}`);
      expect(deployment.spec.template.metadata.labels).toMatchObject(policyOf(part).spec.podSelector.matchLabels);
      const named = containerOf(deployment).ports.map((p: any) => p.name);
      expect(named).toEqual(expect.arrayContaining(ingressPorts(part)));
    }
    const workerEgress = policyOf('worker').spec.egress.flatMap((rule: any) => rule.ports.map((p: any) => p.port));
    expect(workerEgress).toEqual(expect.arrayContaining([443, 6443])); // the Kubernetes API
  });

  test('exposes the platform through its Service and a TLS Ingress, and scales it by CPU', () => {
    const service = find(manifests(), 'Service', 'computatrum-platform');
    const platform = find(manifests(), 'Deployment', 'computatrum-platform');
    expect(platform.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports).toContainEqual({ name: 'http', port: 80, targetPort: 'http' });
    const ingress = find(manifests(), 'Ingress', 'computatrum-platform');
    expect(ingress.spec.tls[0].secretName).toEqual(expect.any(String));
    expect(ingress.spec.tls[0].hosts).toContain(ingress.spec.rules[0].host);
    expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({
      name: 'computatrum-platform',
      port: { name: 'http' },
    });
    const hpa = find(manifests(), 'HorizontalPodAutoscaler', 'computatrum-platform');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'computatrum-platform',
    });
    expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
    expect(find(manifests(), 'Namespace', 'computatrum')).toBeDefined();
    for (const manifest of manifests().filter((m) => m.kind !== 'Namespace'))
      expect(`${manifest.kind}/${manifest.metadata.name} in ${manifest.metadata.namespace}`).toMatch(
        / in computatrum$/,
      );
  });
});

describe('the gpu-cluster overlay', () => {
  const manifests = () => rendered['gpu-cluster']!;

  test("trains with the kubernetes runner, as the worker's own ServiceAccount bound to the runner's Role", () => {
    const settings = settingsOf(manifests());
    const worker = find(manifests(), 'Deployment', 'computatrum-worker');
    expect(settings.COMPUTATRUM_RUNNER).toBe('kubernetes');
    expect(settings.COMPUTATRUM_KUBE_NAMESPACE).toBe(worker.metadata.namespace);

    const account = worker.spec.template.spec.serviceAccountName;
    expect(account).toBe('computatrum-worker');
    expect(find(manifests(), 'ServiceAccount', account).automountServiceAccountToken).toBe(true);
    const binding = all(manifests(), 'RoleBinding').find((b) =>
      b.subjects.some((s: any) => s.kind === 'ServiceAccount' && s.name === account),
    )!;
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account, namespace: worker.metadata.namespace }]);
    const role = find(manifests(), binding.roleRef.kind, binding.roleRef.name);
    const verbs = (group: string, resource: string) =>
      role.rules.find((r: any) => r.apiGroups.includes(group) && r.resources.includes(resource))?.verbs ?? [];
    expect(verbs('batch', 'jobs')).toEqual(expect.arrayContaining(['create', 'get', 'watch', 'delete']));
    expect(verbs('', 'pods/log')).toContain('get');
    expect(verbs('apps', 'deployments')).toEqual(expect.arrayContaining(['create', 'delete']));
    expect(verbs('', 'services')).toEqual(expect.arrayContaining(['create', 'delete']));

    // The platform never calls the API: no token, no binding.
    const platform = find(manifests(), 'Deployment', 'computatrum-platform').spec.template.spec;
    expect(platform.serviceAccountName).toBe('computatrum-platform');
    expect(platform.automountServiceAccountToken).toBe(false);
    const bound = all(manifests(), 'RoleBinding').flatMap((b) => b.subjects.map((s: any) => s.name));
    expect(bound).not.toContain('computatrum-platform');
  });

  test('mounts its GPU Job template into the worker, where COMPUTATRUM_TRAINING_JOB_TEMPLATE names it', () => {
    const settings = settingsOf(manifests());
    const worker = find(manifests(), 'Deployment', 'computatrum-worker');
    const templatePath = settings.COMPUTATRUM_TRAINING_JOB_TEMPLATE!;
    const mount = containerOf(worker).volumeMounts.find((m: any) => m.mountPath === path.dirname(templatePath));
    const volume = worker.spec.template.spec.volumes.find((v: any) => v.name === mount.name);
    const configMap = find(manifests(), 'ConfigMap', volume.configMap.name);
    const template = parseManifests(configMap.data[path.basename(templatePath)])[0]!;
    validate(template, 'the GPU Job template');

    // The checkpoint claim the Jobs mount exists, shared by many nodes.
    const claim = settings.COMPUTATRUM_KUBE_CHECKPOINT_CLAIM!;
    expect(find(manifests(), 'PersistentVolumeClaim', claim).spec.accessModes).toEqual(['ReadWriteMany']);
    const podSpec = template.spec.template.spec;
    expect(podSpec.volumes.find((v: any) => v.name === 'checkpoints').persistentVolumeClaim.claimName).toBe(claim);
    expect(podSpec.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    expect(podSpec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });

    // The same template as deploy/training-job.yaml but for where its pods go.
    const reference = parseManifests(readFileSync(DEFAULT_TRAINING_JOB_TEMPLATE, 'utf8'))[0]!;
    const unscheduled = (job: Manifest) => {
      const copy = structuredClone(job);
      delete copy.spec.template.spec.nodeSelector;
      delete copy.spec.template.spec.tolerations;
      return copy;
    };
    expect(unscheduled(template)).toEqual(unscheduled(reference));

    // The runner fills it as it fills the default one: a valid Job on the GPU nodes of the run's type.
    const job = buildTrainingJob(
      template as unknown as V1Job,
      {
        runId: '2026-03-01-run1',
        output: { repo: 'germline/computatrum', branch: 'main' },
        gpus: 8,
        gpuType: 'NVIDIA-H100-80GB-HBM3',
        maxGpuSeconds: 100_000,
        maxDurationSeconds: 3600,
      },
      {
        name: 'train-2026-03-01-run1',
        namespace: settings.COMPUTATRUM_KUBE_NAMESPACE!,
        secondsLeft: 3600,
        checkpointClaim: claim,
        storeRegistry: {
          url: settings.COMPUTATRUM_REGISTRY_URL!,
          credentialsSecret: settings.COMPUTATRUM_KUBE_REGISTRY_SECRET!,
        },
      },
    ) as unknown as Manifest;
    validate(job, 'the filled GPU Job');
    expect(job.spec.template.spec.nodeSelector).toEqual({
      'nvidia.com/gpu.present': 'true',
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
    });
    expect(job.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe('8');
  });

  test('keeps a worker and a platform through a drain', () => {
    for (const part of ['worker', 'platform']) {
      const budget = find(manifests(), 'PodDisruptionBudget', `computatrum-${part}`);
      const deployment = find(manifests(), 'Deployment', `computatrum-${part}`);
      expect(budget.spec.minAvailable).toBe(1);
      expect(deployment.spec.replicas).toBeGreaterThan(1);
      expect(deployment.spec.template.metadata.labels).toMatchObject(budget.spec.selector.matchLabels);
    }
  });

  test('carries another namespace to COMPUTATRUM_KUBE_NAMESPACE and the RoleBinding', async () => {
    // The overlay as an operator copies it, with its namespace changed.
    const overlay = path.join(KUSTOMIZE_DIR, 'overlays', 'gpu-cluster');
    const copy = mkdtempSync(path.join(tmpdir(), 'gpu-overlay-'));
    try {
      for (const file of readdirSync(overlay)) copyFileSync(path.join(overlay, file), path.join(copy, file));
      const kustomization = readFileSync(path.join(copy, 'kustomization.yaml'), 'utf8')
        .replace(/^namespace: computatrum$/m, 'namespace: ml-prod')
        .replace('  - ../../base', `  - ${path.relative(copy, path.join(KUSTOMIZE_DIR, 'base'))}`);
      writeFileSync(path.join(copy, 'kustomization.yaml'), kustomization);
      const moved = await render(copy);
      expect(settingsOf(moved).COMPUTATRUM_KUBE_NAMESPACE).toBe('ml-prod');
      expect(find(moved, 'RoleBinding', 'computatrum-runner').subjects[0].namespace).toBe('ml-prod');
      expect(find(moved, 'Namespace', 'ml-prod')).toBeDefined();
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('the single-node overlay', () => {
  const manifests = () => rendered['single-node']!;

  test('trains in the worker with the local runner, its data folder on a claim that survives restarts', () => {
    const settings = settingsOf(manifests());
    expect(settings.COMPUTATRUM_RUNNER).toBe('local');
    expect(loadConfig({ ...settings, DATABASE_URL: 'postgres://x@y/z' }).training.kubernetes).toBeUndefined();
    const worker = find(manifests(), 'Deployment', 'computatrum-worker');
    expect(worker.spec.replicas).toBe(1);
    expect(worker.spec.strategy).toEqual({ type: 'Recreate' });
    const data = containerOf(worker).volumeMounts.find((m: any) => m.mountPath === settings.COMPUTATRUM_DATA_DIR);
    const volume = worker.spec.template.spec.volumes.find((v: any) => v.name === data.name);
    expect(volume).toEqual({ name: data.name, persistentVolumeClaim: { claimName: 'computatrum-data' } });
    expect(find(manifests(), 'PersistentVolumeClaim', 'computatrum-data').spec.accessModes).toEqual(['ReadWriteOnce']);
    expect(find(manifests(), 'Deployment', 'computatrum-platform').spec.replicas).toBe(1);
    // One replica each: no budget that would block the node's drain.
    expect(all(manifests(), 'PodDisruptionBudget')).toEqual([]);
  });
});

test('the training Job template names the trainer image the Dockerfiles build, with its entrypoint', () => {
  const job = parseManifests(readFileSync(DEFAULT_TRAINING_JOB_TEMPLATE, 'utf8'))[0]!;
  const trainer = job.spec.template.spec.containers[0];
  expect(trainer.image).toMatch(new RegExp(`^${TRAINER_IMAGE}:`));
  expect(trainer.command).toEqual(['computatrum-train']);
  const settings = settingsOf(rendered['gpu-cluster']!);
  expect(settings.COMPUTATRUM_TRAINING_IMAGE).toMatch(new RegExp(`^${TRAINER_IMAGE}:`));
  expect(settings.COMPUTATRUM_INSTANCE_IMAGE).toMatch(new RegExp(`^${INSTANCE_IMAGE}:`));
  for (const [dockerfile, image] of [
    ['daemon', DAEMON_IMAGE],
    ['trainer', TRAINER_IMAGE],
    ['instance', INSTANCE_IMAGE],
  ]) {
    expect(readFileSync(path.join(DEPLOY, 'images', `${dockerfile}.Dockerfile`), 'utf8')).toContain(
      `-t ${image}:<tag>`,
    );
  }
});

test("Temporal's Helm values keep its data in PostgreSQL, with the password from a Secret", () => {
  const values = loadAll(readFileSync(path.join(DEPLOY, 'temporal', 'values.yaml'), 'utf8'))[0] as any;
  for (const store of ['default', 'visibility']) {
    const sql = values.server.config.persistence.datastores[store].sql;
    expect(sql).toMatchObject({ pluginName: 'postgres12', existingSecret: expect.any(String), manageSchema: true });
    expect(sql.password).toBeUndefined();
  }
  expect(values.server.config.persistence).toMatchObject({ defaultStore: 'default', visibilityStore: 'visibility' });
  expect(values.server.config.namespaces.create).toBe(true);
  expect(values.server.config.namespaces.namespace.map((n: any) => n.name)).toContain(
    settingsOf(rendered['gpu-cluster']!).TEMPORAL_NAMESPACE,
  );
});
