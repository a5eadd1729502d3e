// The content scan: pickles of every protocol found whatever the file is called (bare, in zip
// archives, compressed, as NumPy object arrays), safetensors validated, and ordinary files (text,
// JSON, raw tensors) let through. Every fixture is built here; Python writes the real pickles.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { encodeSafetensors } from '../../store/safetensors';
import { scanBytes, scanFile, type ScanOptions } from '../../store/scan';
import { PROTOCOL_0_PICKLE, zip } from '../helpers/content';

const folder = mkdtempSync(path.join(tmpdir(), 'content-scan-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** The refusal for content published as `name`: the same whether it is read from disk or from memory. */
async function refusal(name: string, content: Buffer, options: ScanOptions = {}): Promise<string | undefined> {
  const file = path.join(folder, `${Math.random().toString(36).slice(2)}-${path.basename(name)}`);
  writeFileSync(file, content);
  const fromFile = await scanFile(file, name, options);
  expect(await scanBytes(name, content, options)).toBe(fromFile);
  return fromFile;
}

const PICKLE_ADVICE =
  'pickle files can run code when loaded; convert it to safetensors (safetensors.torch.save_file) and publish again';
const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Pickles Python writes: each object at every protocol, hex-encoded. */
function pythonPickles(): Record<string, string[]> {
  const script = String.raw`
import collections, datetime, json, os, pickle, sys
class RunsACommand:
    def __reduce__(self):
        return (os.system, ('echo hi',))
class Plain:
    def __init__(self):
        self.weights = [0.5, 1.5]
shared = [1]
objects = {
    'a dict of lists': {'weights': [1.5, 2, -3], 'name': 'tiny'},
    'sets, bytes and a bytearray': ({1, 2}, frozenset({3}), b'\x00\x01', bytearray(b'ab')),
    'a big int, nested tuples, booleans': (2 ** 100, ((1,), (2, 3), (4, 5, 6)), True, None, 1.25),
    'shared references': [shared, shared, {'x': shared}],
    'an OrderedDict': collections.OrderedDict(a=1, b=[2]),
    'an object that runs a command': RunsACommand(),
    'an instance of a class': Plain(),
    'a datetime': datetime.datetime(2026, 1, 1, 12, 30),
    'a string longer than a read window': 'x' * 200000,
}
json.dump({name: [pickle.dumps(value, protocol=p).hex() for p in range(6)] for name, value in objects.items()}, sys.stdout)
`;
  return JSON.parse(
    execFileSync('python3', ['-c', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }),
  ) as Record<string, string[]>;
}

const pickles = pythonPickles();
const pickled = (name: string, protocol: number): Buffer => Buffer.from(pickles[name]![protocol]!, 'hex');

/** A .npy file (format 1.0) as np.save writes it: the header padded to 64 bytes with spaces and a newline. */
function npy(descr: string, shape: string, data: Buffer): Buffer {
  const dict = `{'descr': ${descr}, 'fortran_order': False, 'shape': ${shape}, }`;
  const padding = 64 - ((10 + dict.length + 1) % 64);
  const header = latin1(`${dict}${' '.repeat(padding % 64)}\n`);
  const length = Buffer.alloc(2);
  length.writeUInt16LE(header.length);
  return Buffer.concat([latin1('\x93NUMPY\x01\x00'), length, header, data]);
}

/** A safetensors file assembled by hand from a header object and data bytes. */
function safetensors(header: unknown, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

/** Deterministic noise, so a rare coincidence cannot make the suite flaky. */
function noise(bytes: number, seed: number): Buffer {
  const out = Buffer.alloc(bytes);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

describe('pickles are found by content, at every protocol, whatever the name', () => {
  const cases = Object.keys(pickles).flatMap((object) =>
    [0, 1, 2, 3, 4, 5].map((protocol) => [object, protocol] as const),
  );
  test.each(cases)('%s, protocol %d', async (object, protocol) => {
    expect(await refusal('weights.bin', pickled(object, protocol))).toBe(
      `weights.bin is a pickle (protocol ${protocol}): ${PICKLE_ADVICE}`,
    );
  });

  test('hand-written protocol 0 and 1 streams, as the brief of an attack or an old Python writes them', async () => {
    expect(await refusal('model.bin', PROTOCOL_0_PICKLE)).toBe(`model.bin is a pickle (protocol 0): ${PICKLE_ADVICE}`);
    expect(await refusal('notes.txt', latin1("(dp0\nS'a'\np1\n(lp2\nI1\naL2L\naF0.5\nas."))).toBe(
      `notes.txt is a pickle (protocol 0): ${PICKLE_ADVICE}`,
    );
    expect(await refusal('data', latin1(']q\x00(K\x01K\x02M\x00\x01e.'))).toBe(
      `data is a pickle (protocol 1): ${PICKLE_ADVICE}`,
    );
  });

  test('cut short, a pickle is still one: code before the cut would already have run', async () => {
    expect(await refusal('model.bin', latin1("cos\nsystem\n(S'echo hi'\ntR"))).toMatch(
      /^model.bin is a pickle \(protocol 0\)/,
    );
    expect(await refusal('pytorch_model.bin', Buffer.from([0x80, 0x04, 0x95, 0x00]))).toMatch(
      /^pytorch_model.bin is a pickle \(protocol 4\)/,
    );
    expect(await refusal('model.bin', pickled('a dict of lists', 2).subarray(0, 12))).toMatch(
      /is a pickle \(protocol 2\)/,
    );
  });

  test('a string padded past the read budget does not hide what follows it', async () => {
    const padded = Buffer.concat([
      latin1('V'),
      Buffer.alloc(5 * 1024 * 1024, 'a'),
      latin1("\np0\n0cos\nsystem\n(S'id'\ntR."),
    ]);
    expect(await refusal('model.bin', padded)).toMatch(/^model.bin is a pickle \(protocol 0\)/);
    // Binary payloads are skipped unread, however long: the opcodes after them are still walked.
    const skipped = Buffer.concat([
      latin1('(B'),
      Buffer.from([0, 0, 0x60, 0]),
      Buffer.alloc(0x600000),
      latin1('0cos\nsystem\n(S"id"\ntR.'),
    ]);
    expect(await refusal('model.bin', skipped)).toMatch(/^model.bin is a pickle \(protocol 3\)/);
  });
});

describe('ordinary files pass', () => {
  const texts: Record<string, string> = {
    'README.md': '# tiny\n\nA character-level model. (Trained for 3 steps.)\n\nNotes:\n- loss 1.2\n',
    'metrics.csv': 'step,loss\n1,2.5\n2,1.25\n',
    'config.json': JSON.stringify({ vocab: ['a', 'b'], layers: 2 }),
    'train.py': 'import torch\nclass Model(torch.nn.Module):\n    pass\n',
    'merges.txt': '#version: 0.2\nĠ t\nĠ a\n',
    'vocab.txt': '[PAD]\n[UNK]\nthe\n.\n',
    'transcript.txt': 'Very well.\n...\nPlan:\n.\nIt works.\n',
    'card.yaml': 'license: mit\ntags:\n  - tiny\n',
    // BINFLOAT (G and 8 bytes), DUP (2), STOP (.): it parses, but leaves two items and goes on.
    '1.8.2.3.txt': 'Git v1.8.2.3 Release Notes\n==========================\n',
    // Lines of dotted names starting with c read as GLOBAL after GLOBAL: nothing a pickler writes.
    'services.txt': Array.from({ length: 200 }, (_, i) => `com.example.api.service${i}.IServiceFactoryProvider`).join(
      '\n',
    ),
  };
  test.each(Object.entries(texts))('%s', async (name, text) => {
    expect(await refusal(name, Buffer.from(text))).toBeUndefined();
  });

  test('GGUF and ONNX (protobuf) weights', async () => {
    const gguf = Buffer.alloc(64);
    gguf.write('GGUF', 0, 'latin1');
    gguf.writeUInt32LE(3, 4);
    gguf.writeBigUInt64LE(201n, 8); // tensors
    gguf.writeBigUInt64LE(25n, 16); // metadata entries
    expect(await refusal('model.gguf', gguf)).toBeUndefined();
    expect(
      await refusal('model.onnx', Buffer.from([0x08, 0x07, 0x12, 0x07, 0x70, 0x79, 0x74, 0x6f, 0x72, 0x63, 0x68])),
    ).toBeUndefined();
  });

  test('raw tensor bytes, noise, and a lone pickled value with nothing to run', async () => {
    expect(
      await refusal('embeddings.bin', Buffer.from(Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)).buffer)),
    ).toBeUndefined();
    expect(await refusal('embeddings.bin', Buffer.from([1, 2, 3, 4]))).toBeUndefined();
    for (let seed = 1; seed <= 200; seed++) expect(await refusal('blob.bin', noise(2048, seed))).toBeUndefined();
    expect(await refusal('none', latin1('N.'))).toBeUndefined();
  });

  test('zlib content that is not a pickle, and text that only starts like a zlib header', async () => {
    expect(await refusal('notes.z', deflateSync(Buffer.from('plain notes\n'.repeat(100))))).toBeUndefined();
    expect(await refusal('log.txt', latin1('x\u009cnot compressed at all\n'))).toBeUndefined();
  });
});

describe('zip archives: every entry by name and content', () => {
  const torchZip = (deflate: boolean) =>
    zip([
      { name: 'archive/data.pkl', data: pickled('an OrderedDict', 2), deflate },
      { name: 'archive/data/0', data: Buffer.from(Float32Array.of(1, 2, 3).buffer), deflate },
      { name: 'archive/version', data: Buffer.from('3\n'), deflate },
      { name: 'archive/byteorder', data: Buffer.from('little'), deflate },
    ]);

  test('a PyTorch zip (torch.save) holds its pickle in archive/data.pkl, stored or deflated', async () => {
    expect(await refusal('model.pt', torchZip(false))).toBe(
      `model.pt holds a pickle (protocol 2) in archive/data.pkl: ${PICKLE_ADVICE}`,
    );
    expect(await refusal('pytorch_model.bin', torchZip(true))).toBe(
      `pytorch_model.bin holds a pickle (protocol 2) in archive/data.pkl: ${PICKLE_ADVICE}`,
    );
  });

  test('a pickle under another name, a .pkl entry of any content, a zip in a zip', async () => {
    expect(
      await refusal('bundle.zip', zip([{ name: 'weights/blob', data: pickled('a dict of lists', 4), deflate: true }])),
    ).toMatch(/^bundle.zip holds a pickle \(protocol 4\) in weights\/blob:/);
    expect(await refusal('bundle.zip', zip([{ name: 'state.pkl', data: Buffer.from('not really') }]))).toMatch(
      /^bundle.zip holds a file named as a pickle in state.pkl:/,
    );
    const inner = zip([{ name: 'data.pkl', data: pickled('a datetime', 5) }]);
    expect(
      await refusal(
        'outer.zip',
        zip([
          { name: 'readme.txt', data: Buffer.from('hi') },
          { name: 'inner.zip', data: inner },
        ]),
      ),
    ).toMatch(/^outer.zip holds a pickle \(protocol 5\) in data.pkl in inner.zip:/);
  });

  test('a zip of harmless files passes; one that cannot be read is refused as uncheckable', async () => {
    expect(
      await refusal(
        'tokenizer.zip',
        zip([
          { name: 'vocab.json', data: Buffer.from('{"a":1}'), deflate: true },
          { name: 'docs/', data: Buffer.alloc(0) },
        ]),
      ),
    ).toBeUndefined();
    expect(await refusal('model.pt', latin1('PK\u0003\u0004rest-of-zip'))).toMatch(
      /^model.pt is a zip archive that has no central directory \(cut short or damaged\): it may hold a pickle/,
    );
  });
});

describe('compressed content: inflated and checked, or refused when it cannot be', () => {
  test('joblib with compress=3 writes a zlib stream of a pickle; gzip the same', async () => {
    expect(await refusal('model.joblib', deflateSync(pickled('an instance of a class', 4)))).toBe(
      `model.joblib holds a pickle (protocol 4) in its zlib-compressed content: ${PICKLE_ADVICE}`,
    );
    expect(await refusal('model.pkl.gz', gzipSync(pickled('a dict of lists', 2)))).toMatch(
      /^model.pkl.gz holds a pickle \(protocol 2\) in its gzip-compressed content:/,
    );
    expect(await refusal('model.tgz', gzipSync(zip([{ name: 'data.pkl', data: pickled('a datetime', 3) }])))).toMatch(
      /holds a pickle \(protocol 3\) in data.pkl in its gzip-compressed content:/,
    );
  });

  test("joblib's old format: ZF, the length in hex padded to 19 characters, then zlib", async () => {
    const data = pickled('a dict of lists', 2);
    const old = Buffer.concat([latin1(`ZF${`0x${data.length.toString(16)}`.padEnd(19)}`), deflateSync(data)]);
    expect(await refusal('model.pkl.z', old)).toMatch(
      /^model.pkl.z holds a pickle \(protocol 2\) in its joblib zlib-compressed content:/,
    );
  });

  test('bzip2, xz, lzma and lz4 cannot be inflated here: refused, saying why', async () => {
    const heads: Record<string, Buffer> = {
      bzip2: latin1('BZh91AY&SY\u0000\u0000'),
      xz: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04]),
      lzma: Buffer.from([0x5d, 0x00, 0x00, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]),
      lz4: Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7]),
    };
    for (const [format, head] of Object.entries(heads)) {
      expect(await refusal('model.joblib', Buffer.concat([head, noise(100, 7)]))).toBe(
        `model.joblib is ${format}-compressed data: it may hold a pickle, which can run code when loaded, and cannot be checked; convert it to safetensors (safetensors.torch.save_file), or publish its content uncompressed`,
      );
    }
  });
});

describe('NumPy: object arrays are pickles, numbers are not', () => {
  const objects = npy("'|O'", '(2,)', pickled('a dict of lists', 3));
  const numbers = npy("'<f4'", '(2, 2)', Buffer.from(Float32Array.of(1, 2, 3, 4).buffer));

  test('.npy', async () => {
    expect(await refusal('arr.npy', objects)).toBe(
      'arr.npy is a NumPy array of Python objects (dtype |O): np.load unpickles object arrays, which can run code; save numeric arrays (or convert to safetensors) and publish again',
    );
    expect(await refusal('arr.npy', numbers)).toBeUndefined();
    expect(await refusal('table.npy', npy("[('a', '<i4'), ('b', '|O')]", '(1,)', Buffer.alloc(0)))).toMatch(
      /a NumPy array of Python objects \(field b has dtype \|O\)/,
    );
    expect(
      await refusal('table.npy', npy("[('O', '<f4'), ('b', '<i8', (2,))]", '(1,)', Buffer.alloc(20))),
    ).toBeUndefined();
    expect(
      await refusal('broken.npy', Buffer.concat([latin1('\x93NUMPY\x01\x00\x10\x00'), latin1('{not python}    ')])),
    ).toMatch(/^broken.npy is a .npy array that cannot be checked for objects \(its header is not a Python literal/);
  });

  test('.npz is a zip of .npy files (np.savez_compressed deflates them)', async () => {
    expect(
      await refusal(
        'weights.npz',
        zip([
          { name: 'b.npy', data: numbers, deflate: true },
          { name: 'w.npy', data: objects, deflate: true },
        ]),
      ),
    ).toMatch(/^weights.npz holds a NumPy array of Python objects \(dtype \|O\) in w.npy:/);
    expect(await refusal('weights.npz', zip([{ name: 'b.npy', data: numbers }]))).toBeUndefined();
  });
});

describe('safetensors are validated', () => {
  const valid = encodeSafetensors(
    { w: { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) } },
    { step: '3' },
  );
  const advice = 'write it again with safetensors (safetensors.torch.save_file) and publish again';

  test('valid files pass, of any dtype, whatever their name', async () => {
    expect(await refusal('model.safetensors', valid)).toBeUndefined();
    expect(await refusal('weights.bin', valid)).toBeUndefined();
    const mixed = safetensors(
      {
        __metadata__: { format: 'pt' },
        h: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 12] },
        q: { dtype: 'F4', shape: [3, 2], data_offsets: [12, 15] },
        mask: { dtype: 'BOOL', shape: [1], data_offsets: [15, 16] },
        ids: { dtype: 'I64', shape: [1], data_offsets: [16, 24] },
        empty: { dtype: 'U8', shape: [0], data_offsets: [24, 24] },
      },
      Buffer.alloc(24),
    );
    expect(await refusal('model-00001-of-00002.safetensors', mixed)).toBeUndefined();
  });

  const broken: [string, Buffer, string][] = [
    ['random bytes', noise(1000, 3), 'header length \\d+ runs past the end of the 1000-byte file'],
    ['too short', Buffer.from([1, 2]), '2 bytes is too short for the 8-byte header length'],
    [
      'offsets past the end',
      safetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, Buffer.alloc(4)),
      'tensor w has data_offsets \\[0, 8\\] past the 4 data bytes',
    ],
    [
      'a size wrong for the shape',
      safetensors({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      'tensor w spans 8 bytes but F32 shape \\[3\\] needs 12',
    ],
    [
      'an unknown dtype',
      safetensors({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, Buffer.alloc(16)),
      'tensor w has unknown dtype F128 \\(not one the format defines\\)',
    ],
    [
      'overlapping tensors',
      safetensors(
        { a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] }, b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] } },
        Buffer.alloc(8),
      ),
      'tensor b begins at byte 4 of the data, expected 8',
    ],
    [
      'bytes no tensor covers',
      safetensors({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(8)),
      'tensors cover 4 data bytes but the file holds 8',
    ],
    [
      'a shape of non-integers',
      safetensors({ a: { dtype: 'U8', shape: [1.5], data_offsets: [0, 1] } }, Buffer.alloc(1)),
      'tensor a has shape \\[1.5\\]',
    ],
    [
      'metadata that is not strings',
      safetensors({ __metadata__: { step: 3 } }, Buffer.alloc(0)),
      '__metadata__.step is 3, not a string',
    ],
    [
      'half a byte',
      safetensors({ q: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, Buffer.alloc(2)),
      'tensor q of F4 shape \\[3\\] is not a whole number of bytes',
    ],
    [
      'a header that is not JSON',
      Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{no}')]),
      'header is not valid UTF-8 JSON',
    ],
  ];
  test.each(broken)('refused: %s', async (_, content, fault) => {
    expect(await refusal('model.safetensors', content)).toMatch(
      new RegExp(`^model.safetensors is not a valid safetensors file: ${fault}.*; ${advice.replace(/[()]/g, '\\$&')}$`),
    );
  });

  test('a file laid out as safetensors is validated whatever its name', async () => {
    const content = safetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(4));
    expect(await refusal('weights.bin', content)).toMatch(
      /^weights.bin is not a valid safetensors file: tensor w has data_offsets \[0, 16\] past the 4 data bytes/,
    );
  });

  test('a 4 GiB shard is checked from its header alone', async () => {
    const size = 4 * 1024 ** 3;
    const headerLength = 128;
    const tensorBytes = size - 8 - headerLength;
    const json = JSON.stringify({ w: { dtype: 'U8', shape: [tensorBytes], data_offsets: [0, tensorBytes] } }).padEnd(
      headerLength,
    );
    const padded = Buffer.concat([Buffer.alloc(8), Buffer.from(json)]);
    padded.writeBigUInt64LE(BigInt(headerLength));
    const file = path.join(folder, 'big.safetensors');
    writeFileSync(file, padded);
    truncateSync(file, size); // sparse: nothing is written, and nothing past the header may be read
    const started = Date.now();
    expect(await scanFile(file, 'big.safetensors')).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

test('allowPickle lets pickles through, never a broken safetensors file', async () => {
  expect(await refusal('model.bin', pickled('an OrderedDict', 4), { allowPickle: true })).toBeUndefined();
  expect(
    await refusal('model.pt', zip([{ name: 'archive/data.pkl', data: pickled('an OrderedDict', 2) }]), {
      allowPickle: true,
    }),
  ).toBeUndefined();
  expect(await refusal('model.safetensors', noise(100, 9), { allowPickle: true })).toMatch(
    /^model.safetensors is not a valid safetensors file/,
  );
  // A pickle named .safetensors: with pickles allowed it is still not a safetensors file.
  expect(await refusal('model.safetensors', pickled('a dict of lists', 4))).toMatch(
    /^model.safetensors is a pickle \(protocol 4\)/,
  );
  expect(await refusal('model.safetensors', pickled('a dict of lists', 4), { allowPickle: true })).toMatch(
    /^model.safetensors is not a valid safetensors file/,
  );
});
