// /zookeeper: the people's client of hosted instances. Anyone, without signing in, sees the public
// instances and talks to them; signed in, people also see their own instances (state, cost so far),
// stop them, and launch new ones paid from their credit. /zookeeper/<id> is one instance's chat: a
// plain form that the server sends through the gateway (POST /v1/chat/completions, in-process, as the
// caller), answered with the page again and the answer appended; with scripts on, /assets/chat.js
// sends the same request from the browser and shows the answer as it streams. A conversation can be
// saved as a text recording on its image's hub page. Under each answer the gateway recorded, the
// script offers 👍 / 👎 and a correction (POST /v1/feedback), which the germline's datasets are made
// of. Who may see, talk to or stop which instance is decided by the instances service and the
// gateway, never here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FINAL_INSTANCE_STATES } from '../../workflows/instance-api';
import { formatMoney, parseAmount } from '../../workflows/money';
import { CSRF_FIELD, CSRF_HEADER } from '../csrf';
import type { Caller } from '../accounts';
import { toRefusal } from '../errors';
import { INTERACTION_HEADER } from '../gateway';
import { attachRecording } from '../hub';
import {
  DEFAULT_IDLE_SECONDS,
  type InstanceRow,
  launchAccountInstance,
  stopAccountInstance,
  visibleInstance,
  visibleInstances,
} from '../instances';
import type { PagesDeps } from './deps';
import { html, pathOf, type SafeHtml } from './html';
import { CHAT_SCRIPT_URL } from './scripts';
import {
  csrfField,
  formFields,
  redirect,
  refuseForgedForm,
  sendPage,
  sendProblem,
  signInPath,
  type View,
  viewOf,
} from './view';

/** What one page's conversation may hold: it travels in a hidden field, so it is bounded. */
export const CHAT_LIMITS = { messages: 40, messageChars: 4_000, conversationChars: 32_000, maxTokens: 200 };

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

type Problem = { status: number; message: string };

const INSTANCE_ID = /^[a-z0-9][a-z0-9-]{0,99}$/;

const DONE: Record<string, string> = {
  launched: 'Launched: your instance is starting. It is billed from your credit once it is ready.',
  stopped: 'Stopped: its last lease is settled, and nothing more is reserved for it.',
};

const STATE_NOTES: Record<string, string> = {
  pending: 'it is being prepared; it answers once it is ready.',
  starting: 'it is starting; it answers once it is ready.',
  ready: 'it is ready.',
  sleeping: 'it sleeps (nothing is billed); your message wakes it, which takes a moment.',
  draining: 'it is stopping and takes no new messages.',
  stopped: 'it has stopped.',
  failed: 'it has failed.',
};

const ended = (row: InstanceRow) => (FINAL_INSTANCE_STATES as readonly string[]).includes(row.state);
const manages = (caller: Caller, row: InstanceRow) =>
  caller.role === 'operator' || (caller.account !== undefined && caller.account.handle === row.ownerHandle);
const imageOf = (row: InstanceRow) => `${row.repository}:${row.reference}`;
const chatPath = (id: string) => pathOf('zookeeper', id);

/** The conversation a form carried (JSON in a hidden field), or a problem saying why it cannot be used. */
export function parseConversation(text: string | undefined): ChatMessage[] | Problem {
  if (!text?.trim()) return [];
  if (text.length > CHAT_LIMITS.conversationChars)
    return {
      status: 413,
      message: `this conversation is longer than one page holds (${CHAT_LIMITS.conversationChars} characters): start a new one`,
    };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { status: 400, message: 'the conversation could not be read: start a new one' };
  }
  if (!Array.isArray(parsed)) return { status: 400, message: 'the conversation could not be read: start a new one' };
  if (parsed.length > CHAT_LIMITS.messages)
    return {
      status: 413,
      message: `this conversation has more than ${CHAT_LIMITS.messages} messages: start a new one`,
    };
  const messages: ChatMessage[] = [];
  for (const item of parsed) {
    const { role, content } = (item ?? {}) as { role?: unknown; content?: unknown };
    if ((role !== 'user' && role !== 'assistant') || typeof content !== 'string')
      return { status: 400, message: 'the conversation could not be read: start a new one' };
    messages.push({ role, content });
  }
  return messages;
}

/** A conversation as a plain-text transcript, for a recording on the image's hub page. */
export function transcriptOf(row: InstanceRow, messages: ChatMessage[], by: string): string {
  const header = [
    `A conversation with instance ${row.id} of ${imageOf(row)}`,
    ...(row.digest ? [`Image digest: ${row.digest}`] : []),
    `Recorded by ${by} on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
  ];
  const turns = messages.map((m) => `${m.role === 'user' ? 'You' : row.id}:\n${m.content}`);
  return `${header.join('\n')}\n\n${turns.join('\n\n')}\n`;
}

/** What the gateway said went wrong: OpenAI's `{error: {message}}`, the platform's `{error}`, or the status. */
function gatewayError(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
    const error = parsed.error;
    if (typeof error === 'string') return error;
    if (error && typeof (error as { message?: unknown }).message === 'string')
      return (error as { message: string }).message;
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: say what the status was
  }
  return `the instance could not answer (HTTP ${status})`;
}

interface LaunchValues {
  image?: string;
  visibility?: string;
  maxCost?: string;
  idleMinutes?: string;
}

export function registerZookeeperPages(app: FastifyInstance, deps: PagesDeps): void {
  const money = (minor: bigint, currency: string) => formatMoney(minor, currency);

  const stopButton = (view: View, row: InstanceRow) =>
    html`<form class="inline" method="post" action="${pathOf('zookeeper', row.id, 'stop')}">${csrfField(view)}<button type="submit" class="secondary">Stop</button></form>`;

  const publicTable = (view: View, rows: InstanceRow[]) =>
    rows.length
      ? html`<table id="public-instances"><tr><th>Instance</th><th>Image</th><th>State</th><th>Launched by</th><th></th></tr>
        ${rows.map(
          (row) => html`<tr id="instance-${row.id}"><td><a href="${chatPath(row.id)}">${row.id}</a></td>
            <td><a href="${pathOf('hub', row.repository)}">${imageOf(row)}</a></td><td>${row.state}</td>
            <td>${row.ownerHandle ?? 'the germline'}</td>
            <td><a href="${chatPath(row.id)}">Talk to it</a>${manages(view.caller, row) ? html` ${stopButton(view, row)}` : ''}</td></tr>`,
        )}</table>`
      : html`<p class="muted">No public instance runs now.</p>`;

  const ownTable = (view: View, rows: InstanceRow[], id: string) =>
    rows.length
      ? html`<table id="${id}"><tr><th>Instance</th><th>Image</th><th>Visibility</th><th>State</th><th class="num">Cost so far</th><th class="num">At most</th><th></th></tr>
        ${rows.map(
          (
            row,
          ) => html`<tr id="instance-${row.id}"><td>${ended(row) ? row.id : html`<a href="${chatPath(row.id)}">${row.id}</a>`}</td>
            <td><a href="${pathOf('hub', row.repository)}">${imageOf(row)}</a></td><td>${row.visibility}</td>
            <td>${row.state}${row.reason ? html` <span class="muted">(${row.reason})</span>` : ''}</td>
            <td class="num">${money(row.cost, row.currency)}</td><td class="num">${money(row.maxCost, row.currency)}</td>
            <td>${ended(row) ? '' : html`<a href="${chatPath(row.id)}">Talk to it</a> ${stopButton(view, row)}`}</td></tr>`,
        )}</table>`
      : html`<p class="muted">None yet.</p>`;

  const launchForm = (view: View, values: LaunchValues) => {
    if (!view.caller.account)
      return html`<p><a href="${signInPath(view.path)}">Sign in to launch an instance</a> of any image you may read, paid from your credit.</p>`;
    const visibility = values.visibility === 'public' ? 'public' : 'private';
    return html`<form class="card" id="launch-form" method="post" action="/zookeeper/launch">${csrfField(view)}
      <p>An instance of an image serves the OpenAI-compatible API at <code>/v1/chat/completions</code> (its id is the model). It is paid from your credit, lease by lease, and sleeps (billed nothing) when idle.</p>
      <label for="launch-image">Image (repository:tag or repository@digest)</label>
      <input type="text" id="launch-image" name="image" required maxlength="300" value="${values.image ?? ''}" placeholder="germline/computatrum:main">
      <label for="launch-visibility">Who may talk to it</label>
      <select id="launch-visibility" name="visibility">
        <option value="private"${visibility === 'private' ? html` selected` : ''}>private: you and your API tokens</option>
        <option value="public"${visibility === 'public' ? html` selected` : ''}>public: anyone, no sign-in (you pay)</option>
      </select>
      <label for="launch-max-cost">At most, over its life (${deps.currency.toUpperCase()})</label>
      <input type="text" id="launch-max-cost" name="maxCost" required inputmode="decimal" value="${values.maxCost ?? '5.00'}">
      <label for="launch-idle">Sleep after this many idle minutes (0: never)</label>
      <input type="text" id="launch-idle" name="idleMinutes" inputmode="numeric" value="${values.idleMinutes ?? String(DEFAULT_IDLE_SECONDS / 60)}">
      <button type="submit">Launch</button></form>`;
  };

  const sendIndex = async (
    request: FastifyRequest,
    reply: FastifyReply,
    problem?: Problem,
    values: LaunchValues = {},
  ): Promise<FastifyReply> => {
    const view = viewOf(request, reply);
    const caller = view.caller;
    const account = caller.account;
    const [alive, mine] = await Promise.all([
      visibleInstances(deps.db, caller),
      account
        ? visibleInstances(deps.db, caller, { includeEnded: true, limit: 200 }).then((rows) =>
            rows.filter((row) => row.ownerHandle === account.handle).slice(0, 50),
          )
        : Promise.resolve([]),
    ]);
    const publicRows = alive.filter((row) => row.visibility === 'public');
    // Operators see every instance: the private ones of others too, to stop them.
    const othersPrivate =
      caller.role === 'operator'
        ? alive.filter((row) => row.visibility !== 'public' && row.ownerHandle !== account?.handle)
        : [];
    const query = request.query as { done?: string; image?: string };
    const notice = query.done ? DONE[query.done] : undefined;
    const launchValues: LaunchValues = {
      ...(typeof query.image === 'string' ? { image: query.image.slice(0, 300) } : {}),
      ...values,
    };
    return sendPage(reply, view, {
      title: 'Zookeeper',
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      ...(notice ? { notice } : {}),
      body: html`<h1>Zookeeper</h1>
        <p>The computatra hosted on this platform. Public instances answer anyone, without an account; pick one and talk to it. Programs reach the same instances at <code>POST /v1/chat/completions</code> with the instance id as the model.</p>
        <h2 id="public">Public instances</h2>
        ${publicTable(view, publicRows)}
        ${account ? html`<h2 id="yours">Your instances</h2>${ownTable(view, mine, 'your-instances')}` : ''}
        ${othersPrivate.length ? html`<h2 id="others">Others’ private instances</h2>${ownTable(view, othersPrivate, 'other-instances')}` : ''}
        <h2 id="launch">Launch an instance</h2>
        ${launchForm(view, launchValues)}`,
    });
  };

  const sendChat = (
    request: FastifyRequest,
    reply: FastifyReply,
    row: InstanceRow,
    messages: ChatMessage[],
    problem?: Problem,
    draft?: string,
    /** The interaction id of the last answer, when the gateway just gave it: the script offers feedback on it. */
    answered?: string,
  ): FastifyReply => {
    const view = viewOf(request, reply);
    const conversation = JSON.stringify(messages);
    const turn = (m: ChatMessage, index: number) =>
      html`<li class="message ${m.role}"${answered && index === messages.length - 1 ? html` data-interaction="${answered}"` : ''}><strong>${m.role === 'user' ? 'You' : row.id}</strong><div class="content">${m.content}</div></li>`;
    const talking = !ended(row) && row.state !== 'draining';
    return sendPage(reply, view, {
      title: `Talk to ${row.id}`,
      ...(problem ? { status: problem.status, error: problem.message } : {}),
      ...(talking ? { script: CHAT_SCRIPT_URL } : {}),
      body: html`<h1>Talk to ${row.id}</h1>
        <p>An instance of <a href="${pathOf('hub', row.repository)}">${imageOf(row)}</a>, ${row.visibility === 'public' ? 'public' : 'private'}, launched by ${row.ownerHandle ?? 'the germline'}.
          State: <strong id="instance-state">${row.state}</strong>: ${STATE_NOTES[row.state] ?? ''}</p>
        <ol id="conversation" class="conversation">${messages.map(turn)}</ol>
        <p id="chat-error" class="error" role="alert" hidden></p>
        ${
          talking
            ? html`<form class="card" id="chat-form" method="post" action="${pathOf('zookeeper', row.id, 'chat')}" data-model="${row.id}" data-max-tokens="${CHAT_LIMITS.maxTokens}">${csrfField(view)}
              <input type="hidden" name="conversation" value="${conversation}">
              <label for="message">Your message</label>
              <textarea id="message" name="message" required maxlength="${CHAT_LIMITS.messageChars}">${draft ?? ''}</textarea>
              <button type="submit">Send</button></form>
              <p class="muted" id="feedback-note">Tell it how it did with 👍 or 👎 under an answer, and write the answer it should have given: feedback trains the next models (the germline learns from it). Without an account, your feedback is tied to your address only as a salted hash, never the address itself.</p>`
            : html`<p class="muted">This instance takes no messages now.</p>`
        }
        ${
          view.caller.account
            ? html`<form class="card" id="record-form" method="post" action="${pathOf('zookeeper', row.id, 'record')}">${csrfField(view)}
              <input type="hidden" name="conversation" value="${conversation}">
              <p>Save this conversation as a text recording on <a href="${pathOf('hub', row.repository)}#recordings">the image’s hub page</a>, where everyone can read it.</p>
              <label for="record-title">Title</label>
              <input type="text" id="record-title" name="title" required maxlength="200" value="${`A conversation with ${row.id}`}">
              <button type="submit" class="secondary">Save as recording</button></form>`
            : html`<p><a href="${signInPath(chatPath(row.id))}">Sign in</a> to save a conversation as a recording on the image’s hub page.</p>`
        }
        <p><a href="${chatPath(row.id)}">Start a new conversation</a> · <a href="/zookeeper">Every instance</a></p>`,
    });
  };

  /** The instance `request`'s caller may see, or undefined once a 404 page is sent. */
  const instanceOrNotFound = async (
    request: FastifyRequest,
    reply: FastifyReply,
    id: string,
  ): Promise<InstanceRow | undefined> => {
    try {
      if (INSTANCE_ID.test(id)) return await visibleInstance(deps.db, request.caller, id);
    } catch (error) {
      if (toRefusal(error)?.status !== 404) throw error;
    }
    const missing: SafeHtml = html`<p><a href="/zookeeper">See the instances you may talk to</a></p>`;
    sendProblem(
      reply,
      viewOf(request, reply),
      404,
      'No such instance',
      `There is no instance ${id} that you may talk to.`,
      missing,
    );
    return undefined;
  };

  app.get('/zookeeper', async (request, reply) => {
    const funded = (request.query as { funded?: string }).funded;
    // Stripe's return from funding the germline, which the operators' console now shows.
    if (funded && request.caller.role === 'operator')
      return redirect(reply, `/operator?funded=${encodeURIComponent(funded)}`);
    return sendIndex(request, reply);
  });

  app.post('/zookeeper/launch', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (!request.caller.account) return redirect(reply, signInPath('/zookeeper#launch'));
    const fields = formFields(request);
    const values: LaunchValues = {
      image: fields.image ?? '',
      visibility: fields.visibility ?? 'private',
      maxCost: fields.maxCost ?? '',
      idleMinutes: fields.idleMinutes ?? '',
    };
    if (!deps.client || !deps.training)
      return sendIndex(
        request,
        reply,
        { status: 503, message: 'launching instances is not configured on this platform process' },
        values,
      );
    const visibility = values.visibility;
    if (visibility !== 'private' && visibility !== 'public')
      return sendIndex(request, reply, { status: 400, message: 'choose private or public' }, values);
    const idleText = values.idleMinutes?.trim() || String(DEFAULT_IDLE_SECONDS / 60);
    const idleMinutes = Number(idleText);
    if (!/^\d{1,6}$/.test(idleText) || !Number.isSafeInteger(idleMinutes))
      return sendIndex(
        request,
        reply,
        { status: 400, message: 'the idle timeout is whole minutes, 0 (never sleep) or more' },
        values,
      );
    try {
      const launched = await launchAccountInstance(
        { client: deps.client, db: deps.db, store: deps.store, currency: deps.currency, settings: deps.training },
        request.caller,
        {
          image: (values.image ?? '').trim(),
          visibility,
          maxCost: parseAmount(values.maxCost ?? '', deps.currency),
          idleTimeoutSeconds: idleMinutes * 60,
        },
      );
      return redirect(reply, `/zookeeper?done=launched#instance-${launched.id}`);
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendIndex(request, reply, refusal, values);
    }
  });

  app.get<{ Params: { id: string } }>('/zookeeper/:id', async (request, reply) => {
    const row = await instanceOrNotFound(request, reply, request.params.id);
    if (!row) return reply;
    return sendChat(request, reply, row, []);
  });

  app.post<{ Params: { id: string } }>('/zookeeper/:id/chat', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    const row = await instanceOrNotFound(request, reply, request.params.id);
    if (!row) return reply;
    const fields = formFields(request);
    const conversation = parseConversation(fields.conversation);
    if (!Array.isArray(conversation)) return sendChat(request, reply, row, [], conversation);
    const text = (fields.message ?? '').trim();
    if (!text) return sendChat(request, reply, row, conversation, { status: 400, message: 'write a message first' });
    if (text.length > CHAT_LIMITS.messageChars)
      return sendChat(
        request,
        reply,
        row,
        conversation,
        { status: 400, message: `a message is at most ${CHAT_LIMITS.messageChars} characters` },
        text,
      );
    const messages: ChatMessage[] = [...conversation, { role: 'user', content: text }];
    // Through the gateway, as this caller (their session cookie, their address for its limits): it
    // decides access, wakes a sleeping instance and records the exchange.
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: {
        ...(request.headers.cookie ? { cookie: request.headers.cookie } : {}),
        // The form's token, checked above: the gateway may ask a session's requests for it too.
        ...(fields[CSRF_FIELD] ? { [CSRF_HEADER]: fields[CSRF_FIELD] } : {}),
        'content-type': 'application/json',
      },
      payload: { model: row.id, messages, max_tokens: CHAT_LIMITS.maxTokens },
      remoteAddress: request.ip,
    });
    if (answer.statusCode !== 200) {
      const status = answer.statusCode >= 400 ? answer.statusCode : 502;
      return sendChat(
        request,
        reply,
        row,
        conversation,
        { status, message: gatewayError(answer.statusCode, answer.body) },
        text,
      );
    }
    let content: string | undefined;
    try {
      const completion = JSON.parse(answer.body) as { choices?: Array<{ message?: { content?: unknown } }> };
      const value = completion.choices?.[0]?.message?.content;
      content = typeof value === 'string' ? value : undefined;
    } catch {
      content = undefined;
    }
    if (content === undefined)
      return sendChat(
        request,
        reply,
        row,
        conversation,
        { status: 502, message: 'the instance answered something that is not a chat completion' },
        text,
      );
    const interaction = answer.headers[INTERACTION_HEADER];
    return sendChat(
      request,
      reply,
      row,
      [...messages, { role: 'assistant', content }],
      undefined,
      undefined,
      typeof interaction === 'string' ? interaction : undefined,
    );
  });

  app.post<{ Params: { id: string } }>('/zookeeper/:id/record', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    const author = request.caller.account;
    if (!author) return redirect(reply, signInPath(chatPath(request.params.id)));
    const row = await instanceOrNotFound(request, reply, request.params.id);
    if (!row) return reply;
    const fields = formFields(request);
    const conversation = parseConversation(fields.conversation);
    if (!Array.isArray(conversation)) return sendChat(request, reply, row, [], conversation);
    if (conversation.length === 0)
      return sendChat(request, reply, row, [], {
        status: 400,
        message: 'say something first: the conversation is empty',
      });
    try {
      await attachRecording(deps.db, deps.store, author, {
        repository: row.repository,
        reference: row.digest ?? row.reference,
        title: fields.title?.trim() || `A conversation with ${row.id}`,
        filename: `conversation-${row.id}.txt`,
        mediaType: 'text/plain',
        content: Buffer.from(transcriptOf(row, conversation, author.handle), 'utf8'),
      });
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendChat(request, reply, row, conversation, refusal);
    }
    return redirect(reply, `${pathOf('hub', row.repository)}?done=recording#recordings`);
  });

  app.post<{ Params: { id: string } }>('/zookeeper/:id/stop', async (request, reply) => {
    if (refuseForgedForm(request, reply)) return reply;
    if (!request.caller.account) return redirect(reply, signInPath('/zookeeper'));
    if (!deps.client)
      return sendIndex(request, reply, {
        status: 503,
        message: 'instances cannot be stopped from this platform process (it is not connected to Temporal)',
      });
    try {
      await stopAccountInstance(
        { client: deps.client, db: deps.db },
        request.caller,
        request.params.id,
        'from the zookeeper',
      );
    } catch (error) {
      const refusal = toRefusal(error);
      if (!refusal) throw error;
      return sendIndex(request, reply, refusal);
    }
    return redirect(reply, `/zookeeper?done=stopped#instance-${request.params.id}`);
  });
}
