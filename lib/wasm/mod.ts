/**
 * The zero scan used by the VMA writer. `nonZeroMask(cluster)` returns the
 * 16-bit mask of 4 KiB blocks that hold a non-zero byte.
 *
 * (Until the WASM scanner lands this is the TypeScript reference.)
 */
export { nonZeroMaskReference as nonZeroMask } from "./zero_reference.ts";
