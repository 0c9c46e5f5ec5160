import { type ByteReader, EndOfStreamError } from "./read_exact.ts";

/** Bytes asked of the file per read: few calls, one buffer reused. */
const READ_SIZE = 4 << 20;

/**
 * A `ByteReader` over an open file, reading large pieces into one reused
 * buffer (a `ReadableStream` of a file delivers 64 KiB chunks in fresh
 * arrays, one async call each). Views it returns are valid until the next
 * call. Closes the file on `cancel()`.
 */
export class FileReader implements ByteReader {
  #file: Deno.FsFile;
  #buf = new Uint8Array(READ_SIZE);
  #start = 0;
  #end = 0;
  #eof = false;
  #closed = false;
  position = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Makes `n` bytes available at #start, unless the file ends first. */
  async #fill(n: number): Promise<void> {
    if (this.#end - this.#start >= n || this.#eof) return;
    if (this.#buf.length - this.#start < n) {
      const size = Math.max(this.#buf.length, n);
      const kept = this.#buf.subarray(this.#start, this.#end);
      if (size > this.#buf.length) {
        const bigger = new Uint8Array(size);
        bigger.set(kept);
        this.#buf = bigger;
      } else this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end - this.#start < n) {
      const got = await this.#file.read(this.#buf.subarray(this.#end));
      if (got === null) {
        this.#eof = true;
        return;
      }
      this.#end += got;
    }
  }

  async readExact(
    n: number,
    what?: string,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    await this.#fill(n);
    const have = this.#end - this.#start;
    if (have < n) {
      this.position += have;
      this.#start = this.#end;
      throw new EndOfStreamError(n, have, what);
    }
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    this.position += n;
    if (into === undefined) return out;
    into.set(out);
    return into.subarray(0, n);
  }

  async readRecord(n: number, what?: string): Promise<Uint8Array | null> {
    if (await this.atEnd()) return null;
    return await this.readExact(n, what);
  }

  async atEnd(): Promise<boolean> {
    await this.#fill(1);
    return this.#end === this.#start;
  }

  cancel(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#file.close();
      } catch { /* already closed */ }
    }
    return Promise.resolve();
  }
}
