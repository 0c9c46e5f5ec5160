import { EndOfStreamError } from "./read_exact.ts";

/** Reads at any offset of a byte source of known size. */
export interface RandomAccess {
  readonly size: number;
  /** Fills `into` from `offset`; throws `EndOfStreamError` past the end. */
  readAt(offset: number, into: Uint8Array): Promise<void>;
  close(): void;
}

/** Reads running at once (each on its own handle, on Deno's thread pool). */
const HANDLES = 8;

/**
 * A file read at any offset. Deno has no pread, so each read in flight owns
 * one of several handles of the same file (its own file position) for its
 * seek and read; reads run in parallel on Deno's thread pool, so a read that
 * waits for the disk never holds up the others or the event loop.
 */
export class FileRandomAccess implements RandomAccess {
  readonly size: number;
  #path: string;
  #free: Deno.FsFile[] = [];
  #all: Deno.FsFile[] = [];
  #waiting: ((file: Deno.FsFile) => void)[] = [];
  #closed = false;

  /** `file` is an open handle of `path` (more are opened as reads overlap). */
  constructor(path: string, file: Deno.FsFile, size: number) {
    this.#path = path;
    this.#free.push(file);
    this.#all.push(file);
    this.size = size;
  }

  async #acquire(): Promise<Deno.FsFile> {
    const file = this.#free.pop();
    if (file !== undefined) return file;
    if (this.#all.length < HANDLES) {
      const opened = await Deno.open(this.#path, { read: true });
      this.#all.push(opened);
      return opened;
    }
    return await new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(file: Deno.FsFile): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next(file);
    else this.#free.push(file);
  }

  async readAt(offset: number, into: Uint8Array): Promise<void> {
    if (offset + into.length > this.size) {
      throw new EndOfStreamError(
        into.length,
        Math.max(0, this.size - offset),
        `bytes at ${offset}`,
      );
    }
    if (this.#closed) throw new Deno.errors.BadResource("file closed");
    const file = await this.#acquire();
    try {
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < into.length) {
        const n = await file.read(into.subarray(done));
        if (n === null) {
          throw new EndOfStreamError(into.length, done, `bytes at ${offset}`);
        }
        done += n;
      }
    } finally {
      this.#release(file);
    }
  }

  close(): void {
    this.#closed = true;
    for (const f of this.#all) {
      try {
        f.close();
      } catch { /* already closed */ }
    }
  }
}
