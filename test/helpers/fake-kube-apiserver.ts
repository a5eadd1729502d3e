// A THIN FAKE Kubernetes API server on loopback, for the Kubernetes runner's tests: no cluster and
// no kube-apiserver can run here. It speaks the real wire protocol for what the runner uses (Jobs:
// create, get, list, watch as chunked JSON lines, delete; pods: list, log) with real Status errors
// (404 NotFound, 409 AlreadyExists, 410 Expired, 422 Invalid), keeps objects in memory, and runs
// no controllers: tests move a Job's status themselves. Every created Job is validated against the
// Kubernetes schema (kubernetes-models) plus the name and label rules the real server enforces.
// For the instance runner it also serves apps/v1 Deployments and v1 Services (create, get, list,
// delete; validated the same way, no watches): a Deployment gets one pod, as its ReplicaSet would
// make, and a deletion (any propagationPolicy) removes it with its pods at once, as if the garbage
// collector were instant. Tests move a Deployment's status, and its pod's, themselves.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { Service } from 'kubernetes-models/v1';

export type KubeObject = {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; [key: string]: any };
  [key: string]: any;
};
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type RequestKind =
  | 'createJob'
  | 'getJob'
  | 'listJobs'
  | 'watchJobs'
  | 'deleteJob'
  | 'listPods'
  | 'readPodLog'
  | 'createDeployment'
  | 'getDeployment'
  | 'listDeployments'
  | 'deleteDeployment'
  | 'createService'
  | 'getService'
  | 'listServices'
  | 'deleteService';

interface OpenWatch {
  response: ServerResponse;
  namespace: string;
  matches: (object: KubeObject) => boolean;
}

export interface RejectedJob {
  body: unknown;
  reason: string;
}

export interface JobDeletion {
  name: string;
  propagationPolicy?: string;
}

export interface ObjectDeletion extends JobDeletion {
  kind: 'Deployment' | 'Service';
}

export interface FakeKubeApiServer {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Jobs as stored now (with uid, resourceVersion, status). */
  job(name: string, namespace?: string): KubeObject | undefined;
  /** Every Job body that was POSTed, as sent. */
  readonly createdJobs: unknown[];
  /** Job bodies answered with 422 Invalid, and why; tests assert there are none. */
  readonly rejectedJobs: RejectedJob[];
  /** DELETE requests that deleted a Job. */
  readonly deletions: JobDeletion[];
  /** Deployments and Services as stored now. */
  deployment(name: string, namespace?: string): KubeObject | undefined;
  service(name: string, namespace?: string): KubeObject | undefined;
  /** Every Deployment and Service body that was POSTed, as sent. */
  readonly createdDeployments: unknown[];
  readonly createdServices: unknown[];
  /** Deployment and Service bodies answered with 422 Invalid, and why; tests assert there are none. */
  readonly rejectedObjects: RejectedJob[];
  /** DELETE requests that deleted a Deployment or a Service. */
  readonly objectDeletions: ObjectDeletion[];
  /** Merges into a Deployment's status, as the Deployment controller would. */
  setDeploymentStatus(name: string, status: Record<string, unknown>, namespace?: string): void;
  /** Merges into the status of a Deployment's pod, as the kubelet would. */
  setDeploymentPodStatus(name: string, status: Record<string, unknown>, namespace?: string): void;
  /** Requests answered, by kind. */
  readonly requests: Record<RequestKind, number>;
  /** Watches answered with a 410 Expired ERROR event. */
  expiredWatches(): number;
  /** Watch responses still open (those that would see Job `name`, when given). */
  openWatches(name?: string): number;
  /** Merges into a Job's status (as the Job controller would) and sends MODIFIED. */
  setJobStatus(name: string, status: Record<string, unknown>, namespace?: string): void;
  /** Merges annotations into a Job's metadata and sends MODIFIED. */
  annotateJob(name: string, annotations: Record<string, string>, namespace?: string): void;
  /** The log of the Job's (or the Deployment's) pod, as readNamespacedPodLog returns it. */
  setPodLog(ownerName: string, text: string, namespace?: string): void;
  /** Deletes a Job as if it were lost (a node pool gone, someone's kubectl delete): sends DELETED. */
  deleteJob(name: string, namespace?: string): void;
  /** Ends every open watch response cleanly, as an API server restart or a load balancer would. */
  dropWatches(): number;
  /** Compacts history: a watch from any resourceVersion issued so far gets a 410 Expired ERROR event. */
  expireResourceVersions(): void;
  /** Answers requests of `kind` with `status` (e.g. 403) until called again without one. */
  refuse(kind: RequestKind, status?: number): void;
  close(): Promise<void>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

export function kubeStatus(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'AlreadyExists',
  500: 'InternalError',
};

/** `namespace`: the one test controls act in when they are given none. */
export async function startFakeKubeApiServer({
  namespace: defaultNamespace = 'default',
} = {}): Promise<FakeKubeApiServer> {
  const jobs = new Map<string, KubeObject>();
  const pods = new Map<string, KubeObject>();
  const deployments = new Map<string, KubeObject>();
  const services = new Map<string, KubeObject>();
  /** A Deployment's pod: its key, and the Deployment's name (a Job's pods carry the job-name label). */
  const podOwners = new Map<string, string>();
  const createdDeployments: unknown[] = [];
  const createdServices: unknown[] = [];
  const rejectedObjects: RejectedJob[] = [];
  const objectDeletions: ObjectDeletion[] = [];
  const podLogs = new Map<string, string>();
  const history: { resourceVersion: number; type: EventType; object: KubeObject }[] = [];
  const watches = new Set<OpenWatch>();
  const refusals = new Map<RequestKind, number>();
  const createdJobs: unknown[] = [];
  const rejectedJobs: RejectedJob[] = [];
  const deletions: JobDeletion[] = [];
  const requests: Record<RequestKind, number> = {
    createJob: 0,
    getJob: 0,
    listJobs: 0,
    watchJobs: 0,
    deleteJob: 0,
    listPods: 0,
    readPodLog: 0,
    createDeployment: 0,
    getDeployment: 0,
    listDeployments: 0,
    deleteDeployment: 0,
    createService: 0,
    getService: 0,
    listServices: 0,
    deleteService: 0,
  };
  let resourceVersion = 1000;
  let compactedBelow = 0;
  let expiredWatches = 0;

  const key = (namespace: string, name: string) => `${namespace}/${name}`;
  const clone = <T>(value: T): T => structuredClone(value);

  function record(type: EventType, job: KubeObject): void {
    resourceVersion += 1;
    job.metadata.resourceVersion = String(resourceVersion);
    const event = { resourceVersion, type, object: clone(job) };
    history.push(event);
    for (const watch of watches) {
      if (watch.namespace === job.metadata.namespace && watch.matches(job))
        writeEvent(watch.response, type, event.object);
    }
  }

  function mustFindJob(name: string, namespace: string): KubeObject {
    const job = jobs.get(key(namespace, name));
    if (!job) throw new Error(`the fake API server has no Job ${namespace}/${name}`);
    return job;
  }

  function removeJob(job: KubeObject): void {
    jobs.delete(key(job.metadata.namespace, job.metadata.name));
    for (const [podKey, pod] of pods) {
      if (
        pod.metadata.labels?.[JOB_NAME_LABEL] === job.metadata.name &&
        pod.metadata.namespace === job.metadata.namespace
      )
        pods.delete(podKey);
    }
    record('DELETED', job);
  }

  function createPodFor(job: KubeObject): void {
    const name = `${job.metadata.name}-${randomUUID().slice(0, 5)}`;
    const containers = (job.spec?.template?.spec?.containers ?? []).map((container: any) => ({
      name: container.name,
      image: container.image,
    }));
    pods.set(key(job.metadata.namespace, name), {
      metadata: {
        name,
        namespace: job.metadata.namespace,
        uid: randomUUID(),
        resourceVersion: String(resourceVersion),
        creationTimestamp: new Date().toISOString(),
        labels: {
          ...job.spec?.template?.metadata?.labels,
          [JOB_NAME_LABEL]: job.metadata.name,
          'job-name': job.metadata.name,
        },
      },
      spec: { containers, restartPolicy: job.spec?.template?.spec?.restartPolicy },
      status: { phase: 'Pending' },
    });
  }

  function createJob(namespace: string, body: any, response: ServerResponse): void {
    createdJobs.push(clone(body));
    const problem = invalidJobReason(body, namespace);
    if (problem) {
      rejectedJobs.push({ body: clone(body), reason: problem });
      const name = body?.metadata?.name;
      return sendJson(
        response,
        422,
        kubeStatus(422, 'Invalid', `Job.batch "${name}" is invalid: ${problem}`, { name, group: 'batch', kind: 'Job' }),
      );
    }
    const name: string = body.metadata.name;
    if (jobs.has(key(namespace, name))) {
      return sendJson(
        response,
        409,
        kubeStatus(409, 'AlreadyExists', `jobs.batch "${name}" already exists`, { name, group: 'batch', kind: 'jobs' }),
      );
    }
    const job: KubeObject = {
      ...clone(body),
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        ...clone(body.metadata),
        namespace,
        uid: randomUUID(),
        resourceVersion: '',
        generation: 1,
        creationTimestamp: new Date().toISOString(),
      },
      status: {},
    };
    jobs.set(key(namespace, name), job);
    record('ADDED', job);
    createPodFor(job);
    sendJson(response, 201, job);
  }

  function deleteJobRequest(
    namespace: string,
    name: string,
    body: any,
    query: URLSearchParams,
    response: ServerResponse,
  ): void {
    const job = jobs.get(key(namespace, name));
    if (!job)
      return sendJson(
        response,
        404,
        kubeStatus(404, 'NotFound', `jobs.batch "${name}" not found`, { name, group: 'batch', kind: 'jobs' }),
      );
    const wantedUid = body?.preconditions?.uid;
    if (wantedUid && wantedUid !== job.metadata.uid) {
      const message = `Precondition failed: UID in precondition: ${wantedUid}, UID in object meta: ${job.metadata.uid}`;
      return sendJson(response, 409, kubeStatus(409, 'Conflict', message, { name, group: 'batch', kind: 'jobs' }));
    }
    deletions.push({ name, propagationPolicy: body?.propagationPolicy ?? query.get('propagationPolicy') ?? undefined });
    removeJob(job);
    sendJson(response, 200, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name, group: 'batch', kind: 'jobs', uid: job.metadata.uid },
    });
  }

  function listOrWatchJobs(namespace: string, query: URLSearchParams, response: ServerResponse): void {
    const matches = selectorMatcher(query);
    const current = [...jobs.values()].filter((job) => job.metadata.namespace === namespace && matches(job));
    if (query.get('watch') !== 'true' && query.get('watch') !== '1') {
      requests.listJobs += 1;
      return sendJson(response, 200, {
        kind: 'JobList',
        apiVersion: 'batch/v1',
        metadata: { resourceVersion: String(resourceVersion) },
        items: current.map(clone),
      });
    }
    requests.watchJobs += 1;
    response.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    response.flushHeaders();
    const from = query.get('resourceVersion');
    if (from && from !== '0' && Number(from) < compactedBelow) {
      expiredWatches += 1;
      writeEvent(
        response,
        'ERROR',
        kubeStatus(410, 'Expired', `too old resource version: ${from} (${compactedBelow})`),
      );
      response.end();
      return;
    }
    if (!from || from === '0') {
      for (const job of current) writeEvent(response, 'ADDED', clone(job));
    } else {
      for (const event of history) {
        if (
          event.resourceVersion > Number(from) &&
          event.object.metadata.namespace === namespace &&
          matches(event.object)
        ) {
          writeEvent(response, event.type, event.object);
        }
      }
    }
    const watch: OpenWatch = { response, namespace, matches };
    watches.add(watch);
    const timeoutSeconds = Number(query.get('timeoutSeconds'));
    const timeout = timeoutSeconds > 0 ? setTimeout(() => response.end(), timeoutSeconds * 1000).unref() : undefined;
    const forget = () => {
      watches.delete(watch);
      clearTimeout(timeout);
    };
    response.on('close', forget);
  }

  function listPods(namespace: string, query: URLSearchParams, response: ServerResponse): void {
    const matches = selectorMatcher(query);
    const items = [...pods.values()].filter((pod) => pod.metadata.namespace === namespace && matches(pod));
    sendJson(response, 200, {
      kind: 'PodList',
      apiVersion: 'v1',
      metadata: { resourceVersion: String(resourceVersion) },
      items: items.map(clone),
    });
  }

  function readPodLog(namespace: string, name: string, query: URLSearchParams, response: ServerResponse): void {
    const pod = pods.get(key(namespace, name));
    if (!pod)
      return sendJson(response, 404, kubeStatus(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }));
    const container = query.get('container');
    const names: string[] = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map(
      (c: { name: string }) => c.name,
    );
    if (container ? !names.includes(container) : names.length !== 1) {
      return sendJson(
        response,
        400,
        kubeStatus(400, 'BadRequest', `container ${container ?? '(none given)'} is not valid for pod ${name}`),
      );
    }
    const owner = pod.metadata.labels?.[JOB_NAME_LABEL] ?? podOwners.get(key(namespace, name));
    const lines = (podLogs.get(key(namespace, owner)) ?? '').split('\n').filter((line) => line !== '');
    const tail = query.has('tailLines') ? lines.slice(-Number(query.get('tailLines'))) : lines;
    response.writeHead(200, { 'Content-Type': 'text/plain' });
    response.end(tail.map((line) => `${line}\n`).join(''));
  }

  /** Deployments and Services: stored, versioned and deleted alike (no watches serve them). */
  const stores = {
    Deployment: {
      objects: deployments,
      created: createdDeployments,
      apiVersion: 'apps/v1',
      plural: 'deployments.apps',
    },
    Service: { objects: services, created: createdServices, apiVersion: 'v1', plural: 'services' },
  } as const;

  function createObject(kind: keyof typeof stores, namespace: string, body: any, response: ServerResponse): void {
    const store = stores[kind];
    store.created.push(clone(body));
    const name = body?.metadata?.name;
    const problem =
      kind === 'Deployment' ? invalidDeploymentReason(body, namespace) : invalidServiceReason(body, namespace);
    if (problem) {
      rejectedObjects.push({ body: clone(body), reason: problem });
      return sendJson(
        response,
        422,
        kubeStatus(422, 'Invalid', `${kind} "${name}" is invalid: ${problem}`, { name, kind: store.plural }),
      );
    }
    if (store.objects.has(key(namespace, name))) {
      return sendJson(
        response,
        409,
        kubeStatus(409, 'AlreadyExists', `${store.plural} "${name}" already exists`, { name, kind: store.plural }),
      );
    }
    resourceVersion += 1;
    const object: KubeObject = {
      ...clone(body),
      apiVersion: store.apiVersion,
      kind,
      metadata: {
        ...clone(body.metadata),
        namespace,
        uid: randomUUID(),
        resourceVersion: String(resourceVersion),
        generation: 1,
        creationTimestamp: new Date().toISOString(),
      },
      status: kind === 'Deployment' ? {} : { loadBalancer: {} },
    };
    if (kind === 'Service') object.spec.clusterIP = `10.96.${resourceVersion % 250}.${(resourceVersion >> 8) % 250}`;
    store.objects.set(key(namespace, name), object);
    if (kind === 'Deployment') createPodForDeployment(object);
    sendJson(response, 201, object);
  }

  function createPodForDeployment(deployment: KubeObject): void {
    const hash = randomUUID().replace(/-/g, '').slice(0, 10);
    const name = `${deployment.metadata.name}-${hash}-${randomUUID().slice(0, 5)}`;
    const podSpec = deployment.spec?.template?.spec ?? {};
    const podKey = key(deployment.metadata.namespace, name);
    pods.set(podKey, {
      metadata: {
        name,
        namespace: deployment.metadata.namespace,
        uid: randomUUID(),
        resourceVersion: String(resourceVersion),
        creationTimestamp: new Date().toISOString(),
        labels: { ...deployment.spec?.template?.metadata?.labels, 'pod-template-hash': hash },
      },
      spec: clone(podSpec),
      status: { phase: 'Pending' },
    });
    podOwners.set(podKey, deployment.metadata.name);
  }

  function deploymentPod(name: string, namespace: string): KubeObject {
    for (const [podKey, owner] of podOwners) {
      const pod = pods.get(podKey);
      if (owner === name && pod?.metadata.namespace === namespace) return pod;
    }
    throw new Error(`the fake API server has no pod of Deployment ${namespace}/${name}`);
  }

  function getObject(kind: keyof typeof stores, namespace: string, name: string, response: ServerResponse): void {
    const store = stores[kind];
    const object = store.objects.get(key(namespace, name));
    if (object) return sendJson(response, 200, object);
    sendJson(
      response,
      404,
      kubeStatus(404, 'NotFound', `${store.plural} "${name}" not found`, { name, kind: store.plural }),
    );
  }

  function listObjects(
    kind: keyof typeof stores,
    namespace: string,
    query: URLSearchParams,
    response: ServerResponse,
  ): void {
    const store = stores[kind];
    const matches = selectorMatcher(query);
    sendJson(response, 200, {
      kind: `${kind}List`,
      apiVersion: store.apiVersion,
      metadata: { resourceVersion: String(resourceVersion) },
      items: [...store.objects.values()]
        .filter((object) => object.metadata.namespace === namespace && matches(object))
        .map(clone),
    });
  }

  function deleteObject(
    kind: keyof typeof stores,
    namespace: string,
    name: string,
    body: any,
    query: URLSearchParams,
    response: ServerResponse,
  ): void {
    const store = stores[kind];
    const object = store.objects.get(key(namespace, name));
    if (!object) {
      return sendJson(
        response,
        404,
        kubeStatus(404, 'NotFound', `${store.plural} "${name}" not found`, { name, kind: store.plural }),
      );
    }
    objectDeletions.push({
      kind,
      name,
      propagationPolicy: body?.propagationPolicy ?? query.get('propagationPolicy') ?? undefined,
    });
    store.objects.delete(key(namespace, name));
    for (const [podKey, owner] of podOwners) {
      if (kind === 'Deployment' && owner === name && pods.get(podKey)?.metadata.namespace === namespace) {
        pods.delete(podKey);
        podOwners.delete(podKey);
      }
    }
    sendJson(response, 200, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name, kind: store.plural, uid: object.metadata.uid },
    });
  }

  const objectRoutes = (
    [
      ['Deployment', '/apis/apps/v1', 'deployments'],
      ['Service', '/api/v1', 'services'],
    ] as const
  ).flatMap(([kind, prefix, plural]) => {
    const collection = new RegExp(`^${prefix}/namespaces/([^/]+)/${plural}$`);
    const item = new RegExp(`^${prefix}/namespaces/([^/]+)/${plural}/([^/]+)$`);
    return [
      {
        pattern: collection,
        method: 'POST',
        kind: `create${kind}` as RequestKind,
        handle: ([ns]: string[], _q: URLSearchParams, _req: IncomingMessage, res: ServerResponse, body: any) =>
          createObject(kind, ns!, body, res),
      },
      {
        pattern: collection,
        method: 'GET',
        kind: `list${kind}s` as RequestKind,
        handle: ([ns]: string[], q: URLSearchParams, _req: IncomingMessage, res: ServerResponse) =>
          listObjects(kind, ns!, q, res),
      },
      {
        pattern: item,
        method: 'GET',
        kind: `get${kind}` as RequestKind,
        handle: ([ns, name]: string[], _q: URLSearchParams, _req: IncomingMessage, res: ServerResponse) =>
          getObject(kind, ns!, name!, res),
      },
      {
        pattern: item,
        method: 'DELETE',
        kind: `delete${kind}` as RequestKind,
        handle: ([ns, name]: string[], q: URLSearchParams, _req: IncomingMessage, res: ServerResponse, body: any) =>
          deleteObject(kind, ns!, name!, body, q, res),
      },
    ];
  });

  const routes: {
    pattern: RegExp;
    method: string;
    kind: RequestKind | ((query: URLSearchParams) => RequestKind);
    handle: (
      match: string[],
      query: URLSearchParams,
      request: IncomingMessage,
      response: ServerResponse,
      body: any,
    ) => void;
  }[] = [
    {
      pattern: /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/,
      method: 'POST',
      kind: 'createJob',
      handle: ([ns], _q, _req, res, body) => createJob(ns!, body, res),
    },
    {
      pattern: /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/,
      method: 'GET',
      kind: (query) => (query.get('watch') === 'true' || query.get('watch') === '1' ? 'watchJobs' : 'listJobs'),
      handle: ([ns], query, _req, res) => listOrWatchJobs(ns!, query, res),
    },
    {
      pattern: /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/,
      method: 'GET',
      kind: 'getJob',
      handle: ([ns, name], _q, _req, res) => {
        const job = jobs.get(key(ns!, name!));
        if (job) sendJson(res, 200, job);
        else
          sendJson(
            res,
            404,
            kubeStatus(404, 'NotFound', `jobs.batch "${name}" not found`, { name, group: 'batch', kind: 'jobs' }),
          );
      },
    },
    {
      pattern: /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/]+)$/,
      method: 'DELETE',
      kind: 'deleteJob',
      handle: ([ns, name], q, _req, res, body) => deleteJobRequest(ns!, name!, body, q, res),
    },
    {
      pattern: /^\/api\/v1\/namespaces\/([^/]+)\/pods$/,
      method: 'GET',
      kind: 'listPods',
      handle: ([ns], q, _req, res) => listPods(ns!, q, res),
    },
    {
      pattern: /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/,
      method: 'GET',
      kind: 'readPodLog',
      handle: ([ns, name], q, _req, res) => readPodLog(ns!, name!, q, res),
    },
    ...objectRoutes,
  ];

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://fake');
      const route = routes.find(
        (candidate) => candidate.method === request.method && candidate.pattern.test(url.pathname),
      );
      if (!route)
        return sendJson(response, 404, kubeStatus(404, 'NotFound', 'the server could not find the requested resource'));
      const kind = typeof route.kind === 'function' ? route.kind(url.searchParams) : route.kind;
      const refusal = refusals.get(kind);
      if (refusal)
        return sendJson(
          response,
          refusal,
          kubeStatus(refusal, REASONS[refusal] ?? 'Unknown', `refused by the fake API server's test control (${kind})`),
        );
      // Watches and lists count themselves: they share a route.
      if (kind !== 'watchJobs' && kind !== 'listJobs') requests[kind] += 1;
      let body: unknown;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        return sendJson(response, 400, kubeStatus(400, 'BadRequest', 'the request body is not JSON'));
      }
      const match = route.pattern.exec(url.pathname)!.slice(1).map(decodeURIComponent);
      route.handle(match, url.searchParams, request, response, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    job: (name, namespace = defaultNamespace) => {
      const job = jobs.get(key(namespace, name));
      return job && clone(job);
    },
    createdJobs,
    rejectedJobs,
    deployment: (name, namespace = defaultNamespace) => {
      const object = deployments.get(key(namespace, name));
      return object && clone(object);
    },
    service: (name, namespace = defaultNamespace) => {
      const object = services.get(key(namespace, name));
      return object && clone(object);
    },
    createdDeployments,
    createdServices,
    rejectedObjects,
    objectDeletions,
    setDeploymentStatus(name, status, namespace = defaultNamespace) {
      const deployment = deployments.get(key(namespace, name));
      if (!deployment) throw new Error(`the fake API server has no Deployment ${namespace}/${name}`);
      deployment.status = { ...deployment.status, ...status };
      resourceVersion += 1;
      deployment.metadata.resourceVersion = String(resourceVersion);
    },
    setDeploymentPodStatus(name, status, namespace = defaultNamespace) {
      const pod = deploymentPod(name, namespace);
      pod.status = { ...pod.status, ...status };
      resourceVersion += 1;
      pod.metadata.resourceVersion = String(resourceVersion);
    },
    deletions,
    requests,
    expiredWatches: () => expiredWatches,
    openWatches: (name) =>
      [...watches].filter(
        (watch) =>
          name === undefined ||
          watch.matches({ metadata: { name, namespace: watch.namespace, uid: '', resourceVersion: '' } }),
      ).length,
    setJobStatus(name, status, namespace = defaultNamespace) {
      const job = mustFindJob(name, namespace);
      job.status = { ...job.status, ...status };
      record('MODIFIED', job);
    },
    annotateJob(name, annotations, namespace = defaultNamespace) {
      const job = mustFindJob(name, namespace);
      job.metadata.annotations = { ...job.metadata.annotations, ...annotations };
      record('MODIFIED', job);
    },
    setPodLog(ownerName, text, namespace = defaultNamespace) {
      podLogs.set(key(namespace, ownerName), text);
    },
    deleteJob(name, namespace = defaultNamespace) {
      removeJob(mustFindJob(name, namespace));
    },
    dropWatches() {
      const dropped = watches.size;
      for (const watch of watches) watch.response.end();
      watches.clear();
      return dropped;
    },
    expireResourceVersions() {
      // Other objects in a real cluster move the version on; compaction then leaves only the newest.
      resourceVersion += 1;
      compactedBelow = resourceVersion;
    },
    refuse(kind, status) {
      if (status === undefined) refusals.delete(kind);
      else refusals.set(kind, status);
    },
    async close() {
      for (const watch of watches) watch.response.end();
      watches.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

function writeEvent(response: ServerResponse, type: EventType | 'ERROR', object: unknown): void {
  response.write(`${JSON.stringify({ type, object })}\n`);
}

/** fieldSelector (metadata.name, metadata.namespace) and labelSelector (k=v, k!=v, k), comma-separated, as the real server reads them. */
function selectorMatcher(query: URLSearchParams): (object: KubeObject) => boolean {
  const fields = parseSelector(query.get('fieldSelector'));
  const labels = parseSelector(query.get('labelSelector'));
  return (object) =>
    fields.every(({ key, op, value }) => {
      const actual =
        key === 'metadata.name'
          ? object.metadata.name
          : key === 'metadata.namespace'
            ? object.metadata.namespace
            : undefined;
      return op === '!=' ? actual !== value : actual === value;
    }) &&
    labels.every(({ key, op, value }) => {
      const actual: string | undefined = object.metadata.labels?.[key];
      if (op === 'exists') return actual !== undefined;
      return op === '!=' ? actual !== value : actual === value;
    });
}

function parseSelector(text: string | null): { key: string; op: '=' | '!=' | 'exists'; value?: string }[] {
  if (!text) return [];
  return text.split(',').map((term) => {
    const match = /^([^!=]+)(!=|==|=)(.*)$/.exec(term.trim());
    if (!match) return { key: term.trim(), op: 'exists' as const };
    return { key: match[1]!, op: match[2] === '!=' ? ('!=' as const) : ('=' as const), value: match[3] };
  });
}

/** Why the real API server would answer 422, or undefined for a Job it accepts. */
function invalidJobReason(body: any, namespace: string): string | undefined {
  try {
    new Job(body).validate();
  } catch (error) {
    return `schema: ${(error as Error).message}`;
  }
  const name: unknown = body.metadata?.name;
  if (typeof name !== 'string' || !DNS_LABEL.test(name) || name.length > 63) {
    return `metadata.name: Invalid value: "${String(name)}": a Job name must be a DNS-1123 label of at most 63 characters`;
  }
  if (body.metadata.namespace !== undefined && body.metadata.namespace !== namespace) {
    return `metadata.namespace: Invalid value: "${body.metadata.namespace}": does not match the namespace of the request (${namespace})`;
  }
  for (const [where, labels] of [
    ['metadata.labels', body.metadata.labels],
    ['spec.template.metadata.labels', body.spec?.template?.metadata?.labels],
  ] as const) {
    for (const [labelKey, value] of Object.entries<unknown>(labels ?? {})) {
      if (!LABEL_KEY.test(labelKey)) return `${where}: Invalid value: "${labelKey}": not a label key`;
      if (typeof value !== 'string' || !LABEL_VALUE.test(value) || value.length > 63)
        return `${where}: Invalid value: "${String(value)}": not a label value`;
    }
  }
  if (body.spec.podFailurePolicy && body.spec.template.spec.restartPolicy !== 'Never') {
    return 'spec.template.spec.restartPolicy: Invalid value: only "Never" is supported when podFailurePolicy is specified';
  }
  return undefined;
}

const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function invalidLabels(where: string, labels: Record<string, unknown> | undefined): string | undefined {
  for (const [labelKey, value] of Object.entries<unknown>(labels ?? {})) {
    if (!LABEL_KEY.test(labelKey)) return `${where}: Invalid value: "${labelKey}": not a label key`;
    if (typeof value !== 'string' || !LABEL_VALUE.test(value) || value.length > 63)
      return `${where}: Invalid value: "${String(value)}": not a label value`;
  }
  return undefined;
}

function invalidNamespace(body: any, namespace: string): string | undefined {
  if (body.metadata?.namespace !== undefined && body.metadata.namespace !== namespace) {
    return `metadata.namespace: Invalid value: "${body.metadata.namespace}": does not match the namespace of the request (${namespace})`;
  }
  return undefined;
}

/** Why the real API server would answer 422 to this Deployment, or undefined when it accepts it. */
function invalidDeploymentReason(body: any, namespace: string): string | undefined {
  try {
    new Deployment(body).validate();
  } catch (error) {
    return `schema: ${(error as Error).message}`;
  }
  const name: unknown = body.metadata?.name;
  if (typeof name !== 'string' || !DNS_SUBDOMAIN.test(name) || name.length > 253) {
    return `metadata.name: Invalid value: "${String(name)}": a Deployment name must be a DNS-1123 subdomain`;
  }
  const labelProblem =
    invalidNamespace(body, namespace) ??
    invalidLabels('metadata.labels', body.metadata.labels) ??
    invalidLabels('spec.template.metadata.labels', body.spec?.template?.metadata?.labels);
  if (labelProblem) return labelProblem;
  const selector: Record<string, string> = body.spec?.selector?.matchLabels ?? {};
  const templateLabels: Record<string, string> = body.spec?.template?.metadata?.labels ?? {};
  if (!Object.keys(selector).length && !body.spec?.selector?.matchExpressions?.length) {
    return 'spec.selector: Invalid value: empty selector is invalid for deployment';
  }
  if (Object.entries(selector).some(([labelKey, value]) => templateLabels[labelKey] !== value)) {
    return 'spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`';
  }
  const restartPolicy = body.spec?.template?.spec?.restartPolicy;
  if (restartPolicy !== undefined && restartPolicy !== 'Always') {
    return `spec.template.spec.restartPolicy: Unsupported value: "${restartPolicy}": supported values: "Always"`;
  }
  const podSpec = body.spec?.template?.spec ?? {};
  const volumes = new Set((podSpec.volumes ?? []).map((volume: { name: string }) => volume.name));
  for (const container of [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])]) {
    for (const mount of container.volumeMounts ?? []) {
      if (!volumes.has(mount.name)) {
        return `spec.template.spec.containers[${container.name}].volumeMounts.name: Not found: "${mount.name}"`;
      }
    }
    // Extended resources (nvidia.com/gpu) cannot be overcommitted: a request must equal the limit.
    for (const [resource, request] of Object.entries<string>(container.resources?.requests ?? {})) {
      if (resource.includes('/') && !resource.startsWith('kubernetes.io/')) {
        const limit = container.resources?.limits?.[resource];
        if (limit !== request) {
          return `spec.template.spec.containers[${container.name}].resources.requests: Invalid value: "${request}": must be equal to ${resource} limit of ${String(limit)}`;
        }
      }
    }
  }
  return undefined;
}

/** Why the real API server would answer 422 to this Service, or undefined when it accepts it. */
function invalidServiceReason(body: any, namespace: string): string | undefined {
  try {
    new Service(body).validate();
  } catch (error) {
    return `schema: ${(error as Error).message}`;
  }
  const name: unknown = body.metadata?.name;
  if (typeof name !== 'string' || !DNS_1035_LABEL.test(name) || name.length > 63) {
    return `metadata.name: Invalid value: "${String(name)}": a Service name must be a DNS-1035 label of at most 63 characters`;
  }
  const problem = invalidNamespace(body, namespace) ?? invalidLabels('metadata.labels', body.metadata.labels);
  if (problem) return problem;
  if (!body.spec?.ports?.length && body.spec?.type !== 'ExternalName' && body.spec?.clusterIP !== 'None') {
    return 'spec.ports: Required value';
  }
  return undefined;
}
