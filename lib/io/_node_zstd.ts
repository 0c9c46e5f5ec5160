/**
 * Types for the zstd part of Deno's built-in `node:zlib` (Node 22.15+ API);
 * the pinned @types/node 20 does not declare it yet.
 */
import * as zlib from "node:zlib";
import type { Transform } from "node:stream";

export interface ZstdOptions {
  chunkSize?: number;
  params?: Record<number, number>;
  /** Decompression fails rather than produce more than this many bytes. */
  maxOutputLength?: number;
}

interface NodeZstd {
  zstdCompressSync(data: Uint8Array, options?: ZstdOptions): Uint8Array;
  zstdDecompressSync(data: Uint8Array, options?: ZstdOptions): Uint8Array;
  createZstdDecompress(options?: ZstdOptions): Transform;
  createZstdCompress(options?: ZstdOptions): Transform;
  constants: {
    ZSTD_c_compressionLevel: number;
    ZSTD_c_checksumFlag: number;
  };
}

export const nodeZstd = zlib as unknown as NodeZstd;
