/** The stream ended before the expected number of bytes arrived. */
export class EndOfStreamError extends Error {
  override name = "EndOfStreamError";
  constructor(
    readonly expected: number,
    readonly received: number,
    what = "data",
  ) {
    super(
      `Cannot read ${what}: stream ended after ${received} of ${expected} bytes`,
    );
  }
}

/**
 * Exact reads from a byte source. `readExact(n)` either returns n bytes or
 * throws `EndOfStreamError`. A returned view (without `into`) is valid until
 * the next call.
 */
export interface ByteReader {
  /** Bytes consumed so far (for error messages). */
  readonly position: number;
  readExact(n: number, what?: string, into?: Uint8Array): Promise<Uint8Array>;
  /** Like readExact, but returns null when the source ends before any byte. */
  readRecord(n: number, what?: string): Promise<Uint8Array | null>;
  atEnd(): Promise<boolean>;
  cancel(): Promise<void>;
}

/**
 * A buffered reader over a `ReadableStream<Uint8Array>` with exact reads.
 * `readExact(n)` either returns n bytes or throws `EndOfStreamError`;
 * `atEnd()` tells whether the stream is exhausted at a record boundary.
 */
export class ExactReader implements ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #done = false;
  /** Bytes consumed so far (for error messages). */
  position = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async #fill(n: number): Promise<void> {
    while (this.#buffered < n && !this.#done) {
      const { value, done } = await this.#reader.read();
      if (done) {
        this.#done = true;
        break;
      }
      if (value.length > 0) {
        this.#chunks.push(value);
        this.#buffered += value.length;
      }
    }
  }

  /**
   * Returns exactly n bytes, or throws. Without `into` the result is a view
   * of the received data or a fresh array; with `into` (at least n bytes) the
   * bytes are copied there and `into.subarray(0, n)` is returned.
   */
  async readExact(
    n: number,
    what?: string,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    await this.#fill(n);
    if (this.#buffered < n) {
      const received = this.#buffered;
      this.position += received;
      this.#chunks = [];
      this.#buffered = 0;
      throw new EndOfStreamError(n, received, what);
    }
    this.position += n;
    const first = this.#chunks[0]!;
    if (first.length >= n && into === undefined) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return out;
    }
    const out = into === undefined ? new Uint8Array(n) : into.subarray(0, n);
    let done = 0;
    while (done < n) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, n - done);
      out.set(chunk.subarray(0, take), done);
      done += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    return out;
  }

  /** Like readExact, but returns null when the stream ends before any byte. */
  async readRecord(n: number, what?: string): Promise<Uint8Array | null> {
    if (await this.atEnd()) return null;
    return await this.readExact(n, what);
  }

  async atEnd(): Promise<boolean> {
    await this.#fill(1);
    return this.#buffered === 0;
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
