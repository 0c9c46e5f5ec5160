import { ClusterSet } from "./cluster_set.ts";

/** Clusters per page: 2^14 clusters = 1 GiB of disk. */
const PAGE_BITS = 14;
const PAGE_SIZE = 2 ** PAGE_BITS;
/** Above this many stored clusters a page is dense (4 bytes each of all 16384); below, a sorted list (6 bytes per stored cluster). */
const DENSE_AT = Math.floor((PAGE_SIZE * 4) / 6);

/** `ClusterMap.lookup()`: the cluster is in the archive and all zeros. */
export const CLUSTER_ZERO = -1;
/** `ClusterMap.lookup()`: the archive does not hold the cluster (an incremental layer). */
export const CLUSTER_ABSENT = -2;

/** Stored clusters of one page: a sorted list while few, then dense. */
interface Page {
  /** In-page cluster numbers (sorted once sealed), or null when dense. */
  ids: Uint16Array | null;
  /** Extent + 1 per listed cluster, or per in-page cluster when dense (0: not stored). */
  extents: Uint32Array;
  count: number;
  sorted: boolean;
}

/**
 * Where each cluster of one device lives in an archive: the index of the
 * extent holding it, or that it is a zero cluster, or absent. Memory follows
 * what is stored: 6 bytes per stored cluster while a 1 GiB page holds fewer
 * than 10922 of them, 4 bytes per cluster of the page beyond (at most
 * 64 KiB per GiB of disk), plus one bit per cluster seen. A 1 TiB disk
 * stored in full: 64 MiB + 2 MiB; with 1 GiB of data anywhere: ~100 KiB + 2 MiB.
 */
export class ClusterMap {
  readonly count: number;
  #pages = new Map<number, Page>();
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
    const inner = cluster % PAGE_SIZE;
    let page = this.#pages.get(index);
    if (page === undefined) {
      page = {
        ids: new Uint16Array(16),
        extents: new Uint32Array(16),
        count: 0,
        sorted: true,
      };
      this.#pages.set(index, page);
    }
    this.#present.add(cluster);
    this.stored++;
    if (page.ids === null) {
      page.extents[inner] = extent + 1;
      return;
    }
    if (page.count === page.ids.length) {
      if (page.count >= DENSE_AT) {
        const dense = new Uint32Array(PAGE_SIZE);
        for (let i = 0; i < page.count; i++) {
          dense[page.ids[i]!] = page.extents[i]!;
        }
        page.ids = null;
        page.extents = dense;
        dense[inner] = extent + 1;
        return;
      }
      const size = Math.min(page.count * 2, DENSE_AT + 1);
      const ids = new Uint16Array(size);
      ids.set(page.ids);
      const extents = new Uint32Array(size);
      extents.set(page.extents);
      page.ids = ids;
      page.extents = extents;
    }
    if (page.count > 0 && page.ids[page.count - 1]! > inner) {
      page.sorted = false;
    }
    page.ids[page.count] = inner;
    page.extents[page.count] = extent + 1;
    page.count++;
  }

  /** Records a cluster of zeros (mask 0). */
  setZero(cluster: number): void {
    this.#present.add(cluster);
  }

  /** The extent holding `cluster`, or CLUSTER_ZERO, or CLUSTER_ABSENT. */
  lookup(cluster: number): number {
    const page = this.#pages.get(Math.floor(cluster / PAGE_SIZE));
    const inner = cluster % PAGE_SIZE;
    let v = 0;
    if (page !== undefined) {
      if (page.ids === null) v = page.extents[inner]!;
      else {
        if (!page.sorted) sortPage(page);
        let lo = 0;
        let hi = page.count - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >>> 1;
          const id = page.ids[mid]!;
          if (id === inner) {
            v = page.extents[mid]!;
            break;
          }
          if (id < inner) lo = mid + 1;
          else hi = mid - 1;
        }
      }
    }
    if (v !== 0) return v - 1;
    return this.#present.has(cluster) ? CLUSTER_ZERO : CLUSTER_ABSENT;
  }

  /** Bytes of memory the locations and presence bits take. */
  get memoryBytes(): number {
    let bytes = Math.ceil(this.count / 8);
    for (const p of this.#pages.values()) {
      bytes += p.extents.byteLength + (p.ids?.byteLength ?? 0);
    }
    return bytes;
  }
}

function sortPage(page: Page): void {
  const ids = page.ids!;
  const order = Array.from({ length: page.count }, (_, i) => i)
    .sort((a, b) => ids[a]! - ids[b]!);
  const sortedIds = new Uint16Array(ids.length);
  const sortedExtents = new Uint32Array(ids.length);
  order.forEach((from, to) => {
    sortedIds[to] = ids[from]!;
    sortedExtents[to] = page.extents[from]!;
  });
  page.ids = sortedIds;
  page.extents = sortedExtents;
  page.sorted = true;
}
