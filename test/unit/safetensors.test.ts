// The safetensors codec: exact round trips, the file layout of the format, atomic writes, and a
// precise refusal of every kind of damaged file.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import {
  decodeSafetensors,
  encodeSafetensors,
  type F32Tensor,
  isSafetensors,
  readSafetensors,
  readSafetensorsSync,
  writeSafetensors,
  writeSafetensorsSync,
} from '../../store/safetensors';

const folders: string[] = [];
const folder = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'safetensors-'));
  folders.push(dir);
  return dir;
};
afterAll(() => folders.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
const f32 = (shape: number[], values: number[]): F32Tensor => ({
  dtype: 'F32',
  shape,
  data: Float32Array.from(values),
});
const bytesOf = (data: Float32Array): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

/** A file assembled by hand from a header object and data bytes, as another writer could produce it. */
function handMade(header: unknown, data: Buffer, pad = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header) + ' '.repeat(pad));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

test('tensors and metadata survive a round trip bit for bit, in the documented layout', async () => {
  const dir = folder();
  const file = path.join(dir, 'model.safetensors');
  const tensors = {
    'layer.weight': f32([2, 3], [1, -2, 3.5, Number.NaN, Infinity, -0]),
    bias: f32([3], [0.1, 0.2, 0.3]),
    scalar: f32([], [42]),
    empty: f32([0, 4], []),
  };
  await writeSafetensors(file, tensors, { step: '7', vocab: '["a","b"]' });

  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  expect(headerLength % 8).toBe(0);
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  expect(header.__metadata__).toEqual({ step: '7', vocab: '["a","b"]' });
  expect(header['layer.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [12, 36] });
  expect(bytes.length).toBe(8 + headerLength + (6 + 3 + 1) * 4);

  const read = await readSafetensors(file);
  expect(read.metadata).toEqual({ step: '7', vocab: '["a","b"]' });
  expect(Object.keys(read.tensors).sort()).toEqual(Object.keys(tensors).sort());
  for (const [name, tensor] of Object.entries(tensors)) {
    expect(read.tensors[name]!.shape).toEqual(tensor.shape);
    expect(bytesOf(read.tensors[name]!.data).equals(bytesOf(tensor.data))).toBe(true);
  }
  expect(readSafetensorsSync(file)).toEqual(read);
  expect(isSafetensors(file)).toBe(true);
});

test('any F32 tensors round trip exactly through the in-memory codec', () => {
  const tensor = fc
    .array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })
    .chain((shape) =>
      fc
        .float32Array({ minLength: shape.reduce((a, b) => a * b, 1), maxLength: shape.reduce((a, b) => a * b, 1) })
        .map((data): F32Tensor => ({ dtype: 'F32', shape, data })),
    );
  fc.assert(
    fc.property(
      fc.dictionary(
        fc.string({ minLength: 1 }).filter((name) => name !== '__metadata__'),
        tensor,
        { maxKeys: 4 },
      ),
      fc.dictionary(fc.string(), fc.string()),
      (tensors, metadata) => {
        const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata));
        expect(decoded.metadata).toEqual(metadata);
        expect(Object.keys(decoded.tensors).sort()).toEqual(Object.keys(tensors).sort());
        for (const [name, { shape, data }] of Object.entries(tensors)) {
          expect(decoded.tensors[name]!.shape).toEqual(shape);
          expect(bytesOf(decoded.tensors[name]!.data).equals(bytesOf(data))).toBe(true);
        }
      },
    ),
    { numRuns: 100 },
  );
});

test('a file from another writer (unsorted offsets, unpadded header, no metadata) reads', () => {
  const data = Buffer.alloc(12);
  data.writeFloatLE(1.5, 0);
  data.writeFloatLE(-2, 4);
  data.writeFloatLE(3, 8);
  const bytes = handMade(
    { b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] }, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } },
    data,
    3,
  );
  const { tensors, metadata } = decodeSafetensors(bytes, 'other.safetensors');
  expect(metadata).toEqual({});
  expect([...tensors.a!.data]).toEqual([1.5, -2]);
  expect([...tensors.b!.data]).toEqual([3]);
});

describe('damaged files are refused with the file name and the fault', () => {
  const eight = Buffer.alloc(8);
  const good = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Buffer, RegExp][] = [
    ['shorter than the length prefix', Buffer.from([1, 2, 3]), /3 bytes is too short/],
    [
      'header length past the end',
      (() => {
        const bytes = handMade(good, eight);
        bytes.writeBigUInt64LE(10_000n);
        return bytes;
      })(),
      /header length 10000 runs past the end of the \d+-byte file/,
    ],
    [
      'header not JSON',
      (() => {
        const bytes = handMade(good, eight);
        bytes.write('#', 8);
        return bytes;
      })(),
      /header is not valid UTF-8 JSON/,
    ],
    ['header a JSON array', handMade([1, 2], Buffer.alloc(0)), /header is not a JSON object/],
    [
      'truncated data',
      handMade(good, Buffer.alloc(4)),
      /tensor t has data_offsets \[0, 8\] past the 4 data bytes \(file truncated\?\)/,
    ],
    ['trailing bytes', handMade(good, Buffer.alloc(12)), /tensors cover 8 data bytes but the file holds 12/],
    [
      'a gap between tensors',
      handMade(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
        },
        Buffer.alloc(12),
      ),
      /tensor b begins at byte 8 of the data, expected 4 \(offsets must be contiguous\)/,
    ],
    [
      'overlapping tensors',
      handMade(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        eight,
      ),
      /tensor b begins at byte 4 of the data, expected 8/,
    ],
    [
      'offsets reversed',
      handMade({ t: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, eight),
      /tensor t has data_offsets \[8, 0\] that end before they begin/,
    ],
    [
      'byte length not matching the shape',
      handMade({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eight),
      /tensor t spans 8 bytes but F32 shape \[3\] needs 12/,
    ],
    [
      'an unsupported dtype',
      handMade({ t: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, eight),
      /tensor t has unsupported dtype F16; only F32 is supported/,
    ],
    [
      'a bad shape',
      handMade({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, eight),
      /tensor t has shape \[-2\]/,
    ],
    [
      'missing offsets',
      handMade({ t: { dtype: 'F32', shape: [2] } }, eight),
      /tensor t has data_offsets undefined; expected \[begin, end\]/,
    ],
    [
      'a non-string metadata value',
      handMade({ __metadata__: { step: 3 }, ...good }, eight),
      /__metadata__.step is 3, not a string/,
    ],
  ];
  test.each(cases)('%s', (_, bytes, fault) => {
    const file = path.join(folder(), 'broken.safetensors');
    writeFileSync(file, bytes);
    expect(() => readSafetensorsSync(file)).toThrow(
      new RegExp(`^invalid safetensors ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${fault.source}`),
    );
  });

  test('a missing file is a plain file-system error, and isSafetensors says no to non-files', async () => {
    const dir = folder();
    await expect(readSafetensors(path.join(dir, 'absent.safetensors'))).rejects.toThrow(/ENOENT/);
    writeFileSync(path.join(dir, 'notes.txt'), 'plain text, not tensors');
    writeFileSync(path.join(dir, 'empty'), '');
    expect(isSafetensors(path.join(dir, 'notes.txt'))).toBe(false);
    expect(isSafetensors(path.join(dir, 'empty'))).toBe(false);
    expect(isSafetensors(path.join(dir, 'absent.safetensors'))).toBe(false);
    expect(isSafetensors(dir)).toBe(false);
  });
});

test('writes are atomic: no temporary file remains, and a refused write leaves the old file whole', async () => {
  const dir = folder();
  const file = path.join(dir, 'weights.safetensors');
  writeSafetensorsSync(file, { w: f32([2], [1, 2]) });
  await writeSafetensors(file, { w: f32([2], [3, 4]) }, { version: '2' });
  expect(readdirSync(dir)).toEqual(['weights.safetensors']);
  const before = readFileSync(file);

  await expect(writeSafetensors(file, { w: f32([3], [1, 2]) })).rejects.toThrow(
    `cannot write safetensors ${file}: tensor w has 2 values but shape [3] holds 3`,
  );
  expect(() =>
    writeSafetensorsSync(file, { w: { dtype: 'F16' as 'F32', shape: [1], data: Float32Array.of(1) } }),
  ).toThrow('tensor w has dtype F16; only F32 is supported');
  expect(() => writeSafetensorsSync(file, { w: f32([1], [1]) }, { step: 3 as unknown as string })).toThrow(
    'metadata "step" is a number, not a string',
  );
  await expect(writeSafetensors(path.join(dir, 'missing', 'x.safetensors'), { w: f32([1], [1]) })).rejects.toThrow(
    /ENOENT/,
  );
  expect(readdirSync(dir)).toEqual(['weights.safetensors']);
  expect(readFileSync(file).equals(before)).toBe(true);
  expect([...(await readSafetensors(file)).tensors.w!.data]).toEqual([3, 4]);
});
