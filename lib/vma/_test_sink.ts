import { concatBytes } from "../io/concat.ts";

/** An in-memory ByteSink for tests; `stream()` replays it in odd chunk sizes. */
export class MemorySink {
  chunks: Uint8Array[] = [];
  write(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk.slice());
    return Promise.resolve();
  }
  bytes(): Uint8Array {
    return concatBytes(this.chunks);
  }
  stream(): ReadableStream<Uint8Array> {
    const bytes = this.bytes();
    return new ReadableStream({
      start(c) {
        // Odd chunk sizes exercise the reader's buffering.
        for (let i = 0; i < bytes.length; i += 100_003) {
          c.enqueue(bytes.slice(i, i + 100_003));
        }
        c.close();
      },
    });
  }
}
