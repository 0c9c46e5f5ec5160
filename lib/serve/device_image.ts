import type { RandomAccess } from "../io/random_access.ts";
import { NBD_STATE_HOLE, NBD_STATE_ZERO } from "../nbd/format.ts";
import type { BlockExtent } from "../nbd/transmission.ts";
import { CLUSTER_ABSENT, CLUSTER_ZERO } from "../vma/cluster_map.ts";
import { VMA_BLOCK_SIZE, VMA_CLUSTER_SIZE } from "../vma/format.ts";
import type { ArchiveIndex, IndexedDevice } from "../vma/index.ts";

/** One archive's view of a device; layers are looked up newest first. */
export interface DeviceLayer {
  index: ArchiveIndex;
  entry: IndexedDevice;
}

const HOLE = NBD_STATE_HOLE | NBD_STATE_ZERO;

/**
 * A device of one archive (or of a chain of layers, newest first, each
 * falling through to the next for clusters it does not hold) as a
 * read-only disk: reads assemble stored blocks and zeros, block status
 * reports zero clusters as holes. What no layer holds reads as zeros.
 */
export class DeviceImage {
  readonly size: number;
  #layers: DeviceLayer[];

  constructor(layers: DeviceLayer[], size = layers[0]!.entry.size) {
    this.#layers = layers;
    this.size = size;
  }

  /** The layer and extent holding `cluster`, or null for zeros. */
  #find(cluster: number): { layer: DeviceLayer; extent: number } | null {
    for (const layer of this.#layers) {
      const v = layer.entry.map.lookup(cluster);
      if (v === CLUSTER_ABSENT) continue;
      return v === CLUSTER_ZERO ? null : { layer, extent: v };
    }
    return null;
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    const reads = new SegmentReads();
    const end = offset + into.length;
    for (let pos = offset; pos < end;) {
      const cluster = Math.floor(pos / VMA_CLUSTER_SIZE);
      const inner = pos - cluster * VMA_CLUSTER_SIZE;
      const n = Math.min(VMA_CLUSTER_SIZE - inner, end - pos);
      const at = pos - offset;
      const found = this.#find(cluster);
      if (found === null) {
        into.fill(0, at, at + n);
        pos += n;
        continue;
      }
      const { layer, extent } = found;
      const place = await layer.index.place(
        extent,
        layer.entry.device,
        cluster,
      );
      for (let b = inner; b < inner + n;) {
        const j = Math.floor(b / VMA_BLOCK_SIZE);
        const stop = Math.min((j + 1) * VMA_BLOCK_SIZE, inner + n);
        const dest = at + (b - inner);
        if ((place.mask >>> j) & 1) {
          const rank = popcount(place.mask & ((1 << j) - 1));
          const from = place.dataOffset + rank * VMA_BLOCK_SIZE +
            (b - j * VMA_BLOCK_SIZE);
          await reads.add(layer.index.source, from, into, dest, stop - b);
        } else {
          into.fill(0, dest, dest + (stop - b));
        }
        b = stop;
      }
      pos += n;
    }
    await reads.flush();
  }

  /** `base:allocation` from `offset`: runs of data and of holes (zero clusters). */
  blockStatus(offset: number, length: number): Promise<BlockExtent[]> {
    const extents: BlockExtent[] = [];
    const end = Math.min(this.size, offset + length);
    for (let pos = offset; pos < end;) {
      const cluster = Math.floor(pos / VMA_CLUSTER_SIZE);
      const next = Math.min((cluster + 1) * VMA_CLUSTER_SIZE, this.size);
      const flags = this.#find(cluster) === null ? HOLE : 0;
      const last = extents[extents.length - 1];
      if (last !== undefined && last.flags === flags) {
        last.length += next - pos;
      } else {
        extents.push({ offset: pos, length: next - pos, flags });
      }
      pos = next;
    }
    return Promise.resolve(extents);
  }
}

function popcount(m: number): number {
  let n = 0;
  for (; m !== 0; m &= m - 1) n++;
  return n;
}

/** Joins reads that continue each other in the source and in the target. */
class SegmentReads {
  #source: RandomAccess | undefined;
  #from = 0;
  #into: Uint8Array = new Uint8Array(0);
  #dest = 0;
  #length = 0;

  async add(
    source: RandomAccess,
    from: number,
    into: Uint8Array,
    dest: number,
    length: number,
  ): Promise<void> {
    if (
      source === this.#source && into === this.#into &&
      from === this.#from + this.#length && dest === this.#dest + this.#length
    ) {
      this.#length += length;
      return;
    }
    await this.flush();
    this.#source = source;
    this.#from = from;
    this.#into = into;
    this.#dest = dest;
    this.#length = length;
  }

  async flush(): Promise<void> {
    const source = this.#source;
    if (source === undefined) return;
    this.#source = undefined;
    await source.readAt(
      this.#from,
      this.#into.subarray(this.#dest, this.#dest + this.#length),
    );
  }
}
