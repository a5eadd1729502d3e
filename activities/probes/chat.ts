// Talking to an instance the way any OpenAI client does (the instance contract in ../runners/types):
// `GET /v1/models` names the model it serves, `POST /v1/chat/completions` answers. Probes use it
// straight, not through the gateway: their exchanges are the probe's transcript, not interactions.
import { INSTANCE_READY_PATH } from '../runners/types';

export type ChatMessage = { role: 'system' | 'user' | 'assistant'; content: string };

const TIMEOUT_MS = 60_000;
/** An answer longer than this is cut: the judge reads the start, and the transcript stays small. */
export const MAX_ANSWER_CHARS = 4_000;

export class InstanceAnswerError extends Error {
  override name = 'InstanceAnswerError';
}

/** The model id the instance serves (its first in `/v1/models`). */
export async function servedModel(endpoint: string): Promise<string> {
  const response = await fetch(`${endpoint}${INSTANCE_READY_PATH}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!response.ok) throw new InstanceAnswerError(`${endpoint}${INSTANCE_READY_PATH} answered ${response.status}`);
  const body = (await response.json()) as { data?: { id?: unknown }[] };
  const id = body.data?.[0]?.id;
  if (typeof id !== 'string') throw new InstanceAnswerError(`${endpoint}${INSTANCE_READY_PATH} names no model`);
  return id;
}

/** One chat completion, deterministic where the server allows it (temperature 0, a fixed seed). */
export async function complete(
  endpoint: string,
  model: string,
  messages: ChatMessage[],
  maxTokens: number,
): Promise<string> {
  const response = await fetch(`${endpoint}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages, max_tokens: maxTokens, temperature: 0, seed: 0, stream: false }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new InstanceAnswerError(`the instance answered ${response.status}: ${text.slice(0, 300)}`);
  let content: unknown;
  try {
    content = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
  } catch {
    throw new InstanceAnswerError(`the instance's answer is not JSON: ${text.slice(0, 300)}`);
  }
  if (typeof content !== 'string') throw new InstanceAnswerError('the instance answered no message content');
  return content.slice(0, MAX_ANSWER_CHARS);
}
