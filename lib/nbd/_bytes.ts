/** Byte helpers shared by the NBD codecs. */
import { NbdError } from "./errors.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** A DataView over exactly these bytes. */
export function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function utf8(text: string): Uint8Array {
  return enc.encode(text);
}

/** Strict UTF-8 decoding; `what` names the field in the error. */
export function fromUtf8(bytes: Uint8Array, what: string): string {
  try {
    return dec.decode(bytes);
  } catch {
    throw new NbdError(`Cannot read NBD ${what}: not UTF-8`);
  }
}

/** Throws unless `bytes` holds at least `n` bytes. */
export function need(bytes: Uint8Array, n: number, what: string): void {
  if (bytes.length < n) {
    throw new NbdError(
      `Cannot read NBD ${what}: ${bytes.length} bytes, need ${n}`,
    );
  }
}

/** A 64-bit field as a safe integer. */
export function getSafe64(dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NbdError(`Cannot read NBD ${what}: ${v} is too large`);
  }
  return Number(v);
}
