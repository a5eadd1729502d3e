// Random access to bytes, whether a file on disk, a buffer in memory, or a part of either: the
// content scan reads only the few windows it needs, so a 10 GB checkpoint shard is never loaded.
import type { FileHandle } from 'node:fs/promises';

export interface ByteSource {
  /** Total size in bytes; the content may extend past what `read` can give (a decompressed head). */
  readonly size: number;
  /** Up to `length` bytes at `offset`: fewer, or none, past the end of what can be read. */
  read(offset: number, length: number): Promise<Buffer>;
}

/** Bytes in memory; `size` may be larger than the buffer when it holds only the start of the content. */
export function bufferSource(bytes: Buffer, size = bytes.length): ByteSource {
  return {
    size,
    read: async (offset, length) =>
      bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
  };
}

export function fileSource(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    read: async (offset, length) => {
      const wanted = Math.max(0, Math.min(length, size - offset));
      const into = Buffer.alloc(wanted);
      let got = 0;
      while (got < wanted) {
        const { bytesRead } = await handle.read(into, got, wanted - got, offset + got);
        if (bytesRead === 0) break; // the file shrank while we read it
        got += bytesRead;
      }
      return into.subarray(0, got);
    },
  };
}

/** `length` bytes of `source` from `start`, as a source of its own (a stored zip entry). */
export function sliceSource(source: ByteSource, start: number, length: number): ByteSource {
  return {
    size: length,
    read: (offset, wanted) => source.read(start + offset, Math.max(0, Math.min(wanted, length - offset))),
  };
}
