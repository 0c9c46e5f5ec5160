// AssemblyScript source of the zero-block scanner (lib/wasm/zero.ts loads it).
// Rebuild with `deno task build:wasm`, which regenerates
// lib/wasm/zero_wasm.generated.ts. The module has no imports and no heap: the
// JavaScript side owns linear memory and passes pointer and length.

/** Bytes in a block, the unit of zero detection. */
const BLOCK: usize = 4096;
/** Most bytes one call scans: 16 blocks, one 64 KiB cluster. */
const MAX_LEN: usize = 65536;

/** First byte linear memory that the JavaScript side may use. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

/**
 * The 16-bit non-zero mask of the cluster at (ptr, len): bit j is set when
 * block j (bytes 4096*j up to 4096*(j+1), or to len) holds a non-zero byte.
 * len is capped at 65536; blocks past len stay clear.
 */
export function nonZeroMask(ptr: usize, len: usize): u32 {
  if (len > MAX_LEN) len = MAX_LEN;
  let mask: u32 = 0;
  let bit: u32 = 1;
  for (let start: usize = 0; start < len; start += BLOCK) {
    const n = min(BLOCK, len - start);
    if (!isZero(ptr + start, n)) mask |= bit;
    bit <<= 1;
  }
  return mask;
}

/** Whether the n bytes at p are all zero; stops at the first non-zero. */
function isZero(p: usize, n: usize): bool {
  const end = p + n;
  const end64 = p + (n & ~(63 as usize));
  while (p < end64) {
    const a = v128.or(v128.load(p), v128.load(p, 16));
    const b = v128.or(v128.load(p, 32), v128.load(p, 48));
    if (v128.any_true(v128.or(a, b))) return false;
    p += 64;
  }
  const end16 = p + ((end - p) & ~(15 as usize));
  while (p < end16) {
    if (v128.any_true(v128.load(p))) return false;
    p += 16;
  }
  while (p < end) {
    if (load<u8>(p)) return false;
    p++;
  }
  return true;
}
