// A small, strict safetensors codec (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header padded with spaces to a multiple of 8, then the raw
// little-endian tensor bytes. Only F32 tensors are read and written; checkSafetensorsLayout validates
// the layout of a file of any dtype from its header alone. Anything malformed is refused with an
// error naming the file and the fault.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type SafetensorsDtype = 'F32';

export interface F32Tensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

export interface Safetensors {
  tensors: Record<string, F32Tensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  /** What is wrong, without the file's name: for callers that word the refusal themselves. */
  readonly fault: string;
  constructor(message: string, fault = message) {
    super(message);
    this.fault = fault;
  }
}

const METADATA_KEY = '__metadata__';
const BYTES_PER_F32 = 4;
/** The reference implementation's limit; a bigger header is a corrupt length, not a real file. */
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';
/** Bits per element of every dtype the format defines (the reference implementation's table). */
const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const elementCount = (shape: number[]): number => shape.reduce((count, size) => count * size, 1);

const isShape = (value: unknown): value is number[] =>
  Array.isArray(value) && value.every((size) => Number.isSafeInteger(size) && size >= 0);

/** Copies float32 values to little-endian bytes (a plain copy on little-endian hosts). */
function f32ToBytes(data: Float32Array, into: Buffer, at: number): void {
  if (LITTLE_ENDIAN_HOST) {
    into.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    return;
  }
  for (let i = 0; i < data.length; i++) into.writeFloatLE(data[i]!, at + i * BYTES_PER_F32);
}

function bytesToF32(bytes: Uint8Array): Float32Array {
  const data = new Float32Array(bytes.byteLength / BYTES_PER_F32);
  if (LITTLE_ENDIAN_HOST) {
    // A copy into a fresh buffer: the source offset need not be 4-byte aligned.
    new Uint8Array(data.buffer).set(bytes);
    return data;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * BYTES_PER_F32, true);
  return data;
}

/** The file's bytes; tensors are laid out in name order so equal inputs give equal files. */
export function encodeSafetensors(
  tensors: Record<string, F32Tensor>,
  metadata: Record<string, string> = {},
  file = '<memory>',
): Buffer {
  const fail = (what: string): never => {
    throw new SafetensorsError(`cannot write safetensors ${file}: ${what}`);
  };
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') fail(`metadata ${JSON.stringify(key)} is a ${typeof value}, not a string`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const name of names) {
    const tensor = tensors[name]!;
    if (name === '' || name === METADATA_KEY) fail(`${JSON.stringify(name)} cannot name a tensor`);
    if (tensor.dtype !== 'F32') fail(`tensor ${name} has dtype ${String(tensor.dtype)}; only F32 is supported`);
    if (!isShape(tensor.shape))
      fail(`tensor ${name} has shape ${JSON.stringify(tensor.shape)}; expected non-negative integers`);
    if (!(tensor.data instanceof Float32Array)) fail(`tensor ${name} data is not a Float32Array`);
    if (tensor.data.length !== elementCount(tensor.shape)) {
      fail(
        `tensor ${name} has ${tensor.data.length} values but shape ${JSON.stringify(tensor.shape)} holds ${elementCount(tensor.shape)}`,
      );
    }
    const end = offset + tensor.data.byteLength;
    // defineProperty: a tensor named "__proto__" stays a plain key of the header.
    Object.defineProperty(header, name, {
      value: { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, end] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const bytes = Buffer.alloc(8 + headerLength + offset, 0x20);
  bytes.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(bytes, 8);
  let at = 8 + headerLength;
  for (const name of names) {
    f32ToBytes(tensors[name]!.data, bytes, at);
    at += tensors[name]!.data.byteLength;
  }
  return bytes;
}

/** Where each tensor's bytes lie in the data section, as the header says. */
export interface TensorExtent {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsLayout {
  tensors: TensorExtent[];
  metadata: Record<string, string>;
  /** Offset of the data section in the file. */
  dataStart: number;
}

type Fail = (what: string) => never;

/** The header length the first 8 bytes declare, checked against a file of `size` bytes. */
function declaredHeaderLength(bytes: Uint8Array, size: number, fail: Fail): number {
  if (size < 8 || bytes.byteLength < 8) fail(`${size} bytes is too short for the 8-byte header length`);
  const declared = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(size - 8)) fail(`header length ${declared} runs past the end of the ${size}-byte file`);
  const headerLength = Number(declared);
  if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
  if (headerLength < 2) fail(`header length ${headerLength} is too short for a JSON object`);
  return headerLength;
}

/** Bytes a tensor of `dtype` and `shape` occupies; BigInt so that a huge shape cannot overflow. */
function tensorBytes(name: string, dtype: string, shape: number[], bits: number, fail: Fail): bigint {
  const totalBits = shape.reduce((count, size) => count * BigInt(size), 1n) * BigInt(bits);
  if (totalBits % 8n !== 0n)
    fail(`tensor ${name} of ${dtype} shape ${JSON.stringify(shape)} is not a whole number of bytes`);
  return totalBits / 8n;
}

/**
 * Checks a header (the JSON after the length) against a data section of `dataLength` bytes:
 * known dtypes (`bitsOf` decides), integer shapes, offsets within the data and sized by the shape,
 * tensors tiling the data exactly, string metadata.
 */
function parseLayout(
  json: Uint8Array,
  dataLength: number,
  fail: Fail,
  bitsOf: (name: string, dtype: string) => number,
) {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

  // Names come from the file: built with fromEntries so a key like "__proto__" stays a plain key.
  const metadataEntries: [string, string][] = [];
  const tensors: TensorExtent[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('__metadata__ is not an object');
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(`__metadata__.${key} is ${JSON.stringify(value)}, not a string`);
        metadataEntries.push([key, value as string]);
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null)
      fail(`tensor ${name} is described by ${JSON.stringify(entry)}, not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(`tensor ${name} has no dtype`);
    const bits = bitsOf(name, dtype as string);
    if (!isShape(shape))
      fail(`tensor ${name} has shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor ${name} has data_offsets ${JSON.stringify(offsets)}; expected [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor ${name} has data_offsets [${begin}, ${end}] that end before they begin`);
    if (end > dataLength)
      fail(`tensor ${name} has data_offsets [${begin}, ${end}] past the ${dataLength} data bytes (file truncated?)`);
    const expected = tensorBytes(name, dtype as string, shape as number[], bits, fail);
    if (BigInt(end - begin) !== expected)
      fail(
        `tensor ${name} spans ${end - begin} bytes but ${String(dtype)} shape ${JSON.stringify(shape)} needs ${expected}`,
      );
    tensors.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }

  // Tensors must tile the data section exactly: no gaps, overlaps or trailing bytes.
  let expectedBegin = 0;
  for (const tensor of [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (tensor.begin !== expectedBegin) {
      fail(
        `tensor ${tensor.name} begins at byte ${tensor.begin} of the data, expected ${expectedBegin} (offsets must be contiguous)`,
      );
    }
    expectedBegin = tensor.end;
  }
  if (expectedBegin !== dataLength) fail(`tensors cover ${expectedBegin} data bytes but the file holds ${dataLength}`);
  return { tensors, metadata: Object.fromEntries(metadataEntries) as Record<string, string> };
}

const failing =
  (file: string): Fail =>
  (what) => {
    throw new SafetensorsError(`invalid safetensors ${file}: ${what}`, what);
  };

/** Parses and validates a whole safetensors file held in memory; `file` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, file = '<memory>'): Safetensors {
  const fail = failing(file);
  const headerLength = declaredHeaderLength(bytes, bytes.byteLength, fail);
  const dataStart = 8 + headerLength;
  const onlyF32 = (name: string, dtype: string): number =>
    dtype === 'F32' ? BYTES_PER_F32 * 8 : fail(`tensor ${name} has unsupported dtype ${dtype}; only F32 is supported`);
  const { tensors, metadata } = parseLayout(bytes.subarray(8, dataStart), bytes.byteLength - dataStart, fail, onlyF32);
  return {
    tensors: Object.fromEntries(
      tensors.map(({ name, shape, begin, end }) => [
        name,
        { dtype: 'F32', shape, data: bytesToF32(bytes.subarray(dataStart + begin, dataStart + end)) },
      ]),
    ),
    metadata,
  };
}

/**
 * Validates the layout of a safetensors file of `size` bytes of any dtype the format defines,
 * reading only its header through `read` (the tensor bytes can be gigabytes). Throws a
 * SafetensorsError naming `file` and the fault.
 */
export async function checkSafetensorsLayout(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  size: number,
  file: string,
): Promise<SafetensorsLayout> {
  const fail = failing(file);
  const headerLength = declaredHeaderLength(await read(0, 8), size, fail);
  const json = await read(8, headerLength);
  if (json.byteLength !== headerLength)
    fail(`the header could not be read whole (${json.byteLength} of ${headerLength} bytes)`);
  const knownDtype = (name: string, dtype: string): number =>
    Object.hasOwn(DTYPE_BITS, dtype)
      ? DTYPE_BITS[dtype]!
      : fail(`tensor ${name} has unknown dtype ${dtype} (not one the format defines)`);
  return { ...parseLayout(json, size - 8 - headerLength, fail, knownDtype), dataStart: 8 + headerLength };
}

/** A cheap sniff of a file's first bytes: the header length fits the file and the header opens a JSON object. */
export function looksLikeSafetensors(head: Uint8Array, size: number): boolean {
  if (head.byteLength < 9) return false;
  const declared = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return declared >= 2n && declared <= BigInt(MAX_HEADER_BYTES) && declared <= BigInt(size) - 8n && head[8] === 0x7b;
}

const temporaryName = (file: string): string =>
  path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);

/** Makes a rename inside `folder` durable. */
export function fsyncFolderSync(folder: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(folder, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes the file atomically: a temporary file in the same folder, fsynced, then renamed over `file`. */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, F32Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata, file);
  const temporary = temporaryName(file);
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  fsyncFolderSync(path.dirname(file));
}

/** writeSafetensors for callers that must not yield mid-write (e.g. to a signal handler). */
export function writeSafetensorsSync(
  file: string,
  tensors: Record<string, F32Tensor>,
  metadata?: Record<string, string>,
): void {
  const bytes = encodeSafetensors(tensors, metadata, file);
  const temporary = temporaryName(file);
  try {
    const fd = openSync(temporary, 'wx');
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  fsyncFolderSync(path.dirname(file));
}

export async function readSafetensors(file: string): Promise<Safetensors> {
  return decodeSafetensors(await readFile(file), file);
}

export function readSafetensorsSync(file: string): Safetensors {
  return decodeSafetensors(readFileSync(file), file);
}

/** A cheap sniff of a file on disk (see looksLikeSafetensors). Never throws. */
export function isSafetensors(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(9);
    return readSync(fd, head, 0, 9, 0) === 9 && looksLikeSafetensors(head, fstatSync(fd).size);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
