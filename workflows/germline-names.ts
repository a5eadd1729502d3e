// The names the germline's archived children had, as a fixed-size Bloom filter carried across
// continue-as-new (about 11 KB however many children ended): a spawn whose name the filter has never
// seen is new for certain and goes ahead at once; only a name it might have seen is asked of
// PostgreSQL, where the archived children are. Pure code: no Buffer or crypto in the workflow sandbox.

const BYTES = 8192; // 65,536 bits: under 5% of new names asked of PostgreSQL at 10,000 archived children
const HASHES = 4;
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function fnv1a(text: string, seed: number): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

function encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64[(n >> 18) & 63]! + BASE64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? BASE64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? BASE64[n & 63]! : '=';
  }
  return out;
}

function decode(text: string, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let at = 0;
  for (let i = 0; i + 3 < text.length && at < length; i += 4) {
    const n =
      (BASE64.indexOf(text[i]!) << 18) |
      (BASE64.indexOf(text[i + 1]!) << 12) |
      (Math.max(0, BASE64.indexOf(text[i + 2]!)) << 6) |
      Math.max(0, BASE64.indexOf(text[i + 3]!));
    for (const byte of [(n >> 16) & 255, (n >> 8) & 255, n & 255]) if (at < length) bytes[at++] = byte;
  }
  return bytes;
}

export class ArchivedNames {
  private readonly bits: Uint8Array;

  /** `carried`: what `encoded()` gave the previous run; absent: no name archived yet. */
  constructor(carried?: string) {
    this.bits = carried ? decode(carried, BYTES) : new Uint8Array(BYTES);
  }

  private positions(name: string): number[] {
    const h1 = fnv1a(name, 0x811c9dc5);
    const h2 = fnv1a(name, 0x01000193) | 1;
    return Array.from({ length: HASHES }, (_, i) => ((h1 + Math.imul(i, h2)) >>> 0) % (BYTES * 8));
  }

  add(name: string): void {
    for (const bit of this.positions(name)) this.bits[bit >> 3] = (this.bits[bit >> 3] ?? 0) | (1 << (bit & 7));
  }

  /** False: never archived, for certain. True: perhaps (ask PostgreSQL). */
  mightHave(name: string): boolean {
    return this.positions(name).every((bit) => ((this.bits[bit >> 3] ?? 0) & (1 << (bit & 7))) !== 0);
  }

  encoded(): string {
    return encode(this.bits);
  }
}
