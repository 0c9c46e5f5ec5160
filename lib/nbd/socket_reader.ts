import { type ByteReader, EndOfStreamError } from "../io/read_exact.ts";

/** What SocketReader reads from: a Deno connection, or anything like it. */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Reads at or above this size go straight from the socket into the caller's buffer. */
const DIRECT = 64 * 1024;

/**
 * A buffered reader over a socket with exact reads and few copies: headers
 * come from one reused buffer, and large payloads are read directly into the
 * caller's memory. A short stream throws `EndOfStreamError`. Nothing is
 * allocated per read: however much passes through, memory stays flat (a
 * socket's `readable` stream allocates a new 64 KiB chunk per read).
 */
export class SocketReader implements ByteReader {
  #source: ByteSource;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #position = 0;

  constructor(source: ByteSource, bufferSize = 256 * 1024) {
    this.#source = source;
    this.#buf = new Uint8Array(bufferSize);
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#position;
  }

  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Makes at least n bytes available; false when the stream ended first. */
  async #fill(n: number): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#start + n > this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end - this.#start < n) {
      const got = await this.#source.read(this.#buf.subarray(this.#end));
      if (got === null) return false;
      this.#end += got;
    }
    return true;
  }

  /**
   * The next n bytes, without consuming them. The view is valid until the
   * next call; n must fit in the buffer.
   */
  async peek(n: number, what = "data"): Promise<Uint8Array> {
    if (!await this.#fill(n)) {
      throw new EndOfStreamError(n, this.buffered, what);
    }
    return this.#buf.subarray(this.#start, this.#start + n);
  }

  /**
   * Like peek(), but consumes the bytes. Larger reads get a fresh array;
   * with `into` (at least n bytes) they land there, and
   * `into.subarray(0, n)` is returned.
   */
  async readExact(
    n: number,
    what = "data",
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    if (into !== undefined || n > this.#buf.length) {
      const out = into === undefined ? new Uint8Array(n) : into.subarray(0, n);
      await this.readInto(out, what);
      return out;
    }
    const out = await this.peek(n, what);
    this.#start += n;
    this.#position += n;
    return out;
  }

  /** Like readExact, but returns null when the stream ends before any byte. */
  async readRecord(n: number, what = "data"): Promise<Uint8Array | null> {
    if (await this.atEnd()) return null;
    return await this.readExact(n, what);
  }

  /** Nothing to release: the owner closes the socket. */
  cancel(): Promise<void> {
    return Promise.resolve();
  }

  /** Fills `into` completely from the stream. */
  async readInto(into: Uint8Array, what = "data"): Promise<void> {
    const n = into.length;
    const take = Math.min(this.buffered, n);
    into.set(this.#buf.subarray(this.#start, this.#start + take));
    this.#start += take;
    this.#position += take;
    let done = take;
    while (done < n) {
      if (n - done < DIRECT) {
        const rest = await this.readExact(n - done, what).catch((e) => {
          throw e instanceof EndOfStreamError
            ? new EndOfStreamError(n, done + e.received, what)
            : e;
        });
        into.set(rest, done);
        return;
      }
      const got = await this.#source.read(into.subarray(done));
      if (got === null) throw new EndOfStreamError(n, done, what);
      done += got;
      this.#position += got;
    }
  }

  /** True when the stream ended with no byte left (at a message boundary). */
  async atEnd(): Promise<boolean> {
    return !await this.#fill(1);
  }
}
