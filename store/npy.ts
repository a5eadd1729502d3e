// The header of a NumPy .npy file: the magic \x93NUMPY, a version, a little-endian header length,
// then a Python dict literal like {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// An array of dtype object ('O', also as a field of a structured dtype) stores its items as a
// pickle, which np.load(allow_pickle=True) runs; that is what the content scan looks for here.
import type { ByteSource } from './byte-source';

export const NPY_MAGIC = Buffer.from('\x93NUMPY', 'latin1');
/** NumPy itself refuses headers over 10,000 bytes unless told otherwise; this leaves room. */
const MAX_HEADER_BYTES = 1024 * 1024;
const MAX_NESTING = 32;
/** A type string of Python objects: byte order, 'O', an optional item size. */
const OBJECT_TYPE = /^[<>|=]?O\d*$/;

/** Why the header cannot be read: the message completes "is not a valid .npy file: ...". */
export class NpyFault extends Error {
  override name = 'NpyFault';
}

type PyValue = string | number | boolean | null | PyValue[] | Map<PyValue, PyValue>;

/** A reader of the Python literals np.save writes: strings, integers, True/False/None, tuples, lists, dicts. */
class LiteralParser {
  private at = 0;
  constructor(private readonly text: string) {}

  parse(): PyValue {
    const value = this.value(0);
    this.space();
    if (this.at !== this.text.length) this.fail(`unexpected ${JSON.stringify(this.text.slice(this.at, this.at + 10))}`);
    return value;
  }

  private fail(what: string): never {
    throw new NpyFault(`its header is not a Python literal (${what} at character ${this.at})`);
  }

  private space(): void {
    while (/\s/.test(this.text[this.at] ?? '')) this.at++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_NESTING) this.fail('nested too deeply');
    this.space();
    const c = this.text[this.at];
    if (c === '(' || c === '[') return this.sequence(c === '(' ? ')' : ']', depth);
    if (c === '{') return this.dict(depth);
    if (c === "'" || c === '"') return this.string();
    if ((c === 'u' || c === 'b') && (this.text[this.at + 1] === "'" || this.text[this.at + 1] === '"')) {
      this.at++;
      return this.string();
    }
    const word = /^(?:-?\d+L?|True|False|None)/.exec(this.text.slice(this.at, this.at + 32))?.[0];
    if (word === undefined) this.fail(c === undefined ? 'the end' : `unexpected ${JSON.stringify(c)}`);
    this.at += word.length;
    return word === 'True' ? true : word === 'False' ? false : word === 'None' ? null : Number(word.replace('L', ''));
  }

  private string(): string {
    const quote = this.text[this.at++];
    let out = '';
    while (this.at < this.text.length && this.text[this.at] !== quote) {
      if (this.text[this.at] === '\\') this.at++; // an escaped character stands for itself here
      out += this.text[this.at++] ?? '';
    }
    if (this.text[this.at++] !== quote) this.fail('an unterminated string');
    return out;
  }

  /** Items up to `close`, separated by commas, a trailing comma allowed. */
  private items(close: string, item: () => void): void {
    this.at++;
    for (;;) {
      this.space();
      if (this.text[this.at] === close) break;
      item();
      this.space();
      if (this.text[this.at] === ',') this.at++;
      else if (this.text[this.at] !== close) this.fail(`expected , or ${close}`);
    }
    this.at++;
  }

  private sequence(close: string, depth: number): PyValue[] {
    const values: PyValue[] = [];
    this.items(close, () => values.push(this.value(depth + 1)));
    return values;
  }

  private dict(depth: number): Map<PyValue, PyValue> {
    const entries = new Map<PyValue, PyValue>();
    this.items('}', () => {
      const key = this.value(depth + 1);
      this.space();
      if (this.text[this.at++] !== ':') this.fail('expected :');
      entries.set(key, this.value(depth + 1));
    });
    return entries;
  }
}

export interface NpyHeader {
  descr: PyValue;
  shape: number[];
}

/** The header's bytes and their encoding for each format version. */
async function headerText(source: ByteSource): Promise<string> {
  const prefix = await source.read(0, 12);
  if (prefix.length < 10 || !prefix.subarray(0, 6).equals(NPY_MAGIC))
    throw new NpyFault('it does not start with \\x93NUMPY');
  const major = prefix[6]!;
  if (major < 1 || major > 3)
    throw new NpyFault(`format version ${major}.${prefix[7]} is not one NumPy writes (1.0, 2.0, 3.0)`);
  // Version 1 has a 2-byte header length, later versions 4 bytes.
  const width = major === 1 ? 2 : 4;
  if (prefix.length < 8 + width) throw new NpyFault('it ends inside its header length');
  const length = width === 2 ? prefix.readUInt16LE(8) : prefix.readUInt32LE(8);
  if (length > MAX_HEADER_BYTES) throw new NpyFault(`its header of ${length} bytes is longer than ${MAX_HEADER_BYTES}`);
  const bytes = await source.read(8 + width, length);
  if (bytes.length < length) throw new NpyFault(`its header of ${length} bytes is cut short`);
  return bytes.toString(major === 3 ? 'utf8' : 'latin1');
}

/** Reads and checks the header: a dict with a descr, a boolean fortran_order and an integer shape. */
export async function readNpyHeader(source: ByteSource): Promise<NpyHeader> {
  const header = new LiteralParser(await headerText(source)).parse();
  if (!(header instanceof Map)) throw new NpyFault('its header is not a dict');
  const descr = header.get('descr');
  const shape = header.get('shape');
  if (typeof descr !== 'string' && !Array.isArray(descr))
    throw new NpyFault("its header's descr is neither a type string nor a list of fields");
  if (typeof header.get('fortran_order') !== 'boolean')
    throw new NpyFault("its header's fortran_order is not True or False");
  if (!Array.isArray(shape) || !shape.every((n) => typeof n === 'number' && n >= 0))
    throw new NpyFault("its header's shape is not a tuple of sizes");
  return { descr, shape: shape as number[] };
}

/** Where a dtype holds Python objects: "dtype |O", "field b has dtype |O", or undefined. */
export function objectDtype(descr: PyValue, field = ''): string | undefined {
  if (typeof descr === 'string')
    return OBJECT_TYPE.test(descr) ? (field ? `field ${field} has dtype ${descr}` : `dtype ${descr}`) : undefined;
  if (!Array.isArray(descr)) return undefined;
  // A structured dtype: (name, type) or (name, type, shape) per field; a name may be a (title, name) pair.
  for (const entry of descr) {
    if (!Array.isArray(entry) || entry.length < 2) continue;
    const name = Array.isArray(entry[0]) ? String(entry[0][1]) : String(entry[0]);
    const found = objectDtype(entry[1]!, field ? `${field}.${name}` : name);
    if (found) return found;
  }
  return undefined;
}
