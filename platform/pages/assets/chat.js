// The zookeeper's chat page, with scripts on: instead of posting the form and waiting for the whole
// page, it sends the conversation to the gateway (POST /v1/chat/completions, same origin, with this
// browser's session cookie) with `stream: true`, and shows the answer as its server-sent events
// arrive. The page works without it: the form posts to the server, which asks the gateway itself.
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

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (typeof body.error === 'string') return body.error;
      if (body.error && typeof body.error.message === 'string') return body.error.message;
      if (typeof body.message === 'string') return body.message;
    } catch {
      // not JSON: say what the status was
    }
    return `the instance could not answer (HTTP ${response.status})`;
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
          ...(csrf ? { 'x-csrf-token': csrf.value } : {}),
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
    } catch (error) {
      // The exchange did not happen: the page shows the conversation as it was, and the message to send again.
      asked.item.remove();
      answer.item.remove();
      textarea.value = text;
      showError(error && error.message ? error.message : String(error));
    } finally {
      button.disabled = false;
      textarea.focus();
    }
  });
})();
