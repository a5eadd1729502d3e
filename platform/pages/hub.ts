// /hub: every image, and /hub/<repo>: one image's tags, files and download links, pull commands,
// lineage, breed price, threads, recordings and reports, with the forms that add to them (and fork
// or publish it). Fastify allows one /hub/* route: it also sends the friendly download links
// (/hub/<repo>/resolve/<ref>/<file>) to oci-distribution.ts, unchanged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DATASET_FILES } from '../../store/dataset';
import { assertRepository } from '../../store/names';
import { type Checkpoints, type CheckpointVersion, readCheckpoints } from '../checkpoint-listing';
import {
  addComment,
  attachRecording,
  forkImage,
  type ImageView,
  listImages,
  listRecordings,
  listThreads,
  reportImage,
  startThread,
  type ThreadView,
} from '../hub';
import { type DatasetRow, trainingLineageOf } from '../datasets';
import { publicInstancesOf } from '../instances';
import { publishBreed } from '../marketplace';
import { listFlags, listProbes, probeNewVersions } from '../probes';
import { flagBanner, probesSection } from './probes';
import { lossCurves } from '../../db/training-loss';
import { lossCurveChart } from './charts';
import { entitlementId, readRefusal } from '../read-access';
import { isResolvePath, type ResolveHandler } from '../oci-distribution';
import { type PagesDeps, latestDaily } from './deps';
import { hostOf } from './home';
import { html, pathOf, type Renderable, type SafeHtml } from './html';
import { buyButton, price } from './marketplace';
import { csrfField, formFields, redirect, refuseForgedForm, sendPage, sendProblem, signInPath, viewOf } from './view';
import { trainerNamespace, trainerRepository } from '../../workflows/names';
import { toRefusal } from '../errors';

/** The newest tags shown with their files; older ones stay in the JSON listing. */
const SHOWN_TAGS = 60;
/** The files of a dataset a person downloads from the hub page (records.json is for tools). */
const DATASET_DOWNLOADS = [DATASET_FILES.preferences, DATASET_FILES.labelled, DATASET_FILES.transcripts];

const DONE: Record<string, string> = {
  thread: 'Your thread is posted.',
  comment: 'Your comment is posted.',
  recording: 'Your recording is attached.',
  reported: 'Thank you: your report is recorded and the operators will look at it.',
  forked: 'Forked: this is your new repository. No bytes were copied.',
  published: 'Listed on the marketplace.',
};

function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = size;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const when = (date: Date) => date.toISOString().slice(0, 16).replace('T', ' ');
const shortDigest = (digest: string) => digest.slice(0, 19);
const kindLabel: Record<ImageView['kind'], string> = { germline: 'germline', child: 'child', trainer: 'trainer' };

/** A form that failed, with what was typed, so the page shows it again beside the error. */
interface Draft {
  form: 'thread' | 'comment' | 'recording' | 'report' | 'fork' | 'publish';
  fields: Record<string, string>;
  threadId?: string;
}

export function registerHubPages(app: FastifyInstance, deps: PagesDeps & { resolve: ResolveHandler }): void {
  app.get<{ Querystring: { q?: string } }>('/hub', async (request, reply) => {
    const view = viewOf(request, reply);
    const q = typeof request.query.q === 'string' ? request.query.q.slice(0, 200) : '';
    const [images, daily] = await Promise.all([
      listImages(deps.db, deps.store, { ...(q ? { search: q } : {}), germline: deps.germline }),
      latestDaily(deps),
    ]);
    return sendPage(reply, view, {
      title: 'Hub',
      body: html`<h1>Hub</h1>
        <p>Every image on this platform: the germline’s daily checkpoints, its children’s, and trainers’ forks and breeds. Free images download without an account.</p>
        ${daily ? html`<p class="today">Today’s germline checkpoint: <a href="${pathOf('hub', daily.repository)}#tag-${daily.tag}">${daily.repository}:${daily.tag}</a>${daily.nickname ? html` — “${daily.nickname}”` : ''}</p>` : ''}
        <form class="search" method="get" action="/hub" role="search">
          <label for="q">Search images by name, title or nickname</label>
          <input type="search" id="q" name="q" value="${q}"> <button type="submit">Search</button>
        </form>
        ${
          images.length
            ? html`<table id="images"><tr><th>Image</th><th>Kind</th><th class="num">Tags</th><th>Latest</th><th>Breed</th><th class="num">Reports</th></tr>
              ${images.map(
                (image) => html`<tr>
                  <td><a href="${pathOf('hub', image.repository)}">${image.repository}</a></td>
                  <td>${kindLabel[image.kind]}</td>
                  <td class="num">${image.tags}</td>
                  <td>${image.latestTag ? html`<code>${image.latestTag}</code>` : ''}${image.latestNickname ? html` “${image.latestNickname}”` : ''}</td>
                  <td>${image.breed ? html`${image.breed.title} <span class="muted">(${price(image.breed.price, image.breed.currency)})</span>` : ''}</td>
                  <td class="num">${image.reports || ''}</td></tr>`,
              )}</table>`
            : html`<p class="muted">${q ? 'No image matches your search.' : 'No images yet: the first appears once a checkpoint is pushed.'}</p>`
        }`,
    });
  });

  // Parsing the path by hand: a repository has slashes, and the forms' paths end in fixed words.
  app.route({
    method: ['GET', 'HEAD', 'POST'],
    url: '/hub/*',
    handler: async (request, reply) => {
      const path = request.url.split('?')[0]!;
      if (request.method !== 'POST' && isResolvePath(path)) return deps.resolve(request, reply);
      let rest: string;
      try {
        rest = decodeURIComponent(path.slice('/hub/'.length)).replace(/\/+$/, '');
      } catch {
        return notFound(request, reply, path);
      }
      if (!rest) return redirect(reply, '/hub');
      if (request.method === 'POST') return submitForm(request, reply, rest);
      return sendRepository(request, reply, rest);
    },
  });

  function notFound(request: FastifyRequest, reply: FastifyReply, what: string): FastifyReply {
    return sendProblem(
      reply,
      viewOf(request, reply),
      404,
      'No such image',
      `There is no image ${what} on this hub.`,
      html`<p><a href="/hub">See every image</a></p>`,
    );
  }

  async function sendRepository(
    request: FastifyRequest,
    reply: FastifyReply,
    repository: string,
    problem?: { status: number; message: string; draft?: Draft },
  ): Promise<FastifyReply> {
    let checkpoints: Checkpoints | undefined;
    try {
      checkpoints = await readCheckpoints(deps.store, deps.db, repository);
    } catch {
      checkpoints = undefined; // not a repository name
    }
    if (!checkpoints) return notFound(request, reply, repository);
    const view = viewOf(request, reply);
    const account = view.caller.account;
    const parents = [...new Set(checkpoints.tags.map((t) => t.parent).filter((p): p is string => p !== null))];
    const tags = checkpoints.tags.slice(0, SHOWN_TAGS);
    const [breed, refusal, threads, recordings, parentRows, bought, instances, datasets, trained] = await Promise.all([
      deps.db.breed.findUnique({ where: { repository }, include: { owner: { select: { handle: true } } } }),
      readRefusal(deps.db, view.caller, repository),
      listThreads(deps.db, repository),
      listRecordings(deps.db, repository),
      parents.length
        ? deps.db.checkpoint.findMany({
            where: { digest: { in: parents }, status: 'published' },
            select: { repository: true, tag: true, digest: true, nickname: true },
          })
        : Promise.resolve([]),
      account
        ? deps.db.entitlement.findUnique({ where: { id: entitlementId(account.id, repository) } })
        : Promise.resolve(null),
      publicInstancesOf(deps.db, repository),
      deps.db.dataset.findMany({ where: { repository }, orderBy: { createdAt: 'desc' }, take: 20 }),
      // The runs here that made the shown tags, and the feedback datasets they learned from: two queries.
      trainingLineageOf(
        deps.db,
        tags.map((t) => t.digest),
      ),
    ]);
    const [probes, flags, curves] = await Promise.all([
      listProbes(deps.db, repository, { limit: 20 }),
      listFlags(deps.db, { repository }),
      lossCurves(
        deps.db,
        [...trained.values()].map((t) => t.run.id),
      ),
    ]);
    // Datasets are named only to those who may read their image, as in their image's own page.
    const otherImages = [...new Set([...trained.values()].flatMap((t) => t.datasets.map((d) => d.repository)))].filter(
      (r) => r !== repository,
    );
    const unreadable = new Set<string>(refusal ? [repository] : []);
    for (const [other, refused] of await Promise.all(
      otherImages.map(async (r) => [r, await readRefusal(deps.db, view.caller, r)] as const),
    ))
      if (refused) unreadable.add(other);
    const query = request.query as { done?: string; bought?: string };
    const notice = query.bought
      ? 'Thank you: your purchase is being confirmed by Stripe; the downloads open as soon as it is.'
      : query.done
        ? DONE[query.done]
        : undefined;
    const draft = problem?.draft;
    const value = (form: Draft['form'], field: string, fallback = '') =>
      draft?.form === form ? (draft.fields[field] ?? fallback) : fallback;
    const own = account ? repository.startsWith(trainerNamespace(account.handle)) : false;

    const parentLine = (version: CheckpointVersion): SafeHtml => {
      if (!version.parent) return html`<p>Lineage: a root checkpoint (no parent).</p>`;
      const sameRepo = checkpoints.tags.find((t) => t.digest === version.parent);
      const known = sameRepo
        ? { repository, tag: sameRepo.tag, nickname: sameRepo.nickname }
        : parentRows.find((r) => r.digest === version.parent);
      return html`<p>Lineage: trained or forked from <span class="digest">${version.parent}</span>
        ${known ? html` — <a href="${pathOf('hub', known.repository)}#tag-${known.tag}">${known.repository}:${known.tag}</a>${known.nickname ? ` “${known.nickname}”` : ''}` : ''}</p>`;
    };

    const datasetLink = (d: DatasetRow) =>
      html`<a href="${pathOf('hub', d.repository)}#datasets"><code>${shortDigest(d.digest)}</code>${d.repository === repository ? '' : html` of ${d.repository}`}</a> (${String(d.records)} ${d.records === 1 ? 'record' : 'records'})`;

    /** The run here that made the checkpoint, and the feedback datasets it learned from. */
    const trainedLine = (version: CheckpointVersion): SafeHtml | '' => {
      const made = trained.get(version.digest);
      if (!made) return '';
      const count = made.datasets.length;
      const hidden = made.datasets.filter((d) => unreadable.has(d.repository)).length;
      const named: Renderable[] = made.datasets.filter((d) => !unreadable.has(d.repository)).map(datasetLink);
      if (hidden) named.push(`${hidden} of images you may not read`);
      const learned = count
        ? html`, learning from ${String(count)} feedback ${count === 1 ? 'dataset' : 'datasets'}: ${named.map((part, i) => html`${i ? ', ' : ''}${part}`)}`
        : ', from no feedback dataset';
      return html`<p class="trained">Trained here by run <code>${made.run.id}</code>${made.run.finishedAt ? ` on ${when(made.run.finishedAt)}` : ''}${learned}.</p>`;
    };

    /** The loss curve of the run here that made the checkpoint. */
    const lossCurve = (version: CheckpointVersion): SafeHtml | '' => {
      const run = trained.get(version.digest)?.run;
      const points = run && curves.get(run.id);
      return points ? lossCurveChart(run.id, points, `loss-${version.tag}`) : '';
    };

    const lineage = (version: CheckpointVersion): SafeHtml =>
      html`${parentLine(version)}${trainedLine(version)}${lossCurve(version)}`;

    const downloads = (version: CheckpointVersion): SafeHtml => {
      const host = hostOf(request);
      const insecure = request.protocol === 'http';
      const files = html`<table><tr><th>File</th><th class="num">Size</th><th>sha256</th></tr>
        ${version.files.map(
          (
            f,
          ) => html`<tr><td>${refusal ? f.path : html`<a href="${pathOf('hub', repository, 'resolve', version.tag, f.path)}" download>${f.path}</a>`}</td>
            <td class="num">${bytes(f.size)}</td><td class="digest">${f.digest}</td></tr>`,
        )}</table>`;
      return html`${files}
        ${refusal ? html`<p class="notice">${refusal.status === 401 ? 'A paid breed: sign in and buy it to download its files.' : 'A paid breed: buy it to download its files.'}</p>` : ''}
        <pre>computatrum pull ${repository}:${version.tag} ./${version.tag}${refusal || breed?.price ? '     # with COMPUTATRUM_TOKEN set' : ''}
skopeo copy ${insecure ? '--src-tls-verify=false ' : ''}docker://${host}/${repository}:${version.tag} oci:./${repository.split('/').pop()}:${version.tag}</pre>`;
    };

    // Open: the newest tag, and the newest daily one (the tag people come for; it has the nickname).
    const daily = tags.find((t) => t.nickname !== null);
    const tagSection = (
      version: CheckpointVersion,
      index: number,
    ) => html`<details id="tag-${version.tag}"${index === 0 || version === daily ? html` open` : ''}>
        <summary><strong>${version.tag}</strong>${version.nickname ? html` “${version.nickname}”` : ''} · ${bytes(version.size)} in ${version.files.length} files · <span class="digest">${shortDigest(version.digest)}…</span></summary>
        <p>Digest: <span class="digest">${version.digest}</span>${version.created ? html` · made ${version.created}` : ''}${version.trainingRun ? html` · training run <code>${version.trainingRun}</code>` : ''}</p>
        ${lineage(version)}
        ${version.metrics ? html`<p>Metrics: ${Object.entries(version.metrics).map(([k, v], i) => html`${i ? ', ' : ''}${k} = ${String(v)}`)}</p>` : ''}
        ${downloads(version)}
      </details>`;

    const tagOptions = (
      selected: string,
      allowNone: boolean,
    ) => html`${allowNone ? html`<option value="">the whole image</option>` : ''}
      ${checkpoints.tags.map((t) => html`<option value="${t.tag}"${t.tag === selected ? html` selected` : ''}>${t.tag}${t.nickname ? ` “${t.nickname}”` : ''}</option>`)}`;

    const signInTo = (what: string) =>
      html`<p><a href="${signInPath(pathOf('hub', repository))}">Sign in to ${what}</a></p>`;

    const thread = (t: ThreadView) => html`<article class="thread" id="thread-${t.id}">
        <h3>${t.title}</h3>
        <p class="meta">by ${t.author} · ${when(t.createdAt)}${t.reference ? html` · about <code>${t.reference}</code>` : ''}</p>
        ${t.comments.map((c) => html`<div class="comment" id="comment-${c.id}"><div class="meta">${c.author} · ${when(c.createdAt)}</div>${c.body}</div>`)}
        ${
          account
            ? html`<form method="post" action="${pathOf('hub', repository, 'threads', t.id, 'comments')}">${csrfField(view)}
              <label for="reply-${t.id}">Reply</label>
              <textarea id="reply-${t.id}" name="body" required maxlength="10000">${draft?.form === 'comment' && draft.threadId === t.id ? draft.fields.body : ''}</textarea>
              <button type="submit">Comment</button></form>`
            : signInTo('comment')
        }
      </article>`;

    const breedSection = breed
      ? html`<p class="today">A breed on the marketplace: <strong>${breed.title}</strong> by ${breed.owner.handle} · ${price(breed.price, breed.currency)}
          ${breed.price !== null ? html` · ${buyButton(view, { repository, price: breed.price, ownerHandle: breed.owner.handle }, bought !== null)}` : ''}</p>`
      : '';

    const forkSection = account
      ? html`<h2 id="fork">Fork</h2>
        <p>A new branch <code>main</code> in a repository of yours, pointing at one of these checkpoints: no bytes are copied.</p>
        <form class="card" method="post" action="${pathOf('hub', repository, 'fork')}">${csrfField(view)}
          <label for="fork-from">Checkpoint</label><select id="fork-from" name="from">${tagOptions(value('fork', 'from', tags[0]?.tag ?? ''), false)}</select>
          <label for="fork-to">New repository</label>
          <input type="text" id="fork-to" name="to" required value="${value('fork', 'to', trainerRepository(account.handle, repository.split('/').pop()!))}">
          <p class="muted">Under <code>trainers/${account.handle}/</code>${account.role === 'operator' ? ' (operators may fork anywhere)' : ''}.</p>
          <button type="submit">Fork</button></form>`
      : html`<h2 id="fork">Fork</h2>${signInTo('fork this image')}`;

    const publishSection = own
      ? html`<h2 id="publish">Publish as a breed</h2>
        <form class="card" method="post" action="${pathOf('hub', repository, 'publish')}">${csrfField(view)}
          <label for="breed-title">Title</label><input type="text" id="breed-title" name="title" required maxlength="120" value="${value('publish', 'title', breed?.title ?? '')}">
          <label for="breed-price">Price in ${deps.currency.toUpperCase()} (empty: free)</label>
          <input type="text" id="breed-price" name="price" inputmode="decimal" placeholder="9.99" value="${value('publish', 'price', '')}">
          <button type="submit">${breed ? 'Update the listing' : 'Publish as a breed'}</button></form>`
      : '';

    // Talk to it: its public instances on the zookeeper, and (signed in) launching one of your own.
    const runTag = daily?.tag ?? tags[0]?.tag;
    const runSection = html`<h2 id="instances">Talk to it</h2>
      ${
        instances.length
          ? html`<ul id="public-instances">${instances.map(
              (i) =>
                html`<li><a href="${pathOf('zookeeper', i.id)}">${i.id}</a> · <code>${i.reference}</code> · ${i.state}</li>`,
            )}</ul>`
          : html`<p class="muted">No public instance of this image runs now.</p>`
      }
      ${
        !runTag
          ? ''
          : account
            ? html`<p><a class="button" id="run" href="/zookeeper?image=${encodeURIComponent(`${repository}:${runTag}`)}#launch">Run</a> an instance of <code>${repository}:${runTag}</code>, paid from your credit.</p>`
            : signInTo('run an instance of this image')
      }`;

    return sendPage(reply, view, {
      title: repository,
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      ...(notice ? { notice } : {}),
      body: html`<h1>${repository}</h1>
        ${flagBanner(flags)}
        ${breedSection}
        ${runSection}
        <h2 id="tags">Tags</h2>
        ${tags.map(tagSection)}
        ${checkpoints.tags.length > SHOWN_TAGS ? html`<p class="muted">${checkpoints.tags.length - SHOWN_TAGS} older tags: <a href="${pathOf('api', 'checkpoints', repository)}">the full list as JSON</a>.</p>` : ''}
        ${checkpoints.skippedDays.length ? html`<p class="muted">Skipped days: ${checkpoints.skippedDays.map((d, i) => html`${i ? '; ' : ''}${d.day} (${d.reason ?? 'no reason'})`)}</p>` : ''}

        <h2 id="threads">Discussion</h2>
        ${threads.length ? threads.map(thread) : html`<p class="muted">No threads yet.</p>`}
        ${
          account
            ? html`<form class="card" method="post" action="${pathOf('hub', repository, 'threads')}">${csrfField(view)}
              <h3>Start a thread</h3>
              <label for="thread-title">Title</label><input type="text" id="thread-title" name="title" required maxlength="200" value="${value('thread', 'title')}">
              <label for="thread-reference">About</label><select id="thread-reference" name="reference">${tagOptions(value('thread', 'reference'), true)}</select>
              <label for="thread-body">Comment</label><textarea id="thread-body" name="body" required maxlength="10000">${value('thread', 'body')}</textarea>
              <button type="submit">Start the thread</button></form>`
            : signInTo('comment')
        }

        <h2 id="recordings">Recordings</h2>
        <p>Sessions with this model, recorded by the people who used it: they help everyone spot a model that misbehaves.</p>
        ${
          recordings.length
            ? html`<table><tr><th>Recording</th><th>File</th><th class="num">Size</th><th>Checkpoint</th><th>By</th></tr>
              ${recordings.map((r) => html`<tr><td>${r.title}</td><td><a href="${r.downloadUrl}" download>${r.filename}</a></td><td class="num">${bytes(r.size)}</td><td><code>${r.reference ?? shortDigest(r.subjectDigest)}</code></td><td>${r.author} · ${when(r.createdAt)}</td></tr>`)}</table>`
            : html`<p class="muted">No recordings yet.</p>`
        }
        ${
          account
            ? html`<form class="card" method="post" action="${pathOf('hub', repository, 'recordings')}">${csrfField(view)}
              <h3>Attach a text transcript</h3>
              <label for="recording-reference">Checkpoint</label><select id="recording-reference" name="reference">${tagOptions(value('recording', 'reference', tags[0]?.tag ?? ''), false)}</select>
              <label for="recording-title">Title</label><input type="text" id="recording-title" name="title" required maxlength="200" value="${value('recording', 'title')}">
              <label for="recording-filename">File name</label><input type="text" id="recording-filename" name="filename" required maxlength="200" value="${value('recording', 'filename', 'transcript.txt')}">
              <label for="recording-content">Transcript</label><textarea id="recording-content" name="content" required>${value('recording', 'content')}</textarea>
              <button type="submit">Attach</button></form>`
            : signInTo('attach a recording')
        }

        ${probesSection(probes, flags)}

        <h2 id="datasets">Feedback datasets</h2>
        <p>What people said about this model's answers on the zookeeper, as data to train on: corrections preferred over the answers given, answers labelled good or bad, conversations to learn. Train on one with <code>computatrum train --dataset ${repository}@&lt;digest&gt;</code>.</p>
        ${
          refusal
            ? html`<p class="muted">${refusal.message}</p>`
            : datasets.length
              ? html`<table><tr><th>Dataset</th><th class="num">Records</th><th class="num">Preferences</th><th class="num">Labelled</th><th class="num">Transcripts</th><th>Checkpoint</th><th>As of</th><th>Files</th></tr>
              ${datasets.map((d) => html`<tr><td><code>${shortDigest(d.digest)}</code></td><td class="num">${String(d.records)}</td><td class="num">${String(d.preferences)}</td><td class="num">${String(d.labelled)}</td><td class="num">${String(d.transcripts)}</td><td><code>${shortDigest(d.subjectDigest)}</code></td><td>${d.asOf ? when(d.asOf) : ''}</td><td>${DATASET_DOWNLOADS.map((file, i) => html`${i ? ', ' : ''}<a href="${pathOf('hub', repository, 'resolve', d.digest, file)}" download>${file}</a>`)}</td></tr>`)}</table>`
              : html`<p class="muted">No datasets yet: they are built from the feedback given on this model's answers.</p>`
        }

        ${forkSection}
        ${publishSection}

        <h2 id="report">Report</h2>
        ${
          account
            ? html`<form class="card" method="post" action="${pathOf('hub', repository, 'report')}">${csrfField(view)}
              <p>Tell the operators this image is malicious, broken or mislabelled.</p>
              <label for="report-reference">Which</label><select id="report-reference" name="reference">${tagOptions(value('report', 'reference'), true)}</select>
              <label for="report-reason">Reason</label><textarea id="report-reason" name="reason" required maxlength="2000">${value('report', 'reason')}</textarea>
              <button type="submit" class="secondary">Report</button></form>`
            : signInTo('report this image')
        }`,
    });
  }

  const COMMENT_PATH = /^(.+)\/threads\/([^/]+)\/comments$/;
  const ACTION_PATH = /^(.+)\/(threads|recordings|report|fork|publish)$/;

  async function submitForm(request: FastifyRequest, reply: FastifyReply, rest: string): Promise<FastifyReply> {
    const comment = COMMENT_PATH.exec(rest);
    const action = comment ? undefined : ACTION_PATH.exec(rest);
    const repository = comment?.[1] ?? action?.[1];
    if (!repository) return notFound(request, reply, rest);
    if (refuseForgedForm(request, reply)) return reply;
    const page = pathOf('hub', repository);
    const author = request.caller.account;
    if (!author) return redirect(reply, signInPath(page));
    try {
      assertRepository(repository);
    } catch {
      return notFound(request, reply, repository);
    }
    const fields = formFields(request);
    const form: Draft['form'] = comment
      ? 'comment'
      : action![2] === 'threads'
        ? 'thread'
        : action![2] === 'recordings'
          ? 'recording'
          : (action![2] as Draft['form']);
    try {
      switch (form) {
        case 'comment': {
          const added = await addComment(deps.db, author, { threadId: comment![2]!, body: fields.body ?? '' });
          return redirect(reply, `${page}?done=comment#comment-${added.id}`);
        }
        case 'thread': {
          const thread = await startThread(deps.db, deps.store, author, {
            repository,
            reference: fields.reference || null,
            title: fields.title ?? '',
            body: fields.body ?? '',
          });
          return redirect(reply, `${page}?done=thread#thread-${thread.id}`);
        }
        case 'recording': {
          const content = Buffer.from(fields.content ?? '', 'utf8');
          await attachRecording(deps.db, deps.store, author, {
            repository,
            reference: fields.reference ?? '',
            title: fields.title ?? '',
            filename: fields.filename ?? '',
            mediaType: 'text/plain',
            content,
          });
          return redirect(reply, `${page}?done=recording#recordings`);
        }
        case 'report':
          await reportImage(deps.db, deps.store, author, {
            repository,
            reference: fields.reference || null,
            reason: fields.reason ?? '',
          });
          return redirect(reply, `${page}?done=reported#report`);
        case 'fork': {
          if (!fields.from)
            return sendRepository(request, reply, repository, {
              status: 400,
              message: 'choose the checkpoint to fork',
              draft: { form, fields },
            });
          if (!fields.to?.trim())
            return sendRepository(request, reply, repository, {
              status: 400,
              message: `name the new repository, under ${trainerNamespace(author.handle)}`,
              draft: { form, fields },
            });
          const forked = await forkImage(
            deps.db,
            deps.store,
            author,
            `${repository}:${fields.from}`,
            `${(fields.to ?? '').trim()}:main`,
            { keepExisting: true },
          );
          return redirect(reply, `${pathOf('hub', forked.repository)}?done=forked`);
        }
        case 'publish':
          await publishBreed(
            deps.db,
            deps.store,
            author,
            { repository, title: fields.title ?? '', price: fields.price?.trim() || null, currency: deps.currency },
            // Each checkpoint of a new breed is probed (where this process reaches the worker; else the daily sweep).
            deps.client && deps.training
              ? (repo) =>
                  probeNewVersions(
                    {
                      client: deps.client!,
                      db: deps.db,
                      store: deps.store,
                      germline: deps.germline,
                      taskQueue: deps.training!.taskQueue,
                    },
                    repo,
                    'publish',
                    author.handle,
                  )
              : undefined,
          );
          return redirect(reply, `${page}?done=published`);
      }
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendRepository(request, reply, repository, {
        ...refusal,
        draft: { form, fields, ...(comment ? { threadId: comment[2]! } : {}) },
      });
    }
  }
}
