// What the tiny trainer learns from feedback datasets (COMPUTATRUM_DATASET_DIRS, store/dataset.ts):
// the characters of the answers people want, after the prompt they answer, laid out the way the tiny
// server (server.ts, chatPrompt in sampling.ts) shows a conversation to the model, so that a chat with
// the served model continues the prompt with the learned answer.
// - transcripts: the last user message's text, then the final assistant answer: the answer's
//   characters (and the blank line that ends it) are learned, the prompt is only context;
// - preferences: the first character where the rejected answer leaves the chosen one is pushed down
//   (unlikelihood); the rest of the rejected answer is not touched (its characters are often good
//   prose elsewhere), and the chosen answer is learned from the transcripts (a correction is one too);
// - labelled rows are not used (the tiny trainer has no KTO-style objective); the log says so.
// Characters outside the model's vocabulary are dropped, as the server drops them from prompts.
import { type ChatMessage, type DatasetFolder } from '../../../store/dataset';
import { chatPrompt } from './sampling';

export interface FeedbackSet {
  /** Token ids: the feedback sequences, one after another, each starting with the `context` tokens its answer follows. */
  tokens: Int32Array;
  /** Positions in `tokens` of characters to learn (the answers). */
  learn: Int32Array;
  /** Positions in `tokens` of characters to push down (where a rejected answer leaves the chosen one). */
  unlearn: Int32Array;
  /** Transcript rows whose answer has characters to learn. */
  transcriptRows: number;
  /** Transcript rows left with no answer once characters outside the vocabulary were dropped. */
  emptyTranscriptRows: number;
  /** Preference rows that push a character down. */
  preferenceRows: number;
  /** Preference rows whose answers do not differ (once characters outside the vocabulary were dropped). */
  samePreferenceRows: number;
  /** Labelled rows, not used. */
  labelledRows: number;
  /** Characters dropped as outside the vocabulary, by character. */
  dropped: Map<string, number>;
}

/** The text of the last message with `role`, or '' when there is none. */
function lastText(messages: ChatMessage[], role: ChatMessage['role']): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === role) return messages[i]!.content;
  return '';
}

/** An answer as the server's prompt template would show it after the prompt: its text, then a blank line. */
const answerText = (answer: string): string => chatPrompt([{ role: 'assistant', text: answer }]);

export function buildFeedback(datasets: DatasetFolder[], vocab: string[], context: number): FeedbackSet {
  const ids = new Map(vocab.map((character, id) => [character, id]));
  // The tiny server pads a short prompt's context with newlines (TinyLanguageModel.paddingId).
  const padding = ids.get('\n') ?? 0;
  const dropped = new Map<string, number>();
  const encode = (text: string): number[] =>
    [...text].flatMap((character) => {
      const id = ids.get(character);
      if (id !== undefined) return [id];
      dropped.set(character, (dropped.get(character) ?? 0) + 1);
      return [];
    });
  /** What ends an answer: the blank line after it. */
  const ending = encode(answerText(''));
  const tokens: number[] = [];
  const learn: number[] = [];
  const unlearn: number[] = [];
  // One at a time: spreading a long answer into push() could overflow the stack.
  const append = (ids: number[]): void => {
    for (const id of ids) tokens.push(id);
  };
  /**
   * Appends the context the answer follows: the prompt's last `context` characters, padded on the left
   * as the server pads a short prompt (all the model sees of a prompt); answers where the answer starts.
   */
  const startSequence = (prompt: number[]): number => {
    const tail = prompt.slice(-context);
    for (let i = tail.length; i < context; i++) tokens.push(padding);
    append(tail);
    return tokens.length;
  };
  const set: FeedbackSet = {
    tokens: new Int32Array(),
    learn: new Int32Array(),
    unlearn: new Int32Array(),
    transcriptRows: 0,
    emptyTranscriptRows: 0,
    preferenceRows: 0,
    samePreferenceRows: 0,
    labelledRows: 0,
    dropped,
  };

  for (const dataset of datasets) {
    for (const row of dataset.transcripts) {
      const prompt = encode(chatPrompt([{ role: 'user', text: lastText(row.messages, 'user') }]));
      // The answer is the last message (the format says a transcript ends with it).
      const answer = encode(row.messages.at(-1)!.content);
      if (answer.length === 0) {
        set.emptyTranscriptRows++;
        continue;
      }
      const start = startSequence(prompt);
      append(answer);
      append(ending);
      for (let position = start; position < tokens.length; position++) learn.push(position);
      set.transcriptRows++;
    }
    for (const row of dataset.preferences) {
      const prompt = encode(chatPrompt([{ role: 'user', text: lastText(row.prompt, 'user') }]));
      const chosen = encode(answerText(row.chosen.at(-1)!.content));
      const rejected = encode(answerText(row.rejected.at(-1)!.content));
      let differs = 0;
      while (differs < chosen.length && differs < rejected.length && chosen[differs] === rejected[differs]) differs++;
      if (differs >= rejected.length) {
        set.samePreferenceRows++;
        continue;
      }
      const start = startSequence(prompt);
      append(rejected.slice(0, differs + 1));
      unlearn.push(start + differs);
      set.preferenceRows++;
    }
    set.labelledRows += dataset.labelled.length;
  }
  set.tokens = Int32Array.from(tokens);
  set.learn = Int32Array.from(learn);
  set.unlearn = Int32Array.from(unlearn);
  return set;
}

/** A log line's summary of the characters dropped: how many, and which (the most frequent first). */
export function describeDropped(dropped: Map<string, number>): string {
  const total = [...dropped.values()].reduce((a, b) => a + b, 0);
  const shown = [...dropped.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, 10)
    .map(([character, count]) => `${JSON.stringify(character)} ×${count}`);
  const more = dropped.size > shown.length ? `, and ${dropped.size - shown.length} more` : '';
  return `${total} character${total === 1 ? '' : 's'} outside the vocabulary (${dropped.size} distinct: ${shown.join(', ')}${more})`;
}
