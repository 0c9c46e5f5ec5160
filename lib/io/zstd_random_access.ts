import type { RandomAccess } from "./random_access.ts";
import { EndOfStreamError } from "./read_exact.ts";
import { ZstdError } from "./zstd_format.ts";
import {
  decodeSeekFooter,
  decodeSeekTable,
  SEEKABLE_FOOTER_SIZE,
} from "./zstd_seekable.ts";
import { FrameDecompressError, ZstdWorkers } from "./zstd_workers.ts";

/**
 * Threads decompressing frames: one per core beside the main thread (which
 * reads the file and serves), at least one, at most two.
 */
const WORKERS = Math.max(1, Math.min(2, navigator.hardwareConcurrency - 1));

/** Decompressed frames kept (4 MiB each for vmabak's frames). */
const FRAME_CACHE = 8;
/** Spare buffers kept for frames to come (compressed and decompressed). */
const SPARE = 6;

/**
 * The decompressed bytes of a zstd stream with a seek table, read at any
 * offset: a read finds its frames in the table, reads and decompresses only
 * those (the last few kept), on worker threads. A reader going through the
 * frames in order gets the next frame decompressed ahead. `open` returns
 * null for a stream without a seek table.
 */
export class ZstdRandomAccess implements RandomAccess {
  readonly size: number;
  /** Decompressed start of frame i; one more entry: the total. */
  #starts: Float64Array;
  /** Compressed start of frame i in the file. */
  #offsets: Float64Array;
  #inner: RandomAccess;
  #cache = new Map<number, Promise<Uint8Array<ArrayBuffer>>>();
  #workers: ZstdWorkers | undefined;
  /** Buffers for compressed frames and for decompressed ones, reused. */
  #spare: Uint8Array<ArrayBuffer>[] = [];
  /** Frames out of the cache, spare once no read can still be copying them. */
  #retired: Uint8Array<ArrayBuffer>[] = [];

  private constructor(
    inner: RandomAccess,
    starts: Float64Array,
    offsets: Float64Array,
  ) {
    this.#inner = inner;
    this.#starts = starts;
    this.#offsets = offsets;
    this.size = starts[starts.length - 1]!;
  }

  static async open(inner: RandomAccess): Promise<ZstdRandomAccess | null> {
    if (inner.size < SEEKABLE_FOOTER_SIZE) return null;
    const footer = new Uint8Array(SEEKABLE_FOOTER_SIZE);
    await inner.readAt(inner.size - footer.length, footer);
    const found = decodeSeekFooter(footer);
    if (found === null) return null;
    if (found.tableSize > inner.size) {
      throw new ZstdError("Cannot read zstd seek table: larger than the file");
    }
    const table = new Uint8Array(found.tableSize);
    await inner.readAt(inner.size - table.length, table);
    const frames = decodeSeekTable(table, found.frames, found.entrySize);
    const starts = new Float64Array(frames.length + 1);
    const offsets = new Float64Array(frames.length);
    let compressed = 0;
    frames.forEach((f, i) => {
      offsets[i] = compressed;
      compressed += f.compressed;
      starts[i + 1] = starts[i]! + f.decompressed;
    });
    if (compressed !== inner.size - table.length) {
      throw new ZstdError(
        `Cannot read zstd seek table: its frames add up to ${compressed} bytes, the stream before it has ${
          inner.size - table.length
        }`,
      );
    }
    return new ZstdRandomAccess(inner, starts, offsets);
  }

  get frames(): number {
    return this.#offsets.length;
  }

  #frameAt(offset: number): number {
    let lo = 0;
    let hi = this.#offsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Frame i, decompressed (from the cache, or read and decompressed now). */
  #frame(i: number): Promise<Uint8Array<ArrayBuffer>> {
    let p = this.#cache.get(i);
    if (p !== undefined) {
      this.#cache.delete(i); // most recent last
      this.#cache.set(i, p);
      return p;
    }
    // A reader that came through frame i-1 will want i+1 next.
    const ahead = this.#cache.has(i - 1) && i + 1 < this.#offsets.length &&
      !this.#cache.has(i + 1);
    p = this.#load(i);
    this.#keep(i, p);
    if (ahead) this.#keep(i + 1, this.#load(i + 1));
    return p;
  }

  #keep(i: number, p: Promise<Uint8Array<ArrayBuffer>>): void {
    p.catch(() => {
      if (this.#cache.get(i) === p) this.#cache.delete(i);
    });
    if (this.#cache.size >= FRAME_CACHE) {
      const [oldest, frame] = this.#cache.entries().next().value!;
      this.#cache.delete(oldest);
      frame.then((f) => this.#retire(f), () => {});
    }
    this.#cache.set(i, p);
  }

  /**
   * An evicted frame's buffer becomes spare in a later task: every read
   * that got the frame before has copied from it by then (a read copies
   * right after its await, in the same task), so lending it to a worker,
   * which detaches it here, cannot pull it from under a read.
   */
  #retire(frame: Uint8Array<ArrayBuffer>): void {
    if (this.#retired.push(frame) === 1) {
      setTimeout(() => {
        for (const f of this.#retired.splice(0)) this.#give([f]);
      }, 0);
    }
  }

  #give(buffers: Uint8Array<ArrayBuffer>[]): void {
    for (const b of buffers) {
      if (this.#spare.length < SPARE) {
        this.#spare.push(new Uint8Array(b.buffer));
      }
    }
  }

  /** A spare buffer of at least `length` bytes, or null. */
  #take(length: number): Uint8Array<ArrayBuffer> | null {
    const i = this.#spare.findIndex((b) => b.length >= length);
    return i < 0 ? null : this.#spare.splice(i, 1)[0]!.subarray(0, length);
  }

  async #load(i: number): Promise<Uint8Array<ArrayBuffer>> {
    const length =
      (i + 1 < this.#offsets.length
        ? this.#offsets[i + 1]!
        : this.#inner.size) -
      this.#offsets[i]!;
    const want = this.#starts[i + 1]! - this.#starts[i]!;
    const compressed = this.#take(length) ?? new Uint8Array(length);
    try {
      await this.#inner.readAt(this.#offsets[i]!, compressed);
    } catch (error) {
      this.#give([compressed]);
      throw error;
    }
    this.#workers ??= new ZstdWorkers(WORKERS);
    let out: Uint8Array<ArrayBuffer>;
    try {
      out = await this.#workers.decompress(
        compressed,
        want,
        this.#take(want),
        (unused) => this.#give(unused),
      );
    } catch (error) {
      if (!(error instanceof FrameDecompressError)) throw error;
      throw new ZstdError(
        `Cannot read zstd frame ${i}: ${error.reason} (the seek table says ${want} bytes)`,
        { cause: error },
      );
    }
    if (out.length !== want) {
      throw new ZstdError(
        `Cannot read zstd frame ${i}: ${out.length} bytes, the seek table says ${want}`,
      );
    }
    return out;
  }

  async readAt(offset: number, into: Uint8Array): Promise<void> {
    if (offset + into.length > this.size) {
      throw new EndOfStreamError(
        into.length,
        Math.max(0, this.size - offset),
        `bytes at ${offset}`,
      );
    }
    let done = 0;
    for (let i = this.#frameAt(offset); done < into.length; i++) {
      const frame = await this.#frame(i);
      const from = offset + done - this.#starts[i]!;
      const n = Math.min(frame.length - from, into.length - done);
      into.set(frame.subarray(from, from + n), done);
      done += n;
    }
  }

  close(): void {
    this.#workers?.close();
    this.#inner.close();
  }
}
