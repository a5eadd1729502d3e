// The zookeeper's chat page, with scripts on: instead of posting the form and waiting for the whole
// page, it sends the conversation to the gateway (POST /v1/chat/completions, same origin, with this
// browser's session cookie) with `stream: true`, and shows the answer as its server-sent events
// arrive. The page works without it: the form posts to the server, which asks the gateway itself.
// Under every answer the gateway recorded (its id in x-computatrum-interaction, or the page's
// data-interaction), 👍 / 👎 send feedback to POST /v1/feedback; 👎 opens a small form for the answer
// that should have been given. A second choice replaces the first.
/* global document, window */
'use strict';
(function () {
  const form = document.getElementById('chat-form');
  if (!form || !window.fetch || !window.ReadableStream || !window.TextDecoder) return;
  const list = document.getElementById('conversation');
  const errorBox = document.getElementById('chat-error');
  const textarea = form.querySelector('textarea[name="message"]');
  const button = form.querySelector('button[type="submit"]');
  const model = form.dataset.model;
  const maxTokens = Number(form.dataset.maxTokens) || 200;
  const csrf = form.querySelector('input[name="_csrf"]');
  const csrfHeader = csrf ? { 'x-csrf-token': csrf.value } : {};
  let feedbackForms = 0;

  function conversation() {
    try {
      const parsed = JSON.parse(form.querySelector('input[name="conversation"]').value || '[]');
      return Array.isArray(parsed) ? parsed : [];
    } catch {
      return [];
    }
  }

  /** Every form of the page that carries the conversation (the chat, "Save as recording") gets the new one. */
  function remember(messages) {
    const text = JSON.stringify(messages);
    for (const field of document.querySelectorAll('input[name="conversation"]')) field.value = text;
  }

  function append(role, text) {
    const item = document.createElement('li');
    item.className = `message ${role}`;
    const who = document.createElement('strong');
    who.textContent = role === 'user' ? 'You' : model;
    const content = document.createElement('div');
    content.className = 'content';
    content.textContent = text;
    item.append(who, content);
    list.append(item);
    return { item, content };
  }

  /** An element with attributes and children. */
  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  const messageOf = (error) => (error && error.message ? error.message : String(error));

  async function errorOf(response, failed = 'the instance could not answer') {
    try {
      const body = await response.json();
      if (typeof body.error === 'string') return body.error;
      if (body.error && typeof body.error.message === 'string') return body.error.message;
      if (typeof body.message === 'string') return body.message;
    } catch {
      // not JSON: say what the status was
    }
    return `${failed} (HTTP ${response.status})`;
  }

  /** Reads the server-sent events, calling `onText` with each piece of the answer; ends at `data: [DONE]`. */
  async function readEvents(response, onText) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') {
            reader.cancel().catch(() => {});
            return;
          }
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
          const piece = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
          if (piece) onText(piece);
        }
      }
    }
  }

  /**
   * POST /v1/feedback. The gateway stores a streamed exchange once its stream has ended, so an answer
   * just shown may be unknown (404) for a moment: asked again a few times before saying so.
   */
  async function sendFeedback(body) {
    for (let attempt = 1; ; attempt++) {
      const response = await fetch('/v1/feedback', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', ...csrfHeader },
        body: JSON.stringify(body),
      });
      if (response.ok) return response.json();
      if (response.status !== 404 || attempt === 4)
        throw new Error(await errorOf(response, 'the feedback could not be recorded'));
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
    }
  }

  /** 👍 / 👎 under an answer the gateway recorded as `interaction`; 👎 opens the correction form. */
  function offerFeedback(item, interaction) {
    const id = `feedback-${++feedbackForms}`;
    item.dataset.interaction = interaction;
    const choice = (label, emoji, more) =>
      element('button', { type: 'button', class: 'secondary', 'aria-label': label, title: label, ...more }, emoji);
    const good = choice('Good answer', '👍', { 'aria-pressed': 'false' });
    const bad = choice('Bad answer', '👎', { 'aria-pressed': 'false', 'aria-expanded': 'false', 'aria-controls': id });
    const correction = element('textarea', { id: `${id}-correction`, name: 'correction', maxlength: '20000' });
    const comment = element('input', { type: 'text', id: `${id}-comment`, name: 'comment', maxlength: '2000' });
    const send = element('button', { type: 'submit' }, 'Send');
    const cancel = element('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const correcting = element(
      'form',
      { id, class: 'card', 'aria-label': 'Correct this answer', hidden: '' },
      element('label', { for: correction.id }, 'The answer it should have given'),
      correction,
      element('label', { for: comment.id }, 'A comment (optional)'),
      comment,
      send,
      ' ',
      cancel,
    );
    // Always there (empty until something is recorded), so that screen readers announce what it says.
    const status = element('div', { role: 'status' });
    const failure = element('p', { class: 'error', role: 'alert', hidden: '' });
    item.append(
      element(
        'div',
        { class: 'feedback', role: 'group', 'aria-label': 'Feedback on this answer' },
        good,
        ' ',
        bad,
        correcting,
        status,
        failure,
      ),
    );
    let recorded = false;

    function open(opened) {
      correcting.hidden = !opened;
      bad.setAttribute('aria-expanded', String(opened));
      if (opened) correction.focus();
    }

    async function give(label) {
      const buttons = [good, bad, send];
      failure.hidden = true;
      for (const button of buttons) button.disabled = true;
      try {
        const given = await sendFeedback(
          label === 'bad'
            ? { interaction, label, correction: correction.value, comment: comment.value }
            : { interaction, label },
        );
        for (const button of [good, bad]) {
          const chosen = button === (given.label === 'good' ? good : bad);
          button.setAttribute('aria-pressed', String(chosen));
          button.className = chosen ? '' : 'secondary';
        }
        const added = [given.correction && 'your correction', given.comment && 'your comment'].filter(Boolean);
        const again = recorded || given.updated > given.created;
        status.textContent = `${again ? 'Updated' : 'Thanks'}: recorded as ${given.label}${added.length ? `, with ${added.join(' and ')}` : ''}.`;
        status.className = 'notice';
        recorded = true;
        open(false);
      } catch (error) {
        failure.textContent = messageOf(error);
        failure.hidden = false;
      } finally {
        for (const button of buttons) button.disabled = false;
        (correcting.hidden ? (label === 'good' ? good : bad) : send).focus();
      }
    }

    good.addEventListener('click', () => give('good'));
    bad.addEventListener('click', () => open(correcting.hidden));
    const close = () => {
      open(false);
      bad.focus();
    };
    cancel.addEventListener('click', close);
    correcting.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') close();
    });
    correcting.addEventListener('submit', (event) => {
      event.preventDefault();
      give('bad');
    });
  }

  // Answers the server asked for (the form posted without this script) carry their id in the page.
  for (const item of list.querySelectorAll('li.message.assistant[data-interaction]'))
    offerFeedback(item, item.dataset.interaction);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text || button.disabled) return;
    errorBox.hidden = true;
    const messages = conversation().concat([{ role: 'user', content: text }]);
    const asked = append('user', text);
    const answer = append('assistant', '');
    answer.item.setAttribute('aria-busy', 'true');
    textarea.value = '';
    button.disabled = true;
    let said = '';
    try {
      const response = await fetch('/v1/chat/completions', {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...csrfHeader,
        },
        body: JSON.stringify({ model, messages, stream: true, max_tokens: maxTokens }),
      });
      if (!response.ok) throw new Error(await errorOf(response));
      await readEvents(response, (piece) => {
        said += piece;
        answer.content.textContent = said;
      });
      remember(messages.concat([{ role: 'assistant', content: said }]));
      answer.item.removeAttribute('aria-busy');
      const interaction = response.headers.get('x-computatrum-interaction');
      if (interaction) offerFeedback(answer.item, interaction);
    } catch (error) {
      // The exchange did not happen: the page shows the conversation as it was, and the message to send again.
      asked.item.remove();
      answer.item.remove();
      textarea.value = text;
      showError(messageOf(error));
    } finally {
      button.disabled = false;
      textarea.focus();
    }
  });
})();
