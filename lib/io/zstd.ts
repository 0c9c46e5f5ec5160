/**
 * zstd for archives: `zstdSink` compresses what a writer produces into a
 * sequence of independent frames (one per ~4 MiB chunk), and
 * `maybeDecompress` turns any zstd stream (ours, or one written by the
 * `zstd` tool: one streaming frame, concatenated frames, skippable frames)
 * back into plain bytes, leaving other streams as they are.
 */
import { nodeZstd } from "./_node_zstd.ts";
import type { ByteSink } from "../cli/types.ts";
import {
  checkZstdLevel,
  type ChunkCompressor,
  inlineCompressor,
  workerCompressor,
} from "./zstd_compress.ts";
import { looksLikeZstd, ZSTD_MAGIC_SIZE, ZstdError } from "./zstd_format.ts";
import {
  FRAME_END,
  type FramePiece,
  ZstdFrameSplitter,
} from "./zstd_frames.ts";

export { ZstdError } from "./zstd_format.ts";

/** Input bytes per frame. */
export const ZSTD_CHUNK_SIZE = 4 << 20;
/** Chunks compressed or waiting to be written at once. */
export const ZSTD_MAX_IN_FLIGHT = 2;

export interface ZstdSinkOptions {
  /** Input bytes per frame (default 4 MiB). */
  chunkSize?: number;
  /** Compression Workers (default 2; 0 compresses on the calling thread). */
  workers?: number;
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

  constructor(inner: ByteSink, level: number, options: ZstdSinkOptions) {
    checkZstdLevel(level);
    this.#inner = inner;
    this.#chunkSize = options.chunkSize ?? ZSTD_CHUNK_SIZE;
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
        const buffer = this.#free.pop() ?? new ArrayBuffer(this.#chunkSize);
        this.#current = new Uint8Array(buffer);
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
    this.#check();
    // An empty input still makes a valid zstd stream: one empty frame.
    if (this.#filled > 0 || this.bytesIn === 0) {
      this.#current ??= new Uint8Array(this.#free.pop() ?? new ArrayBuffer(0));
      this.#dispatch();
    }
    await Promise.all(this.#inFlight.splice(0));
    this.#compressor.close();
    this.#check();
    this.#state = "closed";
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
      if (buffer.byteLength === this.#chunkSize) this.#free.push(buffer);
      if (this.#state === "failed") return;
      await this.#inner.write(frame);
      this.bytesOut += frame.length;
    }).catch((error) => this.#fail(error));
    this.#tail = done;
    this.#inFlight.push(done);
  }
}

/** Output bytes per decompressed piece. */
const INFLATE_CHUNK = 1 << 20;

/**
 * Peeks at the first 4 bytes of `stream`: a zstd stream (frame magic
 * `28 B5 2F FD`, or a skippable frame `5? 2A 4D 18`) comes back
 * decompressed, anything else comes back byte for byte as it was.
 */
export async function maybeDecompress(
  stream: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const reader = stream.getReader();
  const head: Uint8Array[] = [];
  let have = 0;
  let ended = false;
  try {
    while (have < ZSTD_MAGIC_SIZE) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      if (value.length === 0) continue;
      head.push(value);
      have += value.length;
    }
  } catch (error) {
    reader.releaseLock();
    throw error;
  }
  const first = concat(head, ZSTD_MAGIC_SIZE);
  const source = chunksOf(head, ended ? null : reader);
  if (!looksLikeZstd(first)) {
    return ReadableStream.from(source);
  }
  return ReadableStream.from(inflate(source, reader));
}

function concat(chunks: Uint8Array[], max: number): Uint8Array {
  const out = new Uint8Array(
    Math.min(max, chunks.reduce((a, c) => a + c.length, 0)),
  );
  let at = 0;
  for (const c of chunks) {
    if (at >= out.length) break;
    const part = c.subarray(0, out.length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The peeked chunks, then the rest of the reader; cancels the reader when stopped early. */
async function* chunksOf(
  head: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array> | null,
): AsyncGenerator<Uint8Array> {
  let finished = reader === null;
  try {
    yield* head;
    while (reader !== null) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    if (!finished) await reader?.cancel().catch(() => {});
  }
}

/**
 * Decompresses frame by frame, each regular frame in its own decompressor
 * (Deno's `node:zlib` zstd stream stops at the first frame boundary inside
 * a write and at skippable frames, so frames are split out first).
 */
async function* inflate(
  source: AsyncGenerator<Uint8Array>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const pieces = framePieces(source);
  try {
    while (true) {
      const first = await pieces.next();
      if (first.done) return;
      const decompressor = nodeZstd.createZstdDecompress({
        chunkSize: INFLATE_CHUNK,
      });
      const feeding = feedFrame(decompressor, first.value, pieces);
      feeding.catch((error) => decompressor.destroy(error));
      try {
        for await (const out of decompressor) {
          // A plain Uint8Array view, not the node Buffer (whose slice() shares memory).
          const bytes = out as Uint8Array;
          yield new Uint8Array(
            bytes.buffer,
            bytes.byteOffset,
            bytes.byteLength,
          );
        }
      } catch (error) {
        throw wrapError(error);
      }
      await feeding;
    }
  } finally {
    await pieces.return(undefined);
    await reader.cancel().catch(() => {});
  }
}

async function* framePieces(
  source: AsyncGenerator<Uint8Array>,
): AsyncGenerator<FramePiece> {
  const splitter = new ZstdFrameSplitter();
  for await (const chunk of source) yield* splitter.push(chunk);
  splitter.end();
}

type Decompressor = ReturnType<typeof nodeZstd.createZstdDecompress>;

/** Writes one frame's bytes into `d` (with backpressure), then ends it. */
async function feedFrame(
  d: Decompressor,
  first: FramePiece,
  pieces: AsyncGenerator<FramePiece>,
): Promise<void> {
  let piece = first;
  while (piece !== FRAME_END) {
    if (!d.write(piece)) await drained(d);
    const next = await pieces.next();
    if (next.done) {
      throw new ZstdError("Cannot decompress: the zstd stream is truncated");
    }
    piece = next.value;
  }
  d.end();
}

function drained(d: Decompressor): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      d.off("drain", done);
      d.off("close", done);
      resolve();
    };
    d.on("drain", done);
    d.on("close", done);
  });
}

function wrapError(error: unknown): Error {
  if (error instanceof ZstdError) return error;
  const message = (error instanceof Error ? error.message : String(error))
    .replace(/^zstd decompress error: /i, "");
  return new ZstdError(`Cannot decompress: ${message}`, { cause: error });
}
