import { EndOfStreamError } from "./read_exact.ts";

/** Reads at any offset of a byte source of known size. */
export interface RandomAccess {
  readonly size: number;
  /** Fills `into` from `offset`; throws `EndOfStreamError` past the end. */
  readAt(offset: number, into: Uint8Array): Promise<void>;
  close(): void;
}

/**
 * A file read at any offset. Each `readAt` seeks and reads synchronously in
 * one turn of the event loop, so concurrent callers never interleave on the
 * shared file position (Deno has no pread); from the page cache a read costs
 * about as much as the syscall.
 */
export class FileRandomAccess implements RandomAccess {
  readonly size: number;
  #file: Deno.FsFile;

  constructor(file: Deno.FsFile, size: number) {
    this.#file = file;
    this.size = size;
  }

  readAt(offset: number, into: Uint8Array): Promise<void> {
    if (offset + into.length > this.size) {
      return Promise.reject(
        new EndOfStreamError(
          into.length,
          Math.max(0, this.size - offset),
          `bytes at ${offset}`,
        ),
      );
    }
    this.#file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < into.length) {
      const n = this.#file.readSync(into.subarray(done));
      if (n === null) {
        return Promise.reject(
          new EndOfStreamError(into.length, done, `bytes at ${offset}`),
        );
      }
      done += n;
    }
    return Promise.resolve();
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }
}
