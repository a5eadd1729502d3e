// A THIN FAKE Kubernetes API server on loopback, for the Kubernetes runner's tests: no cluster and
// no kube-apiserver can run here. It speaks the real wire protocol for what the runner uses (Jobs:
// create, get, list, watch as chunked JSON lines, delete; pods: list, log) with real Status errors
// (404 NotFound, 409 AlreadyExists, 410 Expired, 422 Invalid), keeps objects in memory, and runs
// no controllers: tests move a Job's status themselves. Every created Job is validated against the
// Kubernetes schema (kubernetes-models) plus the name and label rules the real server enforces.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Job } from 'kubernetes-models/batch/v1';

export type KubeObject = {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string; [key: string]: any };
  [key: string]: any;
};
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type RequestKind = 'createJob' | 'getJob' | 'listJobs' | 'watchJobs' | 'deleteJob' | 'listPods' | 'readPodLog';

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
  /** The log of the Job's pod, as readNamespacedPodLog returns it. */
  setPodLog(jobName: string, text: string, namespace?: string): void;
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
    const names: string[] = pod.spec.containers.map((c: { name: string }) => c.name);
    if (container ? !names.includes(container) : names.length !== 1) {
      return sendJson(
        response,
        400,
        kubeStatus(400, 'BadRequest', `container ${container ?? '(none given)'} is not valid for pod ${name}`),
      );
    }
    const lines = (podLogs.get(key(namespace, pod.metadata.labels[JOB_NAME_LABEL])) ?? '')
      .split('\n')
      .filter((line) => line !== '');
    const tail = query.has('tailLines') ? lines.slice(-Number(query.get('tailLines'))) : lines;
    response.writeHead(200, { 'Content-Type': 'text/plain' });
    response.end(tail.map((line) => `${line}\n`).join(''));
  }

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
    setPodLog(jobName, text, namespace = defaultNamespace) {
      podLogs.set(key(namespace, jobName), text);
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
