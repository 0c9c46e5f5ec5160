import { ChainError } from "./errors.ts";

/**
 * A set of cluster numbers of one disk: one bit per cluster, so memory stays
 * at `clusters / 8` bytes whatever the set holds.
 */
export class ClusterSet {
  readonly size: number;
  readonly bits: Uint8Array;
  #count = 0;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ChainError(`Cannot make a cluster set of ${size} clusters`);
    }
    this.size = size;
    this.bits = new Uint8Array(Math.ceil(size / 8));
  }

  /** Clusters in the set. */
  get count(): number {
    return this.#count;
  }

  has(cluster: number): boolean {
    return (this.bits[cluster >>> 3]! & (1 << (cluster & 7))) !== 0;
  }

  /** Adds a cluster; false when it was already there. */
  add(cluster: number): boolean {
    if (!(cluster >= 0 && cluster < this.size)) {
      throw new ChainError(
        `Cannot add cluster ${cluster} to a set of ${this.size} clusters`,
      );
    }
    if (this.has(cluster)) return false;
    this.bits[cluster >>> 3]! |= 1 << (cluster & 7);
    this.#count++;
    return true;
  }

  addRange(start: number, length: number): void {
    for (let c = start; c < start + length; c++) this.add(c);
  }

  /** Runs of consecutive clusters, ascending: [start, length]. */
  *runs(): Generator<[number, number]> {
    let c = 0;
    while (c < this.size) {
      // Skip whole empty bytes fast.
      if ((c & 7) === 0 && this.bits[c >>> 3] === 0) {
        c += 8;
        continue;
      }
      if (!this.has(c)) {
        c++;
        continue;
      }
      const start = c;
      while (c < this.size && this.has(c)) c++;
      yield [start, c - start];
    }
  }

  /** The first cluster of `other` that is not in this set, or -1. */
  firstMissingOf(other: ClusterSet): number {
    for (let i = 0; i < other.bits.length; i++) {
      const missing = other.bits[i]! & ~(this.bits[i] ?? 0);
      if (missing !== 0) {
        for (let j = 0; j < 8; j++) if (missing & (1 << j)) return i * 8 + j;
      }
    }
    return -1;
  }

  /** Whether every cluster 0..size-1 is in the set. */
  isFull(): boolean {
    return this.#count === this.size;
  }
}

/**
 * Encodes a set as its runs: unsigned LEB128 pairs (gap since the end of the
 * previous run, run length). A disk's changed clusters usually come in
 * runs, so this is small; a scattered single cluster costs about 2 bytes.
 */
export function encodeRunBytes(set: ClusterSet): Uint8Array {
  const bytes: number[] = [];
  const varint = (n: number) => {
    while (n >= 0x80) {
      bytes.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    bytes.push(n);
  };
  let end = 0;
  for (const [start, length] of set.runs()) {
    varint(start - end);
    varint(length);
    end = start + length;
  }
  return new Uint8Array(bytes);
}

/**
 * Decodes `encodeRunBytes` output for a disk of `size` clusters. Untrusted
 * input: runs must be non-empty, in bounds, ascending and apart.
 */
export function decodeRunBytes(bytes: Uint8Array, size: number): ClusterSet {
  const set = new ClusterSet(size);
  let at = 0;
  const varint = (): number => {
    let n = 0;
    for (let shift = 1;; shift *= 0x80) {
      if (at >= bytes.length) {
        throw new ChainError("Cannot read cluster runs: truncated number");
      }
      const b = bytes[at++]!;
      n += (b & 0x7f) * shift;
      if (!(b & 0x80)) break;
      if (shift > 2 ** 42) {
        throw new ChainError("Cannot read cluster runs: number too large");
      }
    }
    return n;
  };
  let end = 0;
  while (at < bytes.length) {
    const start = end + varint();
    const length = varint();
    if (length === 0 || (start === end && end !== 0)) {
      throw new ChainError(
        "Cannot read cluster runs: empty or touching runs",
      );
    }
    if (start + length > size) {
      throw new ChainError(
        `Cannot read cluster runs: run ${start}+${length} past the disk's ${size} clusters`,
      );
    }
    set.addRange(start, length);
    end = start + length;
  }
  return set;
}

/** `encodeRunBytes` as base64 text (for JSON). */
export function encodeRuns(set: ClusterSet): string {
  const bytes = encodeRunBytes(set);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Decodes `encodeRuns` text for a disk of `size` clusters. */
export function decodeRuns(text: string, size: number): ClusterSet {
  let binary: string;
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error("bad");
    binary = atob(text);
  } catch {
    throw new ChainError("Cannot read cluster runs: not base64");
  }
  return decodeRunBytes(
    Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    size,
  );
}
