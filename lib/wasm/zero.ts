/**
 * The WebAssembly zero scanner (source `wasm/zero.ts`, 128-bit SIMD). The
 * module is instantiated synchronously on first use; JavaScript owns its
 * linear memory and hands out fixed regions, one per `ZeroScanner`. Each
 * call passes a pointer and a length; nothing is allocated per call.
 */
import { ZERO_WASM_BASE64 } from "./zero_wasm.generated.ts";
import { BLOCK_SIZE } from "./zero_reference.ts";

/** Most bytes one scan covers: one 64 KiB cluster of 16 blocks. */
export const MAX_SCAN_LENGTH = 16 * BLOCK_SIZE;

const PAGE = 65536;

interface ZeroExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  nonZeroMask(ptr: number, len: number): number;
}

/** The compiled module (exposed for the no-imports test). */
export function zeroWasmModule(): WebAssembly.Module {
  return loaded().module;
}

interface Loaded {
  module: WebAssembly.Module;
  exports: ZeroExports;
  /** Next free byte of linear memory (16-aligned). */
  next: number;
}

let state: Loaded | undefined;

function loaded(): Loaded {
  if (state === undefined) {
    const bytes = Uint8Array.from(
      atob(ZERO_WASM_BASE64),
      (c) => c.charCodeAt(0),
    );
    const module = new WebAssembly.Module(bytes);
    const exports = new WebAssembly.Instance(module, {})
      .exports as unknown as ZeroExports;
    state = { module, exports, next: exports.heapBase() };
  }
  return state;
}

/** Reserves `bytes` of linear memory for good; returns the address. */
function reserve(bytes: number): number {
  const s = loaded();
  const ptr = s.next;
  const end = ptr + Math.ceil(bytes / 16) * 16;
  const have = s.exports.memory.buffer.byteLength;
  if (end > have) s.exports.memory.grow(Math.ceil((end - have) / PAGE));
  s.next = end;
  return ptr;
}

/**
 * A fixed buffer in WebAssembly memory and the scan over it. Fill `buffer`
 * directly (for example `file.read(scanner.buffer.subarray(...))`), then ask
 * `maskAt(offset, length)` per cluster: no copy. `mask(cluster)` copies a
 * cluster in first (≈ free per 64 KiB) for data that lives elsewhere.
 */
export class ZeroScanner {
  readonly capacity: number;
  #ptr: number;
  #exports: ZeroExports;
  #view: Uint8Array;

  constructor(capacity: number = MAX_SCAN_LENGTH) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 30) {
      throw new RangeError(
        `Cannot create zero scanner: capacity ${capacity} is not 1..2^30`,
      );
    }
    this.capacity = capacity;
    this.#ptr = reserve(capacity);
    this.#exports = loaded().exports;
    this.#view = this.#makeView();
  }

  #makeView(): Uint8Array {
    return new Uint8Array(
      this.#exports.memory.buffer,
      this.#ptr,
      this.capacity,
    );
  }

  /**
   * The scanner's bytes in WebAssembly memory. Memory grows when another
   * scanner is created, which detaches old views: take this view again
   * after creating a scanner rather than keeping it.
   */
  get buffer(): Uint8Array {
    if (this.#view.buffer !== this.#exports.memory.buffer) {
      this.#view = this.#makeView();
    }
    return this.#view;
  }

  /** The non-zero mask of `buffer[offset, offset + length)`, length ≤ 65536. */
  maskAt(offset: number, length: number): number {
    if (
      !(offset >= 0 && length >= 0 && length <= MAX_SCAN_LENGTH &&
        offset + length <= this.capacity)
    ) {
      throw new RangeError(
        `Cannot scan ${length} bytes at ${offset}: the scanner holds ${this.capacity} bytes and one scan covers at most ${MAX_SCAN_LENGTH}`,
      );
    }
    return this.#exports.nonZeroMask(this.#ptr + offset, length);
  }

  /** Copies `cluster` (≤ capacity and ≤ 65536 bytes) in and scans it. */
  mask(cluster: Uint8Array): number {
    if (cluster.length > this.capacity || cluster.length > MAX_SCAN_LENGTH) {
      throw new RangeError(
        `Cannot scan a cluster of ${cluster.length} bytes: at most ${
          Math.min(this.capacity, MAX_SCAN_LENGTH)
        }`,
      );
    }
    this.buffer.set(cluster);
    return this.#exports.nonZeroMask(this.#ptr, cluster.length);
  }
}

let shared: ZeroScanner | undefined;

/**
 * The 16-bit mask of 4 KiB blocks of `cluster` (≤ 65536 bytes) that hold a
 * non-zero byte: bit j for block j. Copies into a shared 64 KiB staging
 * buffer in WebAssembly memory and scans it with SIMD.
 */
export function nonZeroMask(cluster: Uint8Array): number {
  shared ??= new ZeroScanner(MAX_SCAN_LENGTH);
  return shared.mask(cluster);
}
