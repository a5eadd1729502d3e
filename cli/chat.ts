// `computatrum chat`: talks to an instance through the platform's OpenAI-compatible /v1, streaming
// the answer as it comes. Interactive on a terminal (a conversation, one line a turn; Ctrl-C stops an
// answer, Ctrl-D or Ctrl-C at the prompt ends); with stdin piped, the whole input is one message and
// the answer is printed once.
import { createInterface } from 'node:readline';
import type { Config } from '../runtime/config';
import { platformUrl, UserError } from './common';

interface Message {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

interface Target {
  url: string;
  token?: string;
  model: string;
  maxTokens?: number;
}

/** What a chat completion (a whole one, or a chunk of a stream) holds: text, or an error. */
interface Completion {
  choices?: Array<{ delta?: { content?: string | null }; message?: { content?: string | null } }>;
  error?: { message?: string };
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

/** The refusal as the CLI's user can act on it: which setting to change. */
async function refusalOf(target: Target, response: Response): Promise<UserError> {
  const message = await errorOf(response);
  if (response.status === 401 && !target.token)
    return new UserError(
      `${message}; set COMPUTATRUM_TOKEN to an API token of the account (sign in at ${target.url}/auth/account to create one)`,
    );
  return new UserError(message);
}

/** The text of a completion or of a chunk: a chunk's delta, or a whole message (an answer sent in one piece). */
function textOf(completion: Completion): string {
  if (completion.error) throw new UserError(completion.error.message ?? 'the instance failed');
  const choice = completion.choices?.[0];
  return choice?.delta?.content ?? choice?.message?.content ?? '';
}

/**
 * Sends the conversation, writes the answer's text to `write` as it streams, and answers the whole
 * text. `signal` stops the answer where it is (Ctrl-C): what came so far is answered.
 */
export async function streamChat(
  options: Target & { signal?: AbortSignal },
  messages: Message[],
  write: (text: string) => void,
): Promise<string> {
  let answer = '';
  let response: Response;
  try {
    response = await fetch(`${options.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      body: JSON.stringify({
        model: options.model,
        messages,
        stream: true,
        ...(options.maxTokens ? { max_tokens: options.maxTokens } : {}),
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (options.signal?.aborted) return answer;
    const reason = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    throw new UserError(
      `cannot reach the platform at ${options.url} (${reason}): is \`computatrum up\` running, or is --from right?`,
    );
  }
  if (!response.ok || !response.body) throw await refusalOf(options, response);
  let pending = '';
  const decoder = new TextDecoder();
  try {
    // An instance that does not stream answers one JSON completion, which the gateway passes on.
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      answer = textOf((await response.json()) as Completion);
      write(answer);
      return answer;
    }
    for await (const bytes of response.body) {
      // Events end with an empty line; lines end with \n, \r\n or \r (a \r last may be half of a \r\n).
      pending = (pending + decoder.decode(bytes as Uint8Array, { stream: true })).replace(/\r\n|\r(?!$)/g, '\n');
      let end: number;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        const event = pending.slice(0, end);
        pending = pending.slice(end + 2);
        for (const line of event.split('\n')) {
          // Comment lines (": waking ...") keep the connection alive while a sleeping instance wakes.
          if (!line.startsWith('data:')) continue;
          const data = line.slice('data:'.length).replace(/^ /, '');
          if (data === '[DONE]') return answer;
          const text = textOf(JSON.parse(data) as Completion);
          answer += text;
          if (text) write(text);
        }
      }
    }
  } catch (error) {
    if (options.signal?.aborted) return answer;
    if (error instanceof UserError) throw error;
    throw new UserError(`the answer broke off (${(error as Error).message}): try again`);
  }
  if (options.signal?.aborted) return answer;
  // The contract ends every stream with [DONE]: without it, the instance or the connection failed.
  throw new UserError('the answer broke off before its end (the instance stopped answering): try again');
}

export async function chat(config: Config, model: string, options: { from?: string; maxTokens?: number }) {
  const target: Target = {
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
  // Ctrl-C stops the answer that is streaming; at the prompt it ends the chat, as Ctrl-D does.
  let answering: AbortController | undefined;
  lines.on('SIGINT', () => (answering ? answering.abort() : lines.close()));
  out(`talking to ${model} (Ctrl-D ends)\n`);
  lines.prompt();
  try {
    for await (const line of lines) {
      if (line.trim()) {
        messages.push({ role: 'user', content: line });
        const stop = (answering = new AbortController());
        try {
          const answer = await streamChat({ ...target, signal: stop.signal }, messages, out);
          // An answer stopped before its first word leaves no turn: the question goes too.
          if (stop.signal.aborted && !answer) messages.pop();
          else messages.push({ role: 'assistant', content: answer });
        } finally {
          answering = undefined;
        }
        out('\n');
      }
      lines.prompt();
    }
  } finally {
    lines.close();
  }
  // The prompt's line ends, so that the shell's prompt starts on its own.
  out('\n');
}
