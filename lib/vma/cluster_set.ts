/**
 * Which clusters of a device were seen, in chunks allocated on first use: a
 * header may record any size up to 2^48 bytes (2^32 clusters), and memory
 * must follow what the archive holds, not what it claims.
 */
const CHUNK_BITS = 16; // clusters per chunk: 2^16 (8 KiB of bits)

export class ClusterSet {
  readonly count: number;
  #chunks = new Map<number, Uint8Array>();

  constructor(count: number) {
    this.count = count;
  }

  has(cluster: number): boolean {
    const chunk = this.#chunks.get(Math.floor(cluster / 2 ** CHUNK_BITS));
    if (chunk === undefined) return false;
    const bit = cluster % 2 ** CHUNK_BITS;
    return (chunk[bit >>> 3]! & (1 << (bit & 7))) !== 0;
  }

  add(cluster: number): void {
    const index = Math.floor(cluster / 2 ** CHUNK_BITS);
    let chunk = this.#chunks.get(index);
    if (chunk === undefined) {
      chunk = new Uint8Array(2 ** CHUNK_BITS / 8);
      this.#chunks.set(index, chunk);
    }
    const bit = cluster % 2 ** CHUNK_BITS;
    chunk[bit >>> 3]! |= 1 << (bit & 7);
  }

  /** The first cluster below `count` not seen, or -1. */
  firstMissing(): number {
    for (let c = 0; c < this.count;) {
      const index = Math.floor(c / 2 ** CHUNK_BITS);
      const chunk = this.#chunks.get(index);
      if (chunk === undefined) return c;
      const end = Math.min(this.count, (index + 1) * 2 ** CHUNK_BITS);
      for (; c < end; c++) {
        const bit = c % 2 ** CHUNK_BITS;
        if (!(chunk[bit >>> 3]! & (1 << (bit & 7)))) return c;
      }
    }
    return -1;
  }
}
