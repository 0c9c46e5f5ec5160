/**
 * The index of an archive: one pass over the extent headers (never the
 * data) recording where every cluster of every device lives, checked by
 * the same rules as the streaming reader. On a plain `.vma` file it hops
 * from header to header: 512 bytes read per extent of up to 3.7 MiB.
 */
import { EndOfStreamError } from "../io/read_exact.ts";
import type { RandomAccess } from "../io/random_access.ts";
import { ClusterMap } from "./cluster_map.ts";
import { VmaError } from "./errors.ts";
import { ExtentChecker } from "./extent_check.ts";
import {
  clusterCount,
  decodeBlockInfo,
  VMA_BLOCK_SIZE,
  VMA_BLOCKS_PER_EXTENT,
  VMA_CLUSTER_SIZE,
  VMA_EXTENT,
  VMA_EXTENT_HEADER_SIZE,
  VMA_HEADER,
} from "./format.ts";
import {
  type DecodedVmaHeader,
  decodeHeader,
  decodeHeaderSize,
  isVmstate,
  type VmaDevice,
} from "./header.ts";

/** One device of an indexed archive. */
export interface IndexedDevice {
  device: VmaDevice;
  map: ClusterMap;
  /** Bytes it can be read as: the disk size, or the vmstate clusters stored. */
  size: number;
}

/** Where a cluster's stored blocks are: archive offset of its first block, and its mask. */
export interface ClusterPlace {
  dataOffset: number;
  mask: number;
}

/**
 * An archive's header, its extents' offsets (8 bytes each) and a
 * `ClusterMap` per device; `place()` reads (and caches) extent headers to
 * find a cluster's blocks.
 */
export class ArchiveIndex {
  readonly header: DecodedVmaHeader;
  readonly devices: IndexedDevice[];
  readonly source: RandomAccess;
  #extents: Float64Array;
  #extentCount: number;
  /** Extent headers decoded, or being read (reads of one are shared). */
  #cache = new Map<number, Promise<Map<number, ClusterPlace>>>();

  constructor(
    source: RandomAccess,
    header: DecodedVmaHeader,
    devices: IndexedDevice[],
    extents: Float64Array,
    extentCount: number,
  ) {
    this.source = source;
    this.header = header;
    this.devices = devices;
    this.#extents = extents;
    this.#extentCount = extentCount;
  }

  get extentCount(): number {
    return this.#extentCount;
  }

  /** Bytes of memory the index takes (extent offsets and cluster maps). */
  get memoryBytes(): number {
    return this.#extents.byteLength +
      this.devices.reduce((a, d) => a + d.map.memoryBytes, 0);
  }

  /** Where a stored cluster's blocks are, from its extent's header. */
  async place(
    extent: number,
    device: VmaDevice,
    cluster: number,
  ): Promise<ClusterPlace> {
    let read = this.#cache.get(extent);
    if (read === undefined) {
      read = this.#readSlots(extent);
      if (this.#cache.size >= EXTENT_CACHE) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
      this.#cache.set(extent, read);
      // a failed read is not kept: the next request tries again
      read.catch(() => {
        if (this.#cache.get(extent) === read) this.#cache.delete(extent);
      });
    }
    const place = (await read).get(device.id * 2 ** 32 + cluster);
    if (place === undefined) {
      throw new VmaError(
        `Cannot read cluster ${cluster}: extent ${extent} does not hold it (the archive changed since it was indexed)`,
      );
    }
    return place;
  }

  async #readSlots(extent: number): Promise<Map<number, ClusterPlace>> {
    const offset = this.#extents[extent]!;
    const head = new Uint8Array(VMA_EXTENT_HEADER_SIZE);
    await this.source.readAt(offset, head);
    const dv = new DataView(head.buffer);
    const slots = new Map<number, ClusterPlace>();
    let block = 0;
    for (let i = 0; i < VMA_BLOCKS_PER_EXTENT; i++) {
      const info = decodeBlockInfo(
        dv.getBigUint64(VMA_EXTENT.blockInfo + 8 * i),
      );
      if (info.devId === 0) continue;
      slots.set(info.devId * 2 ** 32 + info.cluster, {
        dataOffset: offset + VMA_EXTENT_HEADER_SIZE + block * VMA_BLOCK_SIZE,
        mask: info.mask,
      });
      for (let m = info.mask; m !== 0; m &= m - 1) block++;
    }
    return slots;
  }
}

/** Extent headers kept decoded (a few hundred KiB at most). */
const EXTENT_CACHE = 1024;

/**
 * Indexes an archive: reads its header, then each extent header in turn,
 * checking every rule (checksums, uuid, duplicates, bounds, block counts,
 * vmstate order, coverage). Errors are one-line `VmaError`s.
 */
export async function indexArchive(
  source: RandomAccess,
  options: {
    signal?: AbortSignal;
    /** Disks that hold only some clusters (an incremental): their bits, from the header. */
    expected?: (header: DecodedVmaHeader) => Map<number, Uint8Array>;
  } = {},
): Promise<ArchiveIndex> {
  const header = await readHeader(source);
  const checker = new ExtentChecker(header);
  checker.checkReadable();
  for (const [devId, bits] of options.expected?.(header) ?? []) {
    checker.expectClusters(devId, bits);
  }
  const maps = new Map<number, ClusterMap>(
    header.devices.map((d) => [d.id, new ClusterMap(clusterCount(d.size))]),
  );
  let extents = new Float64Array(1024);
  let count = 0;
  const head = new Uint8Array(VMA_EXTENT_HEADER_SIZE);
  for (let offset = header.headerSize; offset < source.size;) {
    if ((count & 1023) === 0) options.signal?.throwIfAborted();
    const where = `extent ${count} (archive offset ${offset})`;
    if (source.size - offset < VMA_EXTENT_HEADER_SIZE) {
      throw new VmaError(
        `Cannot read ${where}: archive ends ${
          source.size - offset
        } bytes into its header`,
      );
    }
    await source.readAt(offset, head);
    const { slots, blockCount } = checker.check(head, where);
    const end = offset + VMA_EXTENT_HEADER_SIZE + blockCount * VMA_BLOCK_SIZE;
    if (end > source.size) {
      throw new VmaError(
        `Cannot read ${where}: short vma extent (${
          source.size - offset - VMA_EXTENT_HEADER_SIZE
        } < ${blockCount * VMA_BLOCK_SIZE} data bytes)`,
      );
    }
    if (count === extents.length) {
      const bigger = new Float64Array(extents.length * 2);
      bigger.set(extents);
      extents = bigger;
    }
    extents[count] = offset;
    for (const slot of slots) {
      const map = maps.get(slot.device.id)!;
      if (slot.mask === 0) map.setZero(slot.cluster);
      else map.setStored(slot.cluster, count);
    }
    count++;
    offset = end;
  }
  checker.checkComplete();
  const devices = header.devices.map((device) => ({
    device,
    map: maps.get(device.id)!,
    size: isVmstate(device)
      ? checker.vmstateClusters(device.id) * VMA_CLUSTER_SIZE
      : device.size,
  }));
  return new ArchiveIndex(source, header, devices, extents, count);
}

async function readHeader(source: RandomAccess): Promise<DecodedVmaHeader> {
  try {
    const first = new Uint8Array(VMA_HEADER.headerSize + 4);
    await source.readAt(0, first);
    const bytes = new Uint8Array(decodeHeaderSize(first));
    await source.readAt(0, bytes);
    return decodeHeader(bytes);
  } catch (error) {
    if (error instanceof EndOfStreamError) {
      throw new VmaError(
        `Cannot read VMA header: archive ends after ${source.size} bytes`,
        { cause: error },
      );
    }
    throw error;
  }
}
