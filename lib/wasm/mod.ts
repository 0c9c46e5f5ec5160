/**
 * The zero scan used by the VMA writer. `nonZeroMask(cluster)` returns the
 * 16-bit mask of 4 KiB blocks that hold a non-zero byte, scanned in
 * WebAssembly with 128-bit SIMD. `ZeroScanner` is the zero-copy form: a
 * fixed buffer in WebAssembly memory a reader fills directly.
 * `nonZeroMaskReference` is the plain TypeScript version it is tested against.
 */
export { MAX_SCAN_LENGTH, nonZeroMask, ZeroScanner } from "./zero.ts";
export { BLOCK_SIZE, nonZeroMaskReference } from "./zero_reference.ts";
