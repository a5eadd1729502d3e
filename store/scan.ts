// One home for "may this file be published?", decided by content whatever the file is called:
// pickles of every protocol (also inside zip archives such as PyTorch's .pt/.bin, inside gzip or
// zlib streams such as joblib's compressed files, and as NumPy object arrays in .npy/.npz), and
// safetensors files whose layout is broken. Reads only the few windows it needs, bounded in bytes
// and nesting, so a multi-gigabyte shard costs a header read.
import { open } from 'node:fs/promises';
import { type ByteSource, bufferSource, fileSource } from './byte-source';
import { NPY_MAGIC, NpyFault, objectDtype, readNpyHeader } from './npy';
import { findPickle } from './pickle';
import { checkSafetensorsLayout, looksLikeSafetensors, SafetensorsError } from './safetensors';
import { inflateHead, readZipDirectory, STORED, DEFLATED, ZipFault, type ZipEntry, zipEntrySource } from './zip';

/** First bytes read of any content: enough for every magic number and most pickles. */
const SNIFF_BYTES = 4096;
/** How much of compressed content (a deflated zip entry, a gzip or zlib stream) is inflated and checked. */
const INNER_HEAD_BYTES = 64 * 1024;
/** Inflated bytes allowed for one scan, over all entries of an archive. */
const MAX_INFLATED_BYTES = 256 * 1024 * 1024;
/** Containers inside containers (a zip in a gzip stream...) followed this deep. */
const MAX_NESTING = 3;

const PICKLE_ADVICE =
  'pickle files can run code when loaded; convert it to safetensors (safetensors.torch.save_file) and publish again';
const UNCHECKABLE_ADVICE =
  'it may hold a pickle, which can run code when loaded, and cannot be checked; convert it to safetensors (safetensors.torch.save_file), or publish its content uncompressed';
const NPY_OBJECT_ADVICE =
  'np.load unpickles object arrays, which can run code; save numeric arrays (or convert to safetensors) and publish again';
const SAFETENSORS_NAME = /\.safetensors$/i;
const PICKLE_NAME = /\.(?:pkl|pickle)$/i;
const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const EMPTY_ZIP_MAGIC = Buffer.from('PK\x05\x06', 'latin1');

export interface ScanOptions {
  /** Let pickles (and content that may hide one) through; safetensors are still validated. */
  allowPickle?: boolean;
}

interface Finding {
  /** What was found, as a noun phrase: "a pickle (protocol 0)". */
  what: string;
  advice: string;
  /** Where inside the content, outermost first: an archive entry, "its zlib-compressed content". */
  where: string[];
  /** Pickle data, or content that may hide some: what `allowPickle` lets through. */
  pickle: boolean;
}

interface Scan {
  depth: number;
  /** Inflated bytes left for this scan. */
  inflateBudget: { bytes: number };
}

const pickleFinding = (what: string, advice = PICKLE_ADVICE): Finding => ({ what, advice, where: [], pickle: true });
const uncheckable = (what: string): Finding => pickleFinding(what, UNCHECKABLE_ADVICE);
const inside = (place: string, finding: Finding): Finding => ({ ...finding, where: [place, ...finding.where] });

/** torch.save names its pickle data.pkl: a .pkl name alone says what a loader will do with the file. */
const namedAsPickle = (name: string): Finding | undefined =>
  PICKLE_NAME.test(name) ? pickleFinding('a file named as a pickle') : undefined;

function describe(name: string, finding: Finding): string {
  const subject =
    finding.where.length === 0
      ? `${name} is ${finding.what}`
      : `${name} holds ${finding.what} in ${[...finding.where].reverse().join(' in ')}`;
  return `${subject}: ${finding.advice}`;
}

/** Why the file at `file` (published as `name`) is refused, or undefined when it may be published. */
export async function scanFile(file: string, name: string, options: ScanOptions = {}): Promise<string | undefined> {
  const handle = await open(file, 'r');
  try {
    return await scanSource(name, fileSource(handle, (await handle.stat()).size), options);
  } finally {
    await handle.close();
  }
}

/** scanFile for content in memory (an uploaded recording). */
export function scanBytes(name: string, content: Buffer, options: ScanOptions = {}): Promise<string | undefined> {
  return scanSource(name, bufferSource(content), options);
}

async function scanSource(name: string, source: ByteSource, options: ScanOptions): Promise<string | undefined> {
  const head = await source.read(0, SNIFF_BYTES);
  // Laid out as safetensors, it is one whatever its name, and a JSON header holds no code.
  if (looksLikeSafetensors(head, source.size)) return safetensorsRefusal(name, source);
  const finding =
    (await findDanger(source, head, { depth: 0, inflateBudget: { bytes: MAX_INFLATED_BYTES } })) ?? namedAsPickle(name);
  if (finding && !(finding.pickle && options.allowPickle)) return describe(name, finding);
  if (SAFETENSORS_NAME.test(name)) return safetensorsRefusal(name, source);
  return undefined;
}

async function safetensorsRefusal(name: string, source: ByteSource): Promise<string | undefined> {
  try {
    await checkSafetensorsLayout((offset, length) => source.read(offset, length), source.size, name);
    return undefined;
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error;
    return `${name} is not a valid safetensors file: ${error.fault}; write it again with safetensors (safetensors.torch.save_file) and publish again`;
  }
}

const startsWith = (head: Buffer, magic: Buffer): boolean =>
  head.length >= magic.length && head.subarray(0, magic.length).equals(magic);

/** Pickle data in the content, or content that may hide some; `head` holds its first bytes. */
async function findDanger(source: ByteSource, head: Buffer, scan: Scan): Promise<Finding | undefined> {
  if (startsWith(head, ZIP_MAGIC) || startsWith(head, EMPTY_ZIP_MAGIC)) return zipFinding(source, scan);
  if (startsWith(head, NPY_MAGIC)) return npyFinding(source);
  const compression = compressionOf(head);
  if (compression && !compression.inflate) return uncheckable(`${compression.format}-compressed data`);
  if (compression) {
    const finding = await compressedFinding(source, compression, scan);
    // A zlib header is only two bytes: content that does not inflate to a danger is checked as itself.
    if (finding) return finding;
  }
  const protocol = await findPickle(source, head);
  return protocol === undefined ? undefined : pickleFinding(`a pickle (protocol ${protocol})`);
}

interface Compression {
  format: string;
  /** How node:zlib reads it; formats it cannot read are refused unchecked. */
  inflate?: 'zlib' | 'gzip';
  /** Bytes before the compressed stream. */
  skip?: number;
}

/** A zlib stream header (RFC 1950): deflate, a window of at most 32 KiB, the check bits, no preset dictionary. */
function isZlibHeader(head: Buffer, at: number): boolean {
  const [cmf, flg] = [head[at], head[at + 1]];
  return (
    cmf !== undefined &&
    flg !== undefined &&
    (cmf & 0x0f) === 8 &&
    cmf >> 4 <= 7 &&
    ((cmf << 8) | flg) % 31 === 0 &&
    (flg & 0x20) === 0
  );
}

/** An .lzma ("alone") header as xz-utils and joblib write it: properties 0x5d, a power-of-two dictionary, a size or -1. */
function isLzmaAlone(head: Buffer): boolean {
  if (head.length < 13 || head[0] !== 0x5d) return false;
  const dictionary = head.readUInt32LE(1);
  const size = head.readBigUInt64LE(5);
  return (
    dictionary >= 4096 && (dictionary & (dictionary - 1)) === 0 && (size === 0xffffffffffffffffn || size < 2n ** 48n)
  );
}

function compressionOf(head: Buffer): Compression | undefined {
  const text = head.subarray(0, 6).toString('latin1');
  if (head[0] === 0x1f && head[1] === 0x8b) return { format: 'gzip', inflate: 'gzip' };
  if (isZlibHeader(head, 0)) return { format: 'zlib', inflate: 'zlib' };
  // joblib before 0.10: "ZF", the length in hex padded to 19 characters, sometimes a space, then zlib.
  if (text.startsWith('ZF'))
    for (const skip of [21, 22]) if (isZlibHeader(head, skip)) return { format: 'joblib zlib', inflate: 'zlib', skip };
  if (/^BZh[1-9]/.test(text)) return { format: 'bzip2' };
  if (text === '\xfd7zXZ\x00') return { format: 'xz' };
  if (isLzmaAlone(head)) return { format: 'lzma' };
  if (text.startsWith('\x04\x22\x4d\x18')) return { format: 'lz4' };
  return undefined;
}

async function inflateWithin(scan: Scan, compressed: Buffer, format: 'zlib' | 'gzip'): Promise<Buffer | undefined> {
  if (scan.inflateBudget.bytes < INNER_HEAD_BYTES) return undefined;
  const inflated = await inflateHead(compressed, format, INNER_HEAD_BYTES);
  scan.inflateBudget.bytes -= inflated.length;
  return inflated;
}

/** Inflates the start of a gzip or zlib stream and checks what it holds. */
async function compressedFinding(
  source: ByteSource,
  compression: Compression,
  scan: Scan,
): Promise<Finding | undefined> {
  if (scan.depth >= MAX_NESTING) return uncheckable(`${compression.format}-compressed data nested too deeply to check`);
  const skip = compression.skip ?? 0;
  const inflated = await inflateWithin(scan, await source.read(skip, INNER_HEAD_BYTES + 1024), compression.inflate!);
  if (inflated === undefined) return uncheckable('more compressed content than can be checked');
  if (inflated.length === 0) return undefined;
  // Shorter than asked: that is all of it; else only its start is known.
  const inner = bufferSource(inflated, inflated.length < INNER_HEAD_BYTES ? inflated.length : Infinity);
  const finding = await findDanger(inner, inflated.subarray(0, SNIFF_BYTES), { ...scan, depth: scan.depth + 1 });
  return finding && inside(`its ${compression.format}-compressed content`, finding);
}

async function zipFinding(source: ByteSource, scan: Scan): Promise<Finding | undefined> {
  if (scan.depth >= MAX_NESTING) return uncheckable('a zip archive nested too deeply to check');
  let entries: ZipEntry[];
  try {
    entries = await readZipDirectory(source);
  } catch (error) {
    if (error instanceof ZipFault) return uncheckable(`a zip archive that ${error.message}`);
    throw error;
  }
  for (const entry of entries) {
    const finding = await zipEntryFinding(source, entry, scan);
    if (finding) return inside(entry.name, finding);
  }
  return undefined;
}

async function zipEntryFinding(archive: ByteSource, entry: ZipEntry, scan: Scan): Promise<Finding | undefined> {
  if (entry.name.endsWith('/')) return undefined;
  if (entry.encrypted) return uncheckable('an encrypted entry');
  if (entry.method !== STORED && entry.method !== DEFLATED)
    return uncheckable(`an entry compressed with zip method ${entry.method}`);
  if (entry.method === DEFLATED && scan.inflateBudget.bytes < INNER_HEAD_BYTES)
    return uncheckable('more compressed content than can be checked');
  let opened: Awaited<ReturnType<typeof zipEntrySource>>;
  try {
    opened = await zipEntrySource(archive, entry, INNER_HEAD_BYTES);
  } catch (error) {
    if (error instanceof ZipFault) return uncheckable(`a zip archive that ${error.message}`);
    throw error;
  }
  scan.inflateBudget.bytes -= opened.inflated;
  const finding = await findDanger(opened.content, await opened.content.read(0, SNIFF_BYTES), {
    ...scan,
    depth: scan.depth + 1,
  });
  return finding ?? namedAsPickle(entry.name);
}

async function npyFinding(source: ByteSource): Promise<Finding | undefined> {
  try {
    const objects = objectDtype((await readNpyHeader(source)).descr);
    return objects ? pickleFinding(`a NumPy array of Python objects (${objects})`, NPY_OBJECT_ADVICE) : undefined;
  } catch (error) {
    if (!(error instanceof NpyFault)) throw error;
    return pickleFinding(
      `a .npy array that cannot be checked for objects (${error.message})`,
      'save it again with numpy.save and publish again',
    );
  }
}
