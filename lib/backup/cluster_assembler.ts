import type { NbdExportHandler } from "../nbd/server.ts";
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import { VMA_MAX_RUN } from "../vma/writer.ts";

/** Where whole clusters go: the VMA writer. */
export interface ClusterSink {
  /**
   * `count` (1 to `VMA_MAX_RUN`) consecutive clusters from `first` in one call (see
   * `VmaWriter.writeClusters`): bit i of `zeroMask`, or a null `data`,
   * makes cluster i zeros.
   */
  writeClusters(
    devId: number,
    first: number,
    count: number,
    data: Uint8Array | null,
    zeroMask?: number,
  ): Promise<void>;
}

const SECTOR = 512;
const SECTORS_PER_CLUSTER = VMA_CLUSTER_SIZE / SECTOR;

interface Partial {
  /** Allocated when the first data piece arrives; zero-only clusters need none. */
  data: Uint8Array | null;
  covered: Uint8Array;
  count: number;
}

/** A piece written into a cluster that already had that range. */
export class ClusterAssemblyError extends Error {
  override name = "ClusterAssemblyError";
}

/**
 * Turns the writes QEMU's backup job sends for one disk (out of order, up
 * to 1 MiB, sometimes a piece of a cluster) into clusters stored exactly
 * once, when whole: the whole clusters a write covers in one
 * `writeClusters()` call, a cluster completed from pieces as a run of one.
 * Zero ranges (WRITE_ZEROES) become zero clusters, never data. Only pieces
 * of clusters still incomplete are held in memory.
 */
export class ClusterAssembler implements NbdExportHandler {
  readonly devId: number;
  readonly size: number;
  #sink: ClusterSink;
  #stored: Uint8Array;
  #storedCount = 0;
  #clusters: number;
  #partial = new Map<number, Partial>();
  /** Bytes received (data and zeros), for progress. */
  received = 0;

  constructor(options: { devId: number; size: number; sink: ClusterSink }) {
    this.devId = options.devId;
    this.size = options.size;
    this.#sink = options.sink;
    this.#clusters = Math.ceil(options.size / VMA_CLUSTER_SIZE);
    this.#stored = new Uint8Array(Math.ceil(this.#clusters / 8));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.#accept(offset, data.length, data);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.#accept(offset, length, null);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Whether every cluster of the disk was stored. */
  isComplete(): boolean {
    return this.#storedCount === this.#clusters;
  }

  /** Clusters not stored yet (at most `limit` of them). */
  missingClusters(limit = 10): number[] {
    const out = [];
    for (let c = 0; c < this.#clusters && out.length < limit; c++) {
      if (!this.#isStored(c)) out.push(c);
    }
    return out;
  }

  #isStored(c: number): boolean {
    return (this.#stored[c >>> 3]! & (1 << (c & 7))) !== 0;
  }

  #markStored(c: number): void {
    if (this.#isStored(c)) throw this.#twice(c);
    this.#stored[c >>> 3]! |= 1 << (c & 7);
    this.#storedCount++;
  }

  #twice(c: number): ClusterAssemblyError {
    return new ClusterAssemblyError(
      `Cannot store cluster ${c} of device ${this.devId}: written twice`,
    );
  }

  async #accept(
    offset: number,
    length: number,
    data: Uint8Array | null,
  ): Promise<void> {
    const end = offset + length;
    if (
      offset % SECTOR !== 0 || (end % SECTOR !== 0 && end !== this.size) ||
      end > this.size
    ) {
      throw new ClusterAssemblyError(
        `Cannot store ${length} bytes at ${offset} of device ${this.devId}: not whole 512-byte sectors inside the disk`,
      );
    }
    this.received += length;
    const pending: Promise<void>[] = [];
    // Whole clusters of this write go to the sink in runs of up to VMA_MAX_RUN, one call each.
    let runFirst = 0;
    let runCount = 0;
    let runFrom = 0;
    let runTo = 0;
    const endRun = () => {
      if (runCount === 0) return;
      pending.push(this.#sink.writeClusters(
        this.devId,
        runFirst,
        runCount,
        data === null ? null : data.subarray(runFrom, runTo),
      ));
      runCount = 0;
    };
    for (let pos = offset; pos < end;) {
      const c = Math.floor(pos / VMA_CLUSTER_SIZE);
      const cStart = c * VMA_CLUSTER_SIZE;
      const cEnd = Math.min(cStart + VMA_CLUSTER_SIZE, this.size);
      const pieceEnd = Math.min(cEnd, end);
      if (pos === cStart && pieceEnd === cEnd && !this.#partial.has(c)) {
        this.#markStored(c);
        if (runCount === 0) {
          runFirst = c;
          runFrom = pos - offset;
        }
        runCount++;
        runTo = pieceEnd - offset;
        if (runCount === VMA_MAX_RUN) endRun();
      } else {
        endRun();
        const whole = this.#addPiece(
          c,
          pos - cStart,
          pieceEnd - pos,
          data === null ? null : data.subarray(pos - offset, pieceEnd - offset),
          cEnd - cStart,
        );
        if (whole !== undefined) {
          pending.push(this.#sink.writeClusters(this.devId, c, 1, whole));
        }
      }
      pos = pieceEnd;
    }
    endRun();
    if (pending.length === 1) await pending[0];
    else await Promise.all(pending);
  }

  /** Adds a piece; returns the cluster's bytes (or null for zeros) once it is whole. */
  #addPiece(
    c: number,
    at: number,
    length: number,
    piece: Uint8Array | null,
    valid: number,
  ): Uint8Array | null | undefined {
    if (this.#isStored(c)) throw this.#twice(c);
    let p = this.#partial.get(c);
    if (p === undefined) {
      p = {
        data: null,
        covered: new Uint8Array(SECTORS_PER_CLUSTER),
        count: 0,
      };
      this.#partial.set(c, p);
    }
    const first = at / SECTOR;
    const last = Math.ceil((at + length) / SECTOR);
    for (let s = first; s < last; s++) if (p.covered[s]) throw this.#twice(c);
    p.covered.fill(1, first, last);
    p.count += last - first;
    if (piece !== null) {
      p.data ??= new Uint8Array(VMA_CLUSTER_SIZE);
      p.data.set(piece, at);
    }
    if (p.count < Math.ceil(valid / SECTOR)) return undefined;
    this.#partial.delete(c);
    this.#markStored(c);
    return p.data === null ? null : p.data.subarray(0, valid);
  }
}
