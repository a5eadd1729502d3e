// `computatrum chat`: talks to an instance through the platform's OpenAI-compatible /v1, streaming
// the answer as it comes. Interactive on a terminal (a conversation, one line a turn); with stdin
// piped, the whole input is one message and the answer is printed once.
import { createInterface } from 'node:readline';
import type { Config } from '../runtime/config';
import { platformUrl, UserError } from './common';

interface Message {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

/** An OpenAI-shaped error's message, or the status when the body is not one. */
async function errorOf(response: Response): Promise<string> {
  const text = await response.text();
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? `${response.status} ${text}`;
  } catch {
    return `${response.status} ${text.slice(0, 200)}`;
  }
}

/** Sends the conversation, writes the answer's text to `write` as it streams, and answers the whole text. */
export async function streamChat(
  options: { url: string; token?: string; model: string; maxTokens?: number },
  messages: Message[],
  write: (text: string) => void,
): Promise<string> {
  let response: Response;
  try {
    response = await fetch(`${options.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify({
        model: options.model,
        messages,
        stream: true,
        ...(options.maxTokens ? { max_tokens: options.maxTokens } : {}),
      }),
    });
  } catch (error) {
    throw new UserError(`cannot reach ${options.url} (${(error as Error).message}): is \`computatrum up\` running?`);
  }
  if (!response.ok || !response.body) throw new UserError(await errorOf(response));
  let answer = '';
  let pending = '';
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    pending += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      for (const line of event.split('\n')) {
        // Comment lines (": waking ...") keep the connection alive while a sleeping instance wakes.
        if (!line.startsWith('data: ')) continue;
        const data = line.slice('data: '.length);
        if (data === '[DONE]') return answer;
        const chunk = JSON.parse(data) as {
          choices?: Array<{ delta?: { content?: string } }>;
          error?: { message?: string };
        };
        if (chunk.error) throw new UserError(chunk.error.message ?? 'the instance failed');
        const text = chunk.choices?.[0]?.delta?.content ?? '';
        answer += text;
        if (text) write(text);
      }
    }
  }
  return answer;
}

export async function chat(config: Config, model: string, options: { from?: string; maxTokens?: number }) {
  const target = {
    url: platformUrl(config, options.from),
    model,
    ...(config.apiToken ? { token: config.apiToken } : {}),
    ...(options.maxTokens ? { maxTokens: options.maxTokens } : {}),
  };
  const out = (text: string) => process.stdout.write(text);
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const content = Buffer.concat(chunks).toString('utf8').trim();
    if (!content) throw new UserError('nothing to say: pipe a message in, or run chat on a terminal', 2);
    await streamChat(target, [{ role: 'user', content }], out);
    out('\n');
    return;
  }
  const messages: Message[] = [];
  const lines = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' });
  out(`talking to ${model} (Ctrl-D ends)\n`);
  lines.prompt();
  for await (const line of lines) {
    if (line.trim()) {
      messages.push({ role: 'user', content: line });
      messages.push({ role: 'assistant', content: await streamChat(target, messages, out) });
      out('\n');
    }
    lines.prompt();
  }
}
