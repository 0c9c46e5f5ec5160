/**
 * zstd for archives: `zstdSink` compresses what a writer produces into a
 * sequence of independent frames (one per ~4 MiB chunk, compressed in
 * Workers), and `maybeDecompress` turns any zstd stream back into plain
 * bytes, leaving other streams as they are. Both use Deno's built-in
 * `node:zlib` zstd, so nothing but the program itself is needed at run time.
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
