/** An in-memory ByteSink for tests; `stream()` replays it in odd chunk sizes. */
export class MemorySink {
  chunks: Uint8Array[] = [];
  write(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk.slice());
    return Promise.resolve();
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
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
