import { CachedRead } from "./cached_read.ts";
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
/** Times the oldest waiting read may be passed over for one that needs no seek. */
const MAX_PASSED = 8;

interface Waiter {
  offset: number;
  resolve(file: Deno.FsFile): void;
  passed: number;
}

/**
 * A file read at any offset. What the page cache holds is read at once, in
 * one call (`CachedRead`: preadv2 with RWF_NOWAIT, when FFI is allowed).
 * The rest goes to Deno's thread pool: Deno has no pread, so each read in
 * flight owns one of several handles of the same file (its own file
 * position) for its seek and read; those run in parallel, so a read that
 * waits for the disk never holds up the others or the event loop.
 */
export class FileRandomAccess implements RandomAccess {
  readonly size: number;
  #path: string;
  #free: Deno.FsFile[] = [];
  #all: Deno.FsFile[] = [];
  /** Where each handle's file position is (a read there needs no seek). */
  #at = new Map<Deno.FsFile, number>();
  #waiting: Waiter[] = [];
  #closed = false;
  #cachedOpen: Promise<CachedRead | null>;
  #cached: CachedRead | null | undefined;
  #cachedBytes = 0;

  /** `file` is an open handle of `path` (more are opened as reads overlap). */
  constructor(path: string, file: Deno.FsFile, size: number) {
    this.#path = path;
    this.#free.push(file);
    this.#all.push(file);
    this.size = size;
    this.#cachedOpen = CachedRead.open(path, file);
  }

  /** Bytes read from the page cache without the thread pool so far. */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  async #acquire(offset: number): Promise<Deno.FsFile> {
    const i = this.#free.findIndex((f) => this.#at.get(f) === offset);
    if (i >= 0) return this.#free.splice(i, 1)[0]!;
    if (this.#free.length > 0 || this.#all.length >= HANDLES) {
      return this.#free.pop() ??
        await new Promise((resolve) =>
          this.#waiting.push({ offset, resolve, passed: 0 })
        );
    }
    const opened = await Deno.open(this.#path, { read: true });
    this.#all.push(opened);
    return opened;
  }

  /**
   * Hands `file` to a waiting read: preferably one that continues where the
   * file stands (no seek), unless the oldest waiter was passed over too often.
   */
  #release(file: Deno.FsFile): void {
    const head = this.#waiting[0];
    if (head === undefined) {
      this.#free.push(file);
      return;
    }
    const at = this.#at.get(file);
    let i = head.passed < MAX_PASSED
      ? this.#waiting.findIndex((w) => w.offset === at)
      : 0;
    if (i < 0) i = 0;
    if (i > 0) head.passed++;
    this.#waiting.splice(i, 1)[0]!.resolve(file);
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
    if (this.#cached === undefined) {
      // Closed meanwhile: close() closes it once the open settles.
      this.#cached = await this.#cachedOpen;
    }
    if (this.#cached !== null && !this.#closed) {
      const n = this.#cached.read(offset, into);
      this.#cachedBytes += n;
      if (n === into.length) return;
      await this.#readWaiting(offset + n, into.subarray(n));
      return;
    }
    await this.#readWaiting(offset, into);
  }

  /** A read on the thread pool, on a handle of its own. */
  async #readWaiting(offset: number, into: Uint8Array): Promise<void> {
    const file = await this.#acquire(offset);
    const at = this.#at.get(file);
    this.#at.delete(file); // unknown until the read completes
    try {
      if (at !== offset) {
        await file.seek(offset, Deno.SeekMode.Start);
      }
      let done = 0;
      while (done < into.length) {
        const n = await file.read(into.subarray(done));
        if (n === null) {
          throw new EndOfStreamError(into.length, done, `bytes at ${offset}`);
        }
        done += n;
      }
      this.#at.set(file, offset + done);
    } finally {
      this.#release(file);
    }
  }

  close(): void {
    this.#closed = true;
    this.#cached?.close();
    this.#cachedOpen.then((c) => c?.close(), () => {});
    for (const f of this.#all) {
      try {
        f.close();
      } catch { /* already closed */ }
    }
  }
}
