/**
 * zstd for archives: `zstdSink` compresses what a writer produces into a
 * sequence of independent frames (one per ~4 MiB chunk, compressed in
 * Workers), and `maybeDecompress` turns any zstd stream back into plain
 * bytes, leaving other streams as they are.
 *
 * Engine: Deno's built-in `node:zlib` zstd, chosen by measurement
 * (`deno task bench wasm`, 1 GiB of disk-like data, several runs): L1
 * 634-871 MB/s and L3 317-589 MB/s in two Workers, against 338-464 and
 * 215-239 MB/s for @bokuweb/zstd-wasm at the same ratio. It needs no file
 * at run time (the zstd-wasm npm entry reads a `.wasm` file, which the
 * single-file bundle cannot carry), and it streams, which decompressing a
 * `zstd`-tool archive (one frame, no content size) needs. Two Workers (a
 * blob-URL module, so `deno bundle` keeps it) make `createArchive` with
 * zstd 1.3-1.4x faster than compressing on the main thread, as fast as
 * `zstd -T1` of the raw image (L1 780 vs 801 MB/s, L3 532-612 vs 542).
 */
export {
  ZSTD_CHUNK_SIZE,
  ZSTD_MAX_IN_FLIGHT,
  type ZstdSink,
  zstdSink,
  type ZstdSinkOptions,
} from "./zstd_sink.ts";
export { maybeDecompress } from "./zstd_decompress.ts";
export { ZstdError } from "./zstd_format.ts";
