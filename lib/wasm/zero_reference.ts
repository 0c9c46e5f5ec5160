/** Bytes in a block, the unit of zero detection. */
export const BLOCK_SIZE = 4096;

/**
 * Plain TypeScript reference for the zero scan: bit j of the result is set
 * when block j (4 KiB) of `cluster` holds a non-zero byte. A short last
 * cluster counts its partial last block; blocks past the end stay clear.
 * The WASM scanner is tested against this function.
 */
export function nonZeroMaskReference(cluster: Uint8Array): number {
  let mask = 0;
  const words = cluster.byteOffset % 4 === 0
    ? new Uint32Array(
      cluster.buffer,
      cluster.byteOffset,
      cluster.byteLength >>> 2,
    )
    : null;
  for (let block = 0; block * BLOCK_SIZE < cluster.length; block++) {
    const start = block * BLOCK_SIZE;
    const end = Math.min(start + BLOCK_SIZE, cluster.length);
    if (!isZeroRange(cluster, words, start, end)) mask |= 1 << block;
  }
  return mask;
}

function isZeroRange(
  bytes: Uint8Array,
  words: Uint32Array | null,
  start: number,
  end: number,
): boolean {
  let i = start;
  if (words !== null) {
    const wordEnd = end & ~3;
    for (; i < wordEnd; i += 4) if (words[i >>> 2] !== 0) return false;
  }
  for (; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}
