// Recognises pickle data by walking its opcodes the way Python's unpickler reads them: every
// opcode of protocols 0-5 with its argument format and its effect on the stack, the marks and the
// memo. Text (a README, a CSV, JSON) fails within a few bytes; a pickle of any protocol parses,
// with or without the 0x80 marker of protocols 2-5. The walk is bounded in bytes read and opcodes.
import type { ByteSource } from './byte-source';

/** Bytes read at a time. */
const WINDOW_BYTES = 64 * 1024;
/** At most this many windows (4 MiB) are read: long payloads are skipped, not read. */
const MAX_WINDOWS = 64;
const MAX_OPCODES = 100_000;
/** This many valid opcodes in a row, with some structure, is a pickle stream whatever follows. */
const SURELY_PICKLE_OPCODES = 64;
/** A stream that runs out (a pickle cut short, or our budget) needs this many to count. */
const CUT_PICKLE_OPCODES = 8;
/**
 * Opcodes that build (take items off the stack, or memoize) a stream needs before its length
 * counts: picklers memoize and fill containers, while a text of lines starting with "c" (a list of
 * Java class names) is nothing but GLOBAL after GLOBAL.
 */
const STRUCTURE_OPCODES = 2;
const HIGHEST_PROTOCOL = 5;

type Argument =
  | 'none'
  | 'u1'
  | 'u2'
  | 'u4'
  | 'i4'
  | 'u8'
  | 'f8'
  | 'len1' // a 1-byte length, then that many bytes
  | 'len4'
  | 'slen4' // signed: a negative length is refused
  | 'len8'
  | 'int' // protocol 0 text arguments, each ended by a newline
  | 'index'
  | 'long'
  | 'float'
  | 'quoted'
  | 'line'
  | 'ascii'
  | 'names';

/**
 * What an opcode does to the current stack frame (the items since the last mark): pop some and
 * push some, open a frame (MARK), collect a frame into one item (LIST), add a frame to the item
 * below its mark (APPENDS), drop a frame (POP_MARK), POP (an item, or an empty frame), STOP.
 */
type Effect = readonly [pop: number, push: number] | 'mark' | 'collect' | 'extend' | 'dropMark' | 'pop' | 'stop';

interface Opcode {
  name: string;
  proto: number;
  arg: Argument;
  effect: Effect;
  memo?: 'get' | 'put' | 'memoize';
  /** Calls or builds objects: code runs as soon as the unpickler reaches it. */
  runsCode?: boolean;
  /** Looks up a callable by name (an import): what a call needs first. */
  imports?: boolean;
  /** DICT and SETITEMS take key, value pairs. */
  pairs?: boolean;
  /** OBJ needs its class after the mark. */
  nonEmpty?: boolean;
}

const PUSH: Effect = [0, 1];

const OPCODES = new Map<number, Opcode>(
  (
    [
      ['I', 'INT', 0, 'int', PUSH],
      ['J', 'BININT', 1, 'i4', PUSH],
      ['K', 'BININT1', 1, 'u1', PUSH],
      ['M', 'BININT2', 1, 'u2', PUSH],
      ['L', 'LONG', 0, 'long', PUSH],
      ['\x8a', 'LONG1', 2, 'len1', PUSH],
      ['\x8b', 'LONG4', 2, 'slen4', PUSH],
      ['S', 'STRING', 0, 'quoted', PUSH],
      ['T', 'BINSTRING', 1, 'slen4', PUSH],
      ['U', 'SHORT_BINSTRING', 1, 'len1', PUSH],
      ['B', 'BINBYTES', 3, 'len4', PUSH],
      ['C', 'SHORT_BINBYTES', 3, 'len1', PUSH],
      ['\x8e', 'BINBYTES8', 4, 'len8', PUSH],
      ['\x96', 'BYTEARRAY8', 5, 'len8', PUSH],
      ['\x97', 'NEXT_BUFFER', 5, 'none', PUSH],
      ['\x98', 'READONLY_BUFFER', 5, 'none', [1, 1]],
      ['N', 'NONE', 0, 'none', PUSH],
      ['\x88', 'NEWTRUE', 2, 'none', PUSH],
      ['\x89', 'NEWFALSE', 2, 'none', PUSH],
      ['V', 'UNICODE', 0, 'line', PUSH],
      ['\x8c', 'SHORT_BINUNICODE', 4, 'len1', PUSH],
      ['X', 'BINUNICODE', 1, 'len4', PUSH],
      ['\x8d', 'BINUNICODE8', 4, 'len8', PUSH],
      ['F', 'FLOAT', 0, 'float', PUSH],
      ['G', 'BINFLOAT', 1, 'f8', PUSH],
      [']', 'EMPTY_LIST', 1, 'none', PUSH],
      ['a', 'APPEND', 0, 'none', [2, 1]],
      ['e', 'APPENDS', 1, 'none', 'extend'],
      ['l', 'LIST', 0, 'none', 'collect'],
      [')', 'EMPTY_TUPLE', 1, 'none', PUSH],
      ['t', 'TUPLE', 0, 'none', 'collect'],
      ['\x85', 'TUPLE1', 2, 'none', [1, 1]],
      ['\x86', 'TUPLE2', 2, 'none', [2, 1]],
      ['\x87', 'TUPLE3', 2, 'none', [3, 1]],
      ['}', 'EMPTY_DICT', 1, 'none', PUSH],
      ['d', 'DICT', 0, 'none', 'collect', { pairs: true }],
      ['s', 'SETITEM', 0, 'none', [3, 1]],
      ['u', 'SETITEMS', 1, 'none', 'extend', { pairs: true }],
      ['\x8f', 'EMPTY_SET', 4, 'none', PUSH],
      ['\x90', 'ADDITEMS', 4, 'none', 'extend'],
      ['\x91', 'FROZENSET', 4, 'none', 'collect'],
      ['0', 'POP', 0, 'none', 'pop'],
      ['2', 'DUP', 0, 'none', [1, 2]],
      ['(', 'MARK', 0, 'none', 'mark'],
      ['1', 'POP_MARK', 1, 'none', 'dropMark'],
      ['g', 'GET', 0, 'index', PUSH, { memo: 'get' }],
      ['h', 'BINGET', 1, 'u1', PUSH, { memo: 'get' }],
      ['j', 'LONG_BINGET', 1, 'u4', PUSH, { memo: 'get' }],
      ['p', 'PUT', 0, 'index', [1, 1], { memo: 'put' }],
      ['q', 'BINPUT', 1, 'u1', [1, 1], { memo: 'put' }],
      ['r', 'LONG_BINPUT', 1, 'u4', [1, 1], { memo: 'put' }],
      ['\x94', 'MEMOIZE', 4, 'none', [1, 1], { memo: 'memoize' }],
      ['\x82', 'EXT1', 2, 'u1', PUSH, { imports: true }],
      ['\x83', 'EXT2', 2, 'u2', PUSH, { imports: true }],
      ['\x84', 'EXT4', 2, 'i4', PUSH, { imports: true }],
      ['c', 'GLOBAL', 0, 'names', PUSH, { imports: true }],
      ['\x93', 'STACK_GLOBAL', 4, 'none', [2, 1], { imports: true }],
      ['R', 'REDUCE', 0, 'none', [2, 1], { runsCode: true }],
      ['b', 'BUILD', 0, 'none', [2, 1], { runsCode: true }],
      ['i', 'INST', 0, 'names', 'collect', { runsCode: true, imports: true }],
      ['o', 'OBJ', 1, 'none', 'collect', { runsCode: true, nonEmpty: true }],
      ['\x81', 'NEWOBJ', 2, 'none', [2, 1], { runsCode: true }],
      ['\x92', 'NEWOBJ_EX', 4, 'none', [3, 1], { runsCode: true }],
      ['\x80', 'PROTO', 2, 'u1', [0, 0]],
      ['.', 'STOP', 0, 'none', 'stop'],
      ['\x95', 'FRAME', 4, 'u8', [0, 0]],
      ['P', 'PERSID', 0, 'ascii', PUSH],
      ['Q', 'BINPERSID', 1, 'none', [1, 1]],
    ] as const
  ).map(
    ([code, name, proto, arg, effect, extra]: readonly [
      string,
      string,
      number,
      Argument,
      Effect,
      Partial<Opcode>?,
    ]) => [code.charCodeAt(0), { name, proto, arg, effect, ...extra }],
  ),
);

interface PickleWalk {
  /** How the walk ended: at STOP, out of bytes or budget (or decided early), or at something no pickle holds. */
  outcome: 'stop' | 'end' | 'invalid';
  /** Where the content goes on after STOP. */
  stoppedAt: number;
  /** STOP left exactly one item and no open mark, as every pickler writes it. */
  cleanStop: boolean;
  /** Valid opcodes walked (STOP included). */
  opcodes: number;
  /** Of those, how many memoize or take items off the stack. */
  structure: number;
  /** The declared protocol (PROTO), else the highest protocol among the opcodes seen. */
  protocol: number;
  declared: boolean;
  /** A call after an import: code would have run by now. */
  runsCode: boolean;
  /** The walk stopped inside a protocol 0 string longer than the read budget (4 MiB). */
  longString: boolean;
}

/** Reads a pickle stream through a window on the source; arguments' payloads are skipped unread. */
class Cursor {
  private window: Buffer;
  private base = 0;
  private reads = 0;
  pos = 0;

  constructor(
    private readonly source: ByteSource,
    head: Buffer,
    start: number,
  ) {
    this.window = head;
    this.pos = start;
  }

  /** Whether `n` bytes from the position can be had, reading a window from there if needed. */
  async has(n: number): Promise<boolean> {
    if (this.pos + n <= this.base + this.window.length) return true;
    if (this.pos + n > this.source.size || n > WINDOW_BYTES) return false;
    return (await this.refill()) && this.pos + n <= this.base + this.window.length;
  }

  private async refill(): Promise<boolean> {
    if (this.reads >= MAX_WINDOWS) return false;
    this.reads++;
    this.window = await this.source.read(this.pos, WINDOW_BYTES);
    this.base = this.pos;
    return this.window.length > 0;
  }

  take(n: number): Buffer {
    const at = this.pos - this.base;
    this.pos += n;
    return this.window.subarray(at, at + n);
  }

  /** Moves past a payload of `n` bytes; false when the content ends before it does. */
  skip(n: number): boolean {
    if (this.pos + n > this.source.size) return false;
    this.pos += n;
    return true;
  }

  /** Reads past the next newline, window by window: what the line is like, and how it ended. */
  async line(): Promise<Line> {
    const line: Line = { ended: 'newline', length: 0, first: -1, last: -1, printable: true, start: Buffer.alloc(0) };
    for (;;) {
      const available = this.window.subarray(this.pos - this.base);
      const newline = available.indexOf(0x0a);
      const chunk = newline < 0 ? available : available.subarray(0, newline);
      addToLine(line, chunk);
      this.pos += chunk.length;
      if (newline >= 0) {
        this.pos += 1;
        return line;
      }
      if (this.pos >= this.source.size) return { ...line, ended: 'end' };
      if (!(await this.refill())) return { ...line, ended: this.reads >= MAX_WINDOWS ? 'budget' : 'end' };
    }
  }
}

/** A protocol 0 argument line, without keeping a long one in memory. */
interface Line {
  /** At its newline, at the end of the content, or where the read budget ran out. */
  ended: 'newline' | 'end' | 'budget';
  length: number;
  first: number;
  last: number;
  /** Printable ASCII throughout. */
  printable: boolean;
  /** Its first SHORT_LINE bytes: numbers and names are never longer. */
  start: Buffer;
}

const SHORT_LINE = 256;

function addToLine(line: Line, chunk: Buffer): void {
  if (chunk.length === 0) return;
  if (line.length === 0) line.first = chunk[0]!;
  line.last = chunk[chunk.length - 1]!;
  line.length += chunk.length;
  if (line.start.length < SHORT_LINE)
    line.start = Buffer.concat([line.start, chunk.subarray(0, SHORT_LINE - line.start.length)]);
  for (let i = 0; i < chunk.length && line.printable; i++) line.printable = chunk[i]! >= 0x20 && chunk[i]! <= 0x7e;
}

const INVALID = Symbol('invalid');
const END = Symbol('end');
/** The read budget ran out inside a string line: see isPickle. */
const LONG_STRING = Symbol('long string');
type ArgumentValue = number | undefined | typeof INVALID | typeof END | typeof LONG_STRING;

const SIGNED_DECIMAL = /^[-+]?\d+$/;
const UNSIGNED_DECIMAL = /^\d+$/;
const LONG_DECIMAL = /^[-+]?\d+L?$/;
const FLOAT_TEXT = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan)$/i;
/** A module or a (qualified) class name, as GLOBAL and INST carry them. */
const PYTHON_NAME = /^[\p{L}_][\p{L}\p{N}_.]*$/u;
const QUOTES = new Set([0x22, 0x27]);
const SHORT_FORMS: Partial<Record<Argument, RegExp>> = {
  int: SIGNED_DECIMAL,
  index: UNSIGNED_DECIMAL,
  long: LONG_DECIMAL,
  float: FLOAT_TEXT,
  names: PYTHON_NAME,
};

function lineMatches(line: Line, kind: Argument): boolean {
  const form = SHORT_FORMS[kind];
  if (form) return line.length <= SHORT_LINE && form.test(line.start.toString(kind === 'names' ? 'utf8' : 'latin1'));
  if (kind === 'quoted') return line.length >= 2 && QUOTES.has(line.first) && line.last === line.first;
  if (kind === 'ascii') return line.printable;
  return true; // UNICODE: any line is raw-unicode-escape text
}

async function textArgument(cursor: Cursor, kind: Argument): Promise<ArgumentValue> {
  const lines = kind === 'names' ? 2 : 1;
  let value: number | undefined;
  for (let i = 0; i < lines; i++) {
    const line = await cursor.line();
    const string = kind === 'line' || (kind === 'quoted' && QUOTES.has(line.first));
    if (line.ended === 'budget' && string) return LONG_STRING;
    if (line.ended !== 'newline') return END;
    if (!lineMatches(line, kind)) return INVALID;
    if (kind === 'index') value = Number(line.start.toString('latin1'));
  }
  return value;
}

/** Bytes of the binary arguments (a length-prefixed one: of its length). */
const WIDTHS: Partial<Record<Argument, number>> = {
  none: 0,
  u1: 1,
  u2: 2,
  u4: 4,
  i4: 4,
  u8: 8,
  f8: 8,
  len1: 1,
  len4: 4,
  slen4: 4,
  len8: 8,
};

/** Reads an opcode's argument: a number where the walk needs it (memo index, protocol), else undefined. */
async function readArgument(cursor: Cursor, kind: Argument): Promise<ArgumentValue> {
  const width = WIDTHS[kind];
  if (width === undefined) return textArgument(cursor, kind);
  if (!(await cursor.has(width))) return END;
  const bytes = cursor.take(width);
  switch (kind) {
    case 'u1':
      return bytes.readUInt8(0);
    case 'u2':
      return bytes.readUInt16LE(0);
    case 'u4':
      return bytes.readUInt32LE(0);
    case 'len1':
    case 'len4':
    case 'slen4':
    case 'len8': {
      const length =
        kind === 'len1'
          ? bytes.readUInt8(0)
          : kind === 'len4'
            ? bytes.readUInt32LE(0)
            : kind === 'slen4'
              ? bytes.readInt32LE(0)
              : Number(bytes.readBigUInt64LE(0));
      if (length < 0) return INVALID;
      return cursor.skip(length) ? undefined : END;
    }
    default:
      return undefined;
  }
}

/** The unpickler's bookkeeping: items per stack frame (a frame opens at each MARK) and the memo. */
class Machine {
  private readonly frames: number[] = [0];
  private readonly memo = new Set<number>();
  opcodes = 0;
  /** Opcodes that memoize or take items off the stack. */
  structure = 0;
  protocol = 0;
  declared = false;
  imports = false;
  runsCode = false;

  private get top(): number {
    return this.frames[this.frames.length - 1]!;
  }

  private set top(count: number) {
    this.frames[this.frames.length - 1] = count;
  }

  /** Applies the opcode; false when Python's unpickler would refuse it here. */
  apply(op: Opcode, argument: number | undefined): boolean {
    if (op.name === 'PROTO') {
      if (argument! > HIGHEST_PROTOCOL) return false;
      if (this.opcodes === 0) [this.declared, this.protocol] = [true, argument!];
    } else if (!this.declared) this.protocol = Math.max(this.protocol, op.proto);
    if (op.memo === 'get' && !this.memo.has(argument!)) return false;
    if (!this.applyEffect(op)) return false;
    if (op.memo === 'put') this.memo.add(argument!);
    if (op.memo === 'memoize') this.memo.add(this.memo.size);
    if (op.memo === 'put' || op.memo === 'memoize' || takesItems(op.effect)) this.structure++;
    this.imports ||= op.imports === true;
    this.runsCode ||= this.imports && op.runsCode === true;
    this.opcodes++;
    return true;
  }

  private applyEffect(op: Opcode): boolean {
    const effect = op.effect;
    if (Array.isArray(effect)) {
      const [pop, push] = effect as readonly [number, number];
      if (this.top < pop) return false;
      this.top += push - pop;
      return true;
    }
    switch (effect) {
      case 'mark':
        this.frames.push(0);
        return true;
      case 'pop':
        if (this.top > 0) this.top -= 1;
        else if (this.frames.length > 1)
          this.frames.pop(); // POP of an empty frame drops its mark
        else return false;
        return true;
      case 'stop':
        return this.top >= 1;
      default:
        return this.closeFrame(op);
    }
  }

  /** MARK ... then LIST, DICT, APPENDS, POP_MARK and the like. */
  private closeFrame(op: Opcode): boolean {
    if (this.frames.length < 2) return false;
    const items = this.frames.pop()!;
    if (op.pairs && items % 2 !== 0) return false;
    if (op.nonEmpty && items === 0) return false;
    if (op.effect === 'collect') this.top += 1;
    if (op.effect === 'extend') return this.top >= 1; // the list, dict or set below the mark
    return true;
  }

  /** Enough seen to call it a pickle without reading further. */
  get decided(): boolean {
    return (
      this.runsCode ||
      (this.declared && this.opcodes >= 3) ||
      (this.opcodes >= SURELY_PICKLE_OPCODES && this.structure >= STRUCTURE_OPCODES)
    );
  }

  /** Only at STOP: one item left, no mark open. */
  get clean(): boolean {
    return this.frames.length === 1 && this.top === 1;
  }

  result(outcome: PickleWalk['outcome'], stoppedAt: number, longString = false): PickleWalk {
    const cleanStop = outcome === 'stop' && this.clean;
    const { opcodes, structure, protocol, declared, runsCode } = this;
    return { outcome, stoppedAt, cleanStop, opcodes, structure, protocol, declared, runsCode, longString };
  }
}

const takesItems = (effect: Effect): boolean => (Array.isArray(effect) ? effect[0]! > 0 : effect !== 'mark');

/** Walks the opcodes of `source` from `start` (`head` holds its first bytes, when already read). */
async function walkPickle(source: ByteSource, head: Buffer, start: number): Promise<PickleWalk> {
  const cursor = new Cursor(source, head, start);
  const machine = new Machine();
  const result = (outcome: PickleWalk['outcome'], longString = false) =>
    machine.result(outcome, cursor.pos, longString);
  while (machine.opcodes < MAX_OPCODES) {
    if (!(await cursor.has(1))) return result('end');
    const op = OPCODES.get(cursor.take(1)[0]!);
    if (!op) return result('invalid');
    const argument = await readArgument(cursor, op.arg);
    if (argument === END || argument === LONG_STRING) return result('end', argument === LONG_STRING);
    if (argument === INVALID || !machine.apply(op, argument)) return result('invalid');
    if (op.effect === 'stop') return result('stop');
    if (machine.decided) return result('end');
  }
  return result('end');
}

/**
 * The protocol of the pickle data at the start of `source`, or undefined when it holds none.
 * Pickle data: a declared protocol (0x80) with opcodes after it, a call after an import (code would
 * already have run when the unpickler fails later), a string padded past our read budget (text is
 * not one 4 MiB line after a V or S'), a long, structured valid stream that the content or our
 * budget cut short, or a stream to a clean STOP that ends the content or is followed by another
 * pickle. Text can parse to a STOP by chance ("Git v1.8.2.3" is BINFLOAT, DUP, STOP), never to all
 * of that.
 */
export async function findPickle(source: ByteSource, head: Buffer = Buffer.alloc(0)): Promise<number | undefined> {
  const walk = await walkPickle(source, head, 0);
  return (await isPickle(walk, source, head)) ? walk.protocol : undefined;
}

async function isPickle(walk: PickleWalk, source: ByteSource, head: Buffer): Promise<boolean> {
  if (walk.runsCode || walk.longString) return true;
  if (walk.declared) return walk.outcome !== 'invalid' || walk.opcodes >= 3;
  if (walk.outcome === 'stop')
    return walk.cleanStop && walk.opcodes >= 3 && (await endsOrGoesOn(source, head, walk.stoppedAt));
  return longEnough(walk);
}

/** A valid stream that ran out, or that we stopped reading, long and structured enough to be a pickle. */
const longEnough = (walk: PickleWalk): boolean =>
  walk.structure >= STRUCTURE_OPCODES &&
  (walk.opcodes >= SURELY_PICKLE_OPCODES || (walk.outcome === 'end' && walk.opcodes >= CUT_PICKLE_OPCODES));

/** After a STOP: the end of the content (a newline at most), or another pickle (pickle.dump called again). */
async function endsOrGoesOn(source: ByteSource, head: Buffer, at: number): Promise<boolean> {
  const rest = await source.read(at, 2);
  if (rest.length === 0 || (rest.length === 1 && rest[0] === 0x0a)) return true;
  const next = await walkPickle(source, head, at);
  if (next.outcome === 'stop') return next.cleanStop;
  return next.runsCode || next.declared || longEnough(next);
}
