import { ClusterSet } from "./cluster_set.ts";

/** Clusters per page of locations: 2^14 clusters = 1 GiB of disk, 64 KiB of memory. */
const PAGE_BITS = 14;
const PAGE_SIZE = 2 ** PAGE_BITS;

/** `ClusterMap.lookup()`: the cluster is in the archive and all zeros. */
export const CLUSTER_ZERO = -1;
/** `ClusterMap.lookup()`: the archive does not hold the cluster (an incremental layer). */
export const CLUSTER_ABSENT = -2;

/**
 * Where each cluster of one device lives in an archive: the index of the
 * extent holding it (4 bytes per stored cluster, in pages allocated on first
 * use), or that it is a zero cluster (one bit), or absent. A 1 TiB disk,
 * fully stored, costs 64 MiB; zero clusters cost a bit each.
 */
export class ClusterMap {
  readonly count: number;
  #pages = new Map<number, Uint32Array>();
  #present: ClusterSet;
  /** Clusters with data (a mask other than 0). */
  stored = 0;

  constructor(count: number) {
    this.count = count;
    this.#present = new ClusterSet(count);
  }

  /** Records a stored cluster in extent `extent`. */
  setStored(cluster: number, extent: number): void {
    const index = Math.floor(cluster / PAGE_SIZE);
    let page = this.#pages.get(index);
    if (page === undefined) {
      page = new Uint32Array(PAGE_SIZE);
      this.#pages.set(index, page);
    }
    page[cluster % PAGE_SIZE] = extent + 1;
    this.#present.add(cluster);
    this.stored++;
  }

  /** Records a cluster of zeros (mask 0). */
  setZero(cluster: number): void {
    this.#present.add(cluster);
  }

  /** The extent holding `cluster`, or CLUSTER_ZERO, or CLUSTER_ABSENT. */
  lookup(cluster: number): number {
    const page = this.#pages.get(Math.floor(cluster / PAGE_SIZE));
    const v = page === undefined ? 0 : page[cluster % PAGE_SIZE]!;
    if (v !== 0) return v - 1;
    return this.#present.has(cluster) ? CLUSTER_ZERO : CLUSTER_ABSENT;
  }

  /** Bytes of memory the locations take (pages; the presence bits are 1/32 of a page each). */
  get memoryBytes(): number {
    return this.#pages.size * PAGE_SIZE * 4 +
      Math.ceil(this.count / 8);
  }
}
