/**
 * The guest agent's byte stream: JSON objects, one per line, and the 0xFF
 * delimiter `guest-sync-delimited` puts before its reply so a client can
 * drop whatever stale bytes came before. Fed bytes, never a socket.
 */
import { QgaError } from "./errors.ts";

/** The byte the agent sends before a `guest-sync-delimited` reply (and a client sends to reset the agent's parser). */
export const QGA_SYNC_BYTE = 0xff;
/** Largest reply accepted. */
export const QGA_MAX_LINE = 1024 * 1024;

export class QgaLineParser {
  #buf: number[] = [];
  /** While true, every byte up to and including the next 0xFF is dropped. */
  #skipToSync = false;
  #decoder = new TextDecoder();

  /** Drop everything until the next 0xFF (call right before sending a sync). */
  expectSync(): void {
    this.#skipToSync = true;
    this.#buf = [];
  }

  push(chunk: Uint8Array): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const b of chunk) {
      if (this.#skipToSync) {
        if (b === QGA_SYNC_BYTE) this.#skipToSync = false;
        continue;
      }
      if (b === QGA_SYNC_BYTE) {
        this.#buf = [];
        continue;
      }
      if (b !== 10) {
        if (this.#buf.length >= QGA_MAX_LINE) {
          throw new QgaError(
            `Cannot read the guest agent's reply: longer than ${QGA_MAX_LINE} bytes`,
          );
        }
        this.#buf.push(b);
        continue;
      }
      const text = this.#decoder.decode(new Uint8Array(this.#buf)).trim();
      this.#buf = [];
      if (text === "") continue;
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        throw new QgaError("Cannot read the guest agent's reply: not JSON");
      }
      if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
        throw new QgaError(
          "Cannot read the guest agent's reply: not a JSON object",
        );
      }
      out.push(msg as Record<string, unknown>);
    }
    return out;
  }
}
