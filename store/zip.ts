// Just enough of the zip format to look inside an archive without unpacking it: the central
// directory (zip64 included) and the first bytes of each entry, inflated only as far as asked.
// PyTorch's torch.save and NumPy's savez write zips; loaders read the central directory, so we do.
import zlib from 'node:zlib';
import { type ByteSource, bufferSource, sliceSource } from './byte-source';

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const ZIP64_EXTRA = 0x0001;
/** The end record sits in the last 22 bytes plus a comment of at most 64 KiB. */
const END_SEARCH_BYTES = 22 + 0xffff;
const MAX_DIRECTORY_BYTES = 64 * 1024 * 1024;
export const MAX_ZIP_ENTRIES = 65_536;
export const STORED = 0;
export const DEFLATED = 8;

export interface ZipEntry {
  name: string;
  method: number;
  encrypted: boolean;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** Why a zip cannot be read: the message completes "the zip archive ...". */
export class ZipFault extends Error {
  override name = 'ZipFault';
}

interface DirectoryLocation {
  entries: number;
  offset: number;
  size: number;
}

async function findEndOfDirectory(source: ByteSource): Promise<DirectoryLocation> {
  const start = Math.max(0, source.size - END_SEARCH_BYTES);
  const tail = await source.read(start, source.size - start);
  for (let at = tail.length - 22; at >= 0; at--) {
    if (tail.readUInt32LE(at) !== END_OF_DIRECTORY) continue;
    const location = {
      entries: tail.readUInt16LE(at + 10),
      size: tail.readUInt32LE(at + 12),
      offset: tail.readUInt32LE(at + 16),
    };
    const needsZip64 = location.entries === 0xffff || location.size === 0xffffffff || location.offset === 0xffffffff;
    return needsZip64 ? zip64Location(source, start + at) : location;
  }
  throw new ZipFault('has no central directory (cut short or damaged)');
}

async function zip64Location(source: ByteSource, endOffset: number): Promise<DirectoryLocation> {
  const locator = await source.read(endOffset - 20, 20);
  if (locator.length < 20 || locator.readUInt32LE(0) !== ZIP64_LOCATOR)
    throw new ZipFault('has a damaged zip64 directory locator');
  const record = await source.read(Number(locator.readBigUInt64LE(8)), 56);
  if (record.length < 56 || record.readUInt32LE(0) !== ZIP64_END_OF_DIRECTORY)
    throw new ZipFault('has a damaged zip64 end of directory');
  return {
    entries: Number(record.readBigUInt64LE(32)),
    size: Number(record.readBigUInt64LE(40)),
    offset: Number(record.readBigUInt64LE(48)),
  };
}

/** Sizes and offset that did not fit 32 bits live in the zip64 extra field, in this order. */
function applyZip64Extra(entry: ZipEntry, extra: Buffer): void {
  for (let at = 0; at + 4 <= extra.length;) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === ZIP64_EXTRA) {
      let field = at + 4;
      const next = (): number => {
        const value =
          field + 8 <= at + 4 + length && field + 8 <= extra.length ? Number(extra.readBigUInt64LE(field)) : -1;
        field += 8;
        return value;
      };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localHeaderOffset === 0xffffffff) entry.localHeaderOffset = next();
    }
    at += 4 + length;
  }
}

/** The entries the central directory lists, checked to lie within the archive. */
export async function readZipDirectory(source: ByteSource): Promise<ZipEntry[]> {
  const location = await findEndOfDirectory(source);
  if (location.entries > MAX_ZIP_ENTRIES)
    throw new ZipFault(`has ${location.entries} entries, more than the ${MAX_ZIP_ENTRIES} that can be checked`);
  if (location.size > MAX_DIRECTORY_BYTES || location.offset + location.size > source.size)
    throw new ZipFault('has a central directory that does not fit in the file');
  const directory = await source.read(location.offset, location.size);
  const entries: ZipEntry[] = [];
  for (let at = 0; entries.length < location.entries;) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_HEADER)
      throw new ZipFault(`has a damaged central directory (entry ${entries.length + 1})`);
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    const entry: ZipEntry = {
      name: directory.toString('utf8', at + 46, at + 46 + nameLength),
      method: directory.readUInt16LE(at + 10),
      encrypted: (directory.readUInt16LE(at + 8) & 1) === 1,
      compressedSize: directory.readUInt32LE(at + 20),
      size: directory.readUInt32LE(at + 24),
      localHeaderOffset: directory.readUInt32LE(at + 42),
    };
    applyZip64Extra(entry, directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength));
    if (entry.localHeaderOffset < 0 || entry.localHeaderOffset + 30 > source.size)
      throw new ZipFault(`has entry ${entry.name} outside the file`);
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Where the entry's (compressed) bytes start: after its local header, whose lengths may differ from the directory's. */
async function entryDataOffset(source: ByteSource, entry: ZipEntry): Promise<number> {
  const header = await source.read(entry.localHeaderOffset, 30);
  if (header.length < 30 || header.readUInt32LE(0) !== LOCAL_HEADER)
    throw new ZipFault(`has a damaged local header for ${entry.name}`);
  const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (start + entry.compressedSize > source.size)
    throw new ZipFault(`has entry ${entry.name} running past the end of the file`);
  return start;
}

/** Inflates the start of a raw deflate, zlib or gzip stream: at most `limit` bytes out, however much `compressed` holds. */
export function inflateHead(compressed: Buffer, format: 'raw' | 'zlib' | 'gzip', limit: number): Promise<Buffer> {
  // SYNC_FLUSH at the end: a stream we cut short gives what it has instead of an error.
  const options = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const stream =
    format === 'raw'
      ? zlib.createInflateRaw(options)
      : format === 'zlib'
        ? zlib.createInflate(options)
        : zlib.createGunzip(options);
  const chunks: Buffer[] = [];
  let total = 0;
  return new Promise((resolve) => {
    const finish = (): void => {
      stream.removeAllListeners();
      stream.on('error', () => {}); // a late error of a stream we stopped reading is of no interest
      stream.destroy();
      resolve(Buffer.concat(chunks).subarray(0, limit));
    };
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= limit) finish();
    });
    stream.on('end', finish);
    stream.on('error', finish); // not this format, or damaged: what came out before still counts
    stream.end(compressed);
  });
}

/**
 * The entry's content as a source: a stored entry reads straight from the archive; a deflated one
 * gives its first `limit` bytes only (its `size` still says how long it is). `inflated` counts the
 * bytes inflated to get there.
 */
export async function zipEntrySource(
  source: ByteSource,
  entry: ZipEntry,
  limit: number,
): Promise<{ content: ByteSource; inflated: number }> {
  const start = await entryDataOffset(source, entry);
  if (entry.method === STORED) return { content: sliceSource(source, start, entry.compressedSize), inflated: 0 };
  // Deflate output is never much shorter than its input: limit + 1 KiB compressed bytes give `limit` out.
  const compressed = await source.read(start, Math.min(entry.compressedSize, limit + 1024));
  const head = await inflateHead(compressed, 'raw', limit);
  return { content: bufferSource(head, entry.size), inflated: head.length };
}
