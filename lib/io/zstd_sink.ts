/** `zstdSink`: compresses an archive on its way out, one frame per chunk. */
import type { ByteSink } from "./sink.ts";
import {
  checkZstdLevel,
  type ChunkCompressor,
  frameCapacity,
  inlineCompressor,
  workerCompressor,
} from "./zstd_compress.ts";
import { ZstdError } from "./zstd_format.ts";
import { encodeSeekTable, type SeekFrame } from "./zstd_seekable.ts";

/** Input bytes per frame. */
export const ZSTD_CHUNK_SIZE = 4 << 20;
/** Chunks compressed or waiting to be written at once. */
export const ZSTD_MAX_IN_FLIGHT = 2;

export interface ZstdSinkOptions {
  /** Input bytes per frame (default 4 MiB). */
  chunkSize?: number;
  /** Compression Workers (default 2; 0 compresses on the calling thread). */
  workers?: number;
  /** End with a seek table (zstd seekable format) so frames can be found at random (default true). */
  seekTable?: boolean;
}

export interface ZstdSink extends ByteSink {
  /** Compresses what is buffered, waits for every write, stops the Workers. */
  close(): Promise<void>;
  /** Drops what is pending and stops the Workers. */
  abort(): void;
  /** Uncompressed bytes accepted so far. */
  readonly bytesIn: number;
  /** Compressed bytes written to the inner sink so far. */
  readonly bytesOut: number;
}

/**
 * A sink that compresses into `inner`: input is buffered into chunks, each
 * chunk becomes one zstd frame (with content size and checksum), frames are
 * written strictly in order. At most two chunks are compressed or waiting
 * to be written; `write()` waits when both are busy (backpressure).
 */
export function zstdSink(
  inner: ByteSink,
  level: number,
  options: ZstdSinkOptions = {},
): ZstdSink {
  return new ZstdFrameSink(inner, level, options);
}

class ZstdFrameSink implements ZstdSink {
  #inner: ByteSink;
  #compressor: ChunkCompressor;
  #chunkSize: number;
  #free: ArrayBuffer[] = [];
  #current: Uint8Array | null = null;
  #filled = 0;
  /** Completion of each dispatched chunk's write, oldest first (never rejects). */
  #inFlight: Promise<void>[] = [];
  #tail: Promise<void> = Promise.resolve();
  #error: unknown;
  #state: "open" | "closed" | "failed" = "open";
  bytesIn = 0;
  bytesOut = 0;
  #frames: SeekFrame[] | null;

  constructor(inner: ByteSink, level: number, options: ZstdSinkOptions) {
    checkZstdLevel(level);
    this.#inner = inner;
    this.#chunkSize = options.chunkSize ?? ZSTD_CHUNK_SIZE;
    this.#frames = options.seekTable === false ? null : [];
    const workers = options.workers ?? ZSTD_MAX_IN_FLIGHT;
    this.#compressor = workers > 0 && typeof Worker === "function"
      ? workerCompressor(level, workers)
      : inlineCompressor(level);
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#check();
    let i = 0;
    while (i < chunk.length) {
      if (this.#current === null) {
        await this.#waitForRoom();
        this.#check();
        const buffer = this.#free.pop() ?? this.#newBuffer();
        this.#current = new Uint8Array(buffer, 0, this.#chunkSize);
      }
      const n = Math.min(this.#chunkSize - this.#filled, chunk.length - i);
      this.#current.set(chunk.subarray(i, i + n), this.#filled);
      this.#filled += n;
      this.bytesIn += n;
      i += n;
      if (this.#filled === this.#chunkSize) this.#dispatch();
    }
  }

  async close(): Promise<void> {
    try {
      this.#check();
      // An empty input still makes a valid zstd stream: one empty frame.
      if (this.#filled > 0 || this.bytesIn === 0) {
        this.#current ??= new Uint8Array(
          this.#free.pop() ?? this.#newBuffer(),
          0,
          this.#chunkSize,
        );
        this.#dispatch();
      }
      await Promise.all(this.#inFlight.splice(0));
      this.#check();
      if (this.#frames !== null) {
        const table = encodeSeekTable(this.#frames);
        await this.#inner.write(table);
        this.bytesOut += table.length;
      }
      this.#state = "closed";
    } finally {
      this.#compressor.close();
    }
  }

  abort(): void {
    if (this.#state === "open") {
      this.#fail(new ZstdError("Cannot compress: the output was aborted"));
    }
    this.#compressor.close();
  }

  #check(): void {
    if (this.#state === "failed") throw this.#error;
    if (this.#state === "closed") {
      throw new ZstdError("Cannot write: the zstd output is closed");
    }
  }

  #fail(error: unknown): void {
    if (this.#state === "failed") return;
    this.#state = "failed";
    this.#error = error;
  }

  async #waitForRoom(): Promise<void> {
    while (this.#inFlight.length >= ZSTD_MAX_IN_FLIGHT) {
      await this.#inFlight.shift();
    }
  }

  /** An input buffer with room for its frame (the frame is written over the input). */
  #newBuffer(): ArrayBuffer {
    return new ArrayBuffer(frameCapacity(this.#chunkSize));
  }

  #dispatch(): void {
    const input = this.#current!;
    const length = this.#filled;
    this.#current = null;
    this.#filled = 0;
    const compressed = this.#compressor.compress(
      input.buffer as ArrayBuffer,
      length,
    );
    compressed.catch(() => {}); // handled in the chain below
    const done = this.#tail.then(async () => {
      const { frame, buffer } = await compressed;
      if (this.#state !== "failed") {
        await this.#inner.write(frame);
        this.bytesOut += frame.length;
        this.#frames?.push({ compressed: frame.length, decompressed: length });
      }
      // Reused only now: the frame lies in it.
      this.#free.push(buffer);
    }).catch((error) => this.#fail(error));
    this.#tail = done;
    this.#inFlight.push(done);
  }
}
