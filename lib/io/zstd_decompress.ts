/**
 * `maybeDecompress`: turns any zstd stream (ours, or one written by the
 * `zstd` tool: one streaming frame, concatenated frames, skippable frames)
 * back into plain bytes, and leaves other streams as they are.
 */
import { nodeZstd } from "./_node_zstd.ts";
import { looksLikeZstd, ZSTD_MAGIC_SIZE, ZstdError } from "./zstd_format.ts";
import {
  FRAME_END,
  type FramePiece,
  ZstdFrameSplitter,
} from "./zstd_frames.ts";

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
 * Decompresses frame by frame, each regular frame in its own decompressor.
 * Deno 2.9.6's `node:zlib` zstd stream, fed concatenated frames, silently
 * drops every frame after the first that ends inside one write, stops at a
 * skippable frame or an empty frame, and ends without error on truncated
 * input; so `ZstdFrameSplitter` finds the frames and the truncation first.
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
