// Text generation with the tiny model (model.ts): the chat prompt template, the forward pass for one
// next character, sampling (temperature, top_p, seeded), and stop sequences. Pure code: the server
// (server.ts) does the loading, the HTTP and the pacing.
import { type Architecture, Model, mulberry32, type Parameters } from './model';

export interface ChatMessageText {
  role: string;
  /** The message's text (for content given as parts, its text parts joined). */
  text: string;
}

/**
 * The prompt the model continues: every message's text, in order, each followed by a blank line, so
 * the model writes the next paragraph. The tiny model was trained on plain prose without roles, so
 * roles are not written into the prompt (they would only be characters it never learned to follow).
 */
export function chatPrompt(messages: ChatMessageText[]): string {
  return messages.map((message) => `${message.text}\n\n`).join('');
}

/** Splits a string into characters (code points), the model's tokens. */
export const characters = (text: string): string[] => [...text];

export class TinyLanguageModel {
  private readonly ids: Map<string, number>;
  /** The token the context is padded with before the prompt's first character: a newline, as at the start of a text. */
  readonly paddingId: number;
  private readonly model: Model;
  private readonly logits: Float64Array;

  constructor(
    readonly architecture: Architecture,
    readonly parameters: Parameters,
    readonly vocab: string[],
  ) {
    this.ids = new Map(vocab.map((character, id) => [character, id]));
    this.paddingId = this.ids.get('\n') ?? 0;
    this.model = new Model(architecture, parameters);
    this.logits = new Float64Array(architecture.vocab);
  }

  /**
   * The prompt's token ids. Characters outside the vocabulary are skipped: the model has no
   * embedding for them, and dropping them keeps the rest of the prompt; they are not counted as
   * prompt tokens either.
   */
  encode(text: string): number[] {
    return characters(text).flatMap((character) => {
      const id = this.ids.get(character);
      return id === undefined ? [] : [id];
    });
  }

  /** The starting context window for a prompt: its last `context` tokens, padded on the left. */
  contextFor(promptIds: number[]): Int32Array {
    const { context } = this.architecture;
    const window = new Int32Array(context).fill(this.paddingId);
    const tail = promptIds.slice(-context);
    window.set(tail, context - tail.length);
    return window;
  }

  /** The logits of the next character after `window` (the last `context` token ids), in `out`: the model's own forward pass. */
  nextLogits(window: Int32Array, out: Float64Array = this.logits): Float64Array {
    out.set(this.model.forward(window, 0));
    return out;
  }
}

export interface SamplingOptions {
  /** 0: always the most likely character (greedy); higher: flatter. */
  temperature: number;
  /** Nucleus sampling: draw only from the most likely characters whose probabilities add up to top_p. */
  topP: number;
  /** 32-bit seed of the generator: the same seed, prompt and options give the same text. */
  seed: number;
}

/** Draws token ids one at a time from a model, carrying its own context window and generator. */
export class Sampler {
  private readonly window: Int32Array;
  private readonly random: () => number;
  private readonly logits: Float64Array;
  private readonly order: number[];

  constructor(
    private readonly model: TinyLanguageModel,
    promptIds: number[],
    private readonly options: SamplingOptions,
  ) {
    this.window = model.contextFor(promptIds);
    this.random = mulberry32(options.seed);
    this.logits = new Float64Array(model.architecture.vocab);
    this.order = Array.from({ length: model.architecture.vocab }, (_, id) => id);
  }

  /** The next character. */
  next(): string {
    const id = this.nextId();
    this.window.copyWithin(0, 1);
    this.window[this.window.length - 1] = id;
    return this.model.vocab[id]!;
  }

  private nextId(): number {
    const z = this.model.nextLogits(this.window, this.logits);
    const { temperature, topP } = this.options;
    if (temperature === 0) {
      // Ties go to the lowest id: greedy decoding is deterministic.
      let best = 0;
      for (let v = 1; v < z.length; v++) if (z[v]! > z[best]!) best = v;
      return best;
    }
    let max = -Infinity;
    for (const value of z) if (value > max) max = value;
    let sum = 0;
    for (let v = 0; v < z.length; v++) {
      z[v] = Math.exp((z[v]! - max) / temperature);
      sum += z[v]!;
    }
    let candidates = this.order;
    let mass = sum;
    if (topP < 1) {
      // Most likely first (ties by id, so the order is deterministic), cut once top_p of the mass is covered.
      const sorted = [...this.order].sort((a, b) => z[b]! - z[a]! || a - b);
      let kept = 0;
      mass = 0;
      while (kept < sorted.length && mass < topP * sum) mass += z[sorted[kept++]!]!;
      candidates = sorted.slice(0, kept);
    }
    let draw = this.random() * mass;
    for (const id of candidates) {
      draw -= z[id]!;
      if (draw < 0) return id;
    }
    // Rounding left a sliver of mass undrawn: the last candidate takes it.
    return candidates[candidates.length - 1]!;
  }
}

/**
 * Finds stop sequences in generated text as it grows, and says how much of it can already be sent
 * to a streaming client: never the start of what might still become a stop sequence.
 */
export class StopSequences {
  private readonly stops: string[];

  constructor(stops: string[]) {
    // An empty stop sequence would end every answer before it starts: ignored.
    this.stops = stops.filter((stop) => stop.length > 0);
  }

  /**
   * Where the first stop sequence in `text` starts, given that `text` had none before its last
   * character was appended; -1 when none.
   */
  find(text: string): number {
    let found = -1;
    for (const stop of this.stops) {
      if (text.endsWith(stop)) {
        const at = text.length - stop.length;
        if (found === -1 || at < found) found = at;
      }
    }
    return found;
  }

  /** How many leading characters (UTF-16 units) of `text` cannot be part of a stop sequence any more. */
  settled(text: string): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, text.length); length > held; length--) {
        if (text.endsWith(stop.slice(0, length))) {
          held = length;
          break;
        }
      }
    }
    return text.length - held;
  }
}
