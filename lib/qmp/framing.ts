import { QmpConnectionError } from "./errors.ts";

/** Largest QMP message accepted (query-qmp-schema is ~200 KiB). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Splits the QMP byte stream into JSON objects, one per line. Fed bytes,
 * never a socket: `push(chunk)` returns the complete messages so far.
 */
export class QmpLineParser {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #decoder = new TextDecoder();

  push(chunk: Uint8Array): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    let start = 0;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      const line = this.#take(chunk.subarray(start, i));
      start = i + 1;
      const text = this.#decoder.decode(line).trim();
      if (text === "") continue;
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        throw new QmpConnectionError(
          `Cannot parse QMP message: not JSON: ${text.slice(0, 80)}`,
        );
      }
      if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
        throw new QmpConnectionError(
          `Cannot parse QMP message: not an object: ${text.slice(0, 80)}`,
        );
      }
      out.push(msg as Record<string, unknown>);
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      this.#pendingBytes += rest.length;
      if (this.#pendingBytes > MAX_MESSAGE_BYTES) {
        throw new QmpConnectionError(
          `Cannot parse QMP message: longer than ${MAX_MESSAGE_BYTES} bytes`,
        );
      }
      this.#pending.push(rest.slice());
    }
    return out;
  }

  #take(tail: Uint8Array): Uint8Array {
    if (this.#pending.length === 0) return tail;
    const all = new Uint8Array(this.#pendingBytes + tail.length);
    let at = 0;
    for (const p of this.#pending) {
      all.set(p, at);
      at += p.length;
    }
    all.set(tail, at);
    this.#pending = [];
    this.#pendingBytes = 0;
    return all;
  }
}
