// A tiny character-level language model (Bengio-style): the previous CONTEXT characters are
// embedded, concatenated, passed through one tanh layer and a softmax over the vocabulary.
// Parameters and Adam state are Float32Arrays, and every sum runs in a fixed order, so training is
// bitwise reproducible from (weights, optimizer state, seed, step).

export interface Architecture {
  vocab: number;
  context: number;
  embed: number;
  hidden: number;
}

export const PARAMETER_NAMES = ['embedding', 'hidden.weight', 'hidden.bias', 'output.weight', 'output.bias'] as const;
export type ParameterName = (typeof PARAMETER_NAMES)[number];
export type Parameters = Record<ParameterName, Float32Array>;

export function parameterShapes({ vocab, context, embed, hidden }: Architecture): Record<ParameterName, number[]> {
  return {
    embedding: [vocab, embed],
    'hidden.weight': [context * embed, hidden],
    'hidden.bias': [hidden],
    'output.weight': [hidden, vocab],
    'output.bias': [vocab],
  };
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** A small fast seeded generator of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes two integers into a seed (murmur3 finaliser), so each step draws its own batch. */
export function mixSeed(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ (b >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function initParameters(architecture: Architecture, seed: number): Parameters {
  const shapes = parameterShapes(architecture);
  const random = mulberry32(mixSeed(seed, 0x51ed));
  const uniform = (length: number, scale: number): Float32Array =>
    Float32Array.from({ length }, () => (random() * 2 - 1) * scale);
  return {
    embedding: uniform(size(shapes.embedding), 1),
    'hidden.weight': uniform(size(shapes['hidden.weight']), Math.sqrt(3 / (architecture.context * architecture.embed))),
    'hidden.bias': new Float32Array(architecture.hidden),
    // Small output weights: the first predictions are near uniform, loss near ln(vocab).
    'output.weight': uniform(size(shapes['output.weight']), 0.1 / Math.sqrt(architecture.hidden)),
    'output.bias': new Float32Array(architecture.vocab),
  };
}

/** The corpus positions (indices of target characters) that training step `step` learns from. */
export function batchPositions(
  seed: number,
  step: number,
  batch: number,
  tokenCount: number,
  context: number,
): Int32Array {
  const random = mulberry32(mixSeed(seed, step));
  const positions = new Int32Array(batch);
  for (let i = 0; i < batch; i++) positions[i] = context + Math.floor(random() * (tokenCount - context));
  return positions;
}

/** Up to `limit` evenly spread positions: a fixed evaluation set. */
export function evaluationPositions(tokenCount: number, context: number, limit: number): Int32Array {
  const available = tokenCount - context;
  const count = Math.min(available, limit);
  return Int32Array.from({ length: count }, (_, i) => context + Math.floor((i * available) / count));
}

export class Model {
  readonly gradients: Record<ParameterName, Float64Array>;
  private readonly input: Float64Array;
  private readonly activation: Float64Array;
  private readonly activationGradient: Float64Array;
  private readonly inputGradient: Float64Array;
  private readonly logits: Float64Array;

  constructor(
    readonly architecture: Architecture,
    readonly parameters: Parameters,
  ) {
    const { vocab, context, embed, hidden } = architecture;
    this.gradients = Object.fromEntries(
      PARAMETER_NAMES.map((name) => [name, new Float64Array(parameters[name].length)]),
    ) as Record<ParameterName, Float64Array>;
    this.input = new Float64Array(context * embed);
    this.inputGradient = new Float64Array(context * embed);
    this.activation = new Float64Array(hidden);
    this.activationGradient = new Float64Array(hidden);
    this.logits = new Float64Array(vocab);
  }

  /**
   * The logits of the token after tokens[start .. start + context), into this.logits (and the input
   * and activation it leaves for the backward pass). One fixed order of sums: training and sampling
   * see exactly the same distribution, bit for bit.
   */
  forward(tokens: ArrayLike<number>, start: number): Float64Array {
    const { vocab: V, context: C, embed: D, hidden: H } = this.architecture;
    const {
      embedding: E,
      'hidden.weight': W1,
      'hidden.bias': b1,
      'output.weight': W2,
      'output.bias': b2,
    } = this.parameters;
    const { input: x, activation: h, logits: z } = this;
    for (let j = 0; j < C; j++) {
      const row = tokens[start + j]! * D;
      for (let d = 0; d < D; d++) x[j * D + d] = E[row + d]!;
    }
    for (let k = 0; k < H; k++) h[k] = b1[k]!;
    for (let i = 0; i < C * D; i++) {
      const xi = x[i]!;
      const row = i * H;
      for (let k = 0; k < H; k++) h[k] = h[k]! + xi * W1[row + k]!;
    }
    for (let k = 0; k < H; k++) h[k] = Math.tanh(h[k]!);
    for (let v = 0; v < V; v++) z[v] = b2[v]!;
    for (let k = 0; k < H; k++) {
      const hk = h[k]!;
      const row = k * V;
      for (let v = 0; v < V; v++) z[v] = z[v]! + hk * W2[row + v]!;
    }
    return z;
  }

  /**
   * Mean cross-entropy (nats) over the positions; with `learn`, also fills this.gradients.
   * `unlikely[b]` set: position b's target is pushed down instead (unlikelihood, -log(1 - p)), which
   * pushes less and less as p falls, so it cannot run away. `losses[b]` receives each position's term.
   */
  loss(
    tokens: Int32Array,
    positions: Int32Array,
    learn: boolean,
    options: { unlikely?: Uint8Array; losses?: Float64Array } = {},
  ): number {
    const { unlikely, losses } = options;
    const { vocab: V, context: C, embed: D, hidden: H } = this.architecture;
    const { 'hidden.weight': W1, 'output.weight': W2 } = this.parameters;
    const g = this.gradients;
    const { input: x, activation: h, activationGradient: dh, inputGradient: dx, logits: z } = this;
    const inputs = C * D;
    const scale = 1 / positions.length;
    if (learn) for (const name of PARAMETER_NAMES) g[name].fill(0);

    let total = 0;
    for (let b = 0; b < positions.length; b++) {
      const position = positions[b]!;
      this.forward(tokens, position - C);
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (z[v]! > max) max = z[v]!;
      let sum = 0;
      for (let v = 0; v < V; v++) {
        z[v] = Math.exp(z[v]! - max);
        sum += z[v]!;
      }
      const target = tokens[position]!;
      if (unlikely?.[b]) {
        const p = z[target]! / sum;
        // 1 - p is kept off 0: the term stays finite when the model is certain of what it must unlearn.
        const rest = Math.max(1 - p, 1e-6);
        const term = -Math.log(rest);
        total += term;
        if (losses) losses[b] = term;
        if (!learn) continue;
        // d(-log(1 - p_t))/dz_v = p_t / (1 - p_t) * (one-hot_t - softmax_v).
        const factor = (p / rest) * scale;
        for (let v = 0; v < V; v++) z[v] = ((v === target ? 1 : 0) - z[v]! / sum) * factor;
      } else {
        const term = -Math.log(z[target]! / sum);
        total += term;
        if (losses) losses[b] = term;
        if (!learn) continue;
        // z becomes the logits' gradient: (softmax - one-hot) / batch.
        for (let v = 0; v < V; v++) z[v] = (z[v]! / sum - (v === target ? 1 : 0)) * scale;
      }
      const dW2 = g['output.weight'];
      const db2 = g['output.bias'];
      for (let v = 0; v < V; v++) db2[v] = db2[v]! + z[v]!;
      for (let k = 0; k < H; k++) {
        const hk = h[k]!;
        const row = k * V;
        let back = 0;
        for (let v = 0; v < V; v++) {
          dW2[row + v] = dW2[row + v]! + hk * z[v]!;
          back += W2[row + v]! * z[v]!;
        }
        dh[k] = back * (1 - hk * hk);
      }
      const dW1 = g['hidden.weight'];
      const db1 = g['hidden.bias'];
      for (let k = 0; k < H; k++) db1[k] = db1[k]! + dh[k]!;
      for (let i = 0; i < inputs; i++) {
        const xi = x[i]!;
        const row = i * H;
        let back = 0;
        for (let k = 0; k < H; k++) {
          dW1[row + k] = dW1[row + k]! + xi * dh[k]!;
          back += W1[row + k]! * dh[k]!;
        }
        dx[i] = back;
      }
      const dE = g.embedding;
      for (let j = 0; j < C; j++) {
        const row = tokens[position - C + j]! * D;
        for (let d = 0; d < D; d++) dE[row + d] = dE[row + d]! + dx[j * D + d]!;
      }
    }
    return total * scale;
  }
}

export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 } as const;

export type AdamState = Record<`m.${ParameterName}` | `v.${ParameterName}`, Float32Array>;

export function initAdamState(parameters: Parameters): AdamState {
  const state: Partial<AdamState> = {};
  for (const name of PARAMETER_NAMES) {
    state[`m.${name}`] = new Float32Array(parameters[name].length);
    state[`v.${name}`] = new Float32Array(parameters[name].length);
  }
  return state as AdamState;
}

/** One Adam update; `step` is 1 on the first update (bias correction). */
export function adamUpdate(model: Model, state: AdamState, step: number, learningRate: number): void {
  const { beta1, beta2, epsilon } = ADAM;
  const correction1 = 1 - beta1 ** step;
  const correction2 = 1 - beta2 ** step;
  for (const name of PARAMETER_NAMES) {
    const p = model.parameters[name];
    const g = model.gradients[name];
    const m = state[`m.${name}`];
    const v = state[`v.${name}`];
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * gi;
      v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
      p[i] = p[i]! - (learningRate * (m[i]! / correction1)) / (Math.sqrt(v[i]! / correction2) + epsilon);
    }
  }
}
