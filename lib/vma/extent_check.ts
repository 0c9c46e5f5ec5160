import { VmaError } from "./errors.ts";
import {
  clusterCount,
  decodeBlockInfo,
  maskBlockCount,
  VMA_BLOCK_SIZE,
  VMA_BLOCKS_PER_EXTENT,
  VMA_CLUSTER_SIZE,
  VMA_EXTENT,
  VMA_EXTENT_MAGIC,
  VMA_MD5_SIZE,
  VMA_UUID_SIZE,
} from "./format.ts";
import { ClusterSet } from "./cluster_set.ts";
import {
  checkDeviceSizes,
  isVmstate,
  md5,
  type VmaDevice,
  type VmaHeader,
} from "./header.ts";
import { printable } from "../text/escape.ts";

/** One used slot of an extent header. */
export interface ExtentSlot {
  device: VmaDevice;
  cluster: number;
  /** Bit j set: block j is stored; clear: block j is zeros. */
  mask: number;
}

/** A disk cluster never seen, found at the end of the archive. */
export interface MissingCluster {
  device: VmaDevice;
  cluster: number;
}

/**
 * Checks extent headers against the archive header and every rule of the
 * format, remembering what it saw (a bit per disk cluster, the next vmstate
 * cluster), so duplicates, order and coverage are enforced across extents.
 * Shared by the streaming reader and the index.
 */
export class ExtentChecker {
  readonly header: VmaHeader;
  #devices: Map<number, VmaDevice>;
  #seen = new Map<number, ClusterSet>();
  /** Disks whose archive holds only some clusters: one bit per cluster it must hold. */
  #expected = new Map<number, Uint8Array>();
  #nextVmstate = new Map<number, number>();

  constructor(header: VmaHeader) {
    this.header = header;
    this.#devices = new Map(header.devices.map((d) => [d.id, d]));
  }

  /**
   * Throws for a device whose data cannot be read (a size past what a VMA
   * archive can address); listing the header needs no such check. Every
   * other method calls it first.
   */
  checkReadable(): void {
    if (this.#seen.size + this.#nextVmstate.size > 0) return;
    checkDeviceSizes(this.header);
    for (const dev of this.header.devices) {
      if (isVmstate(dev)) this.#nextVmstate.set(dev.id, 0);
      else this.#seen.set(dev.id, new ClusterSet(clusterCount(dev.size)));
    }
  }

  /**
   * Declares that a disk holds exactly the clusters whose bits are set (an
   * incremental archive): any other cluster is an error, and completeness
   * is checked against this set instead of the whole disk.
   */
  expectClusters(devId: number, bits: Uint8Array): void {
    this.checkReadable();
    const seen = this.#seen.get(devId);
    if (seen === undefined || bits.length !== Math.ceil(seen.count / 8)) {
      throw new VmaError(
        `Cannot expect clusters of device ${devId}: no such disk or wrong set size`,
      );
    }
    this.#expected.set(devId, bits);
  }

  /** Clusters of the vmstate device `id` seen so far. */
  vmstateClusters(id: number): number {
    return this.#nextVmstate.get(id) ?? 0;
  }

  /**
   * Checks a 512-byte extent header (`where` names it in errors) and returns
   * its used slots and the number of data blocks that follow it.
   */
  check(
    head: Uint8Array,
    where: string,
  ): { slots: ExtentSlot[]; blockCount: number } {
    this.checkReadable();
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (dv.getUint32(VMA_EXTENT.magic) !== VMA_EXTENT_MAGIC) {
      throw new VmaError(`Cannot read ${where}: wrong extent magic`);
    }
    const copy = new Uint8Array(head); // a copy, even when given a node Buffer
    copy.fill(0, VMA_EXTENT.md5sum, VMA_EXTENT.md5sum + VMA_MD5_SIZE);
    const sum = md5(copy);
    for (let i = 0; i < VMA_MD5_SIZE; i++) {
      if (sum[i] !== head[VMA_EXTENT.md5sum + i]) {
        throw new VmaError(
          `Cannot read ${where}: wrong vma extent header chechsum`,
        );
      }
    }
    if (dv.getUint16(VMA_EXTENT.reserved) !== 0) {
      throw new VmaError(`Cannot read ${where}: reserved field is not zero`);
    }
    for (let i = 0; i < VMA_UUID_SIZE; i++) {
      if (head[VMA_EXTENT.uuid + i] !== this.header.uuid[i]) {
        throw new VmaError(`Cannot read ${where}: wrong vma extent uuid`);
      }
    }
    const blockCount = dv.getUint16(VMA_EXTENT.blockCount);
    const slots: ExtentSlot[] = [];
    let blocks = 0;
    for (let i = 0; i < VMA_BLOCKS_PER_EXTENT; i++) {
      const info = decodeBlockInfo(
        dv.getBigUint64(VMA_EXTENT.blockInfo + 8 * i),
      );
      if (info.devId === 0) continue;
      const device = this.#devices.get(info.devId);
      const at = `${where}, slot ${i}, cluster ${info.cluster}`;
      if (device === undefined) {
        throw new VmaError(
          `Cannot read ${at}: no device ${info.devId} in the header`,
        );
      }
      if (isVmstate(device)) this.#checkVmstate(device, info.cluster, at);
      else this.#checkDisk(device, info.cluster, info.mask, at);
      blocks += maskBlockCount(info.mask);
      slots.push({ device, cluster: info.cluster, mask: info.mask });
    }
    if (blocks < blockCount) {
      throw new VmaError(
        `Cannot read ${where}: vma extent error - missing blocks`,
      );
    }
    if (blocks > blockCount) {
      throw new VmaError(
        `Cannot read ${where}: vma extent error - too many blocks`,
      );
    }
    return { slots, blockCount };
  }

  /** After the last extent: disk clusters never seen, the first per device. */
  missingClusters(): MissingCluster[] {
    this.checkReadable();
    const missing: MissingCluster[] = [];
    for (const dev of this.header.devices) {
      const seen = this.#seen.get(dev.id);
      if (seen === undefined) continue;
      const expected = this.#expected.get(dev.id);
      if (expected === undefined) {
        const c = seen.firstMissing();
        if (c >= 0) missing.push({ device: dev, cluster: c });
        continue;
      }
      for (let c = 0; c < seen.count; c++) {
        if (!seen.has(c) && expected[c >>> 3]! & (1 << (c & 7))) {
          missing.push({ device: dev, cluster: c });
          break;
        }
      }
    }
    return missing;
  }

  /** Throws the Proxmox-style error for the first missing cluster, if any. */
  checkComplete(): void {
    const first = this.missingClusters()[0];
    if (first !== undefined) {
      throw new VmaError(
        `Cannot verify archive: detected missing cluster ${first.cluster} for stream ${
          printable(first.device.name, 80)
        }`,
      );
    }
  }

  #checkVmstate(device: VmaDevice, cluster: number, at: string): void {
    const next = this.#nextVmstate.get(device.id)!;
    if (cluster !== next) {
      throw new VmaError(`Cannot read ${at}: found out of order vmstate data`);
    }
    if (next * VMA_CLUSTER_SIZE >= device.size) {
      throw new VmaError(
        `Cannot read ${at}: vmstate data beyond its recorded size (${device.size} bytes)`,
      );
    }
    this.#nextVmstate.set(device.id, next + 1);
  }

  #checkDisk(
    device: VmaDevice,
    cluster: number,
    mask: number,
    at: string,
  ): void {
    const seen = this.#seen.get(device.id)!;
    const name = () => printable(device.name, 80);
    if (cluster >= seen.count) {
      throw new VmaError(
        `Cannot read ${at}: cluster beyond the end of ${name()} (${device.size} bytes)`,
      );
    }
    if (seen.has(cluster)) {
      throw new VmaError(
        `Cannot read ${at}: found duplicated cluster ${cluster} for stream ${name()}`,
      );
    }
    const expected = this.#expected.get(device.id);
    if (
      expected !== undefined &&
      !(expected[cluster >>> 3]! & (1 << (cluster & 7)))
    ) {
      throw new VmaError(
        `Cannot read ${at}: cluster ${cluster} of ${name()} is not in the archive's recorded set`,
      );
    }
    seen.add(cluster);
    const end = Math.floor(device.size / 512) * 512;
    for (let j = 0; j < 16; j++) {
      if (
        (mask >>> j) & 1 &&
        cluster * VMA_CLUSTER_SIZE + j * VMA_BLOCK_SIZE >= end
      ) {
        throw new VmaError(
          `Cannot read ${at}: got wrong block address - write beyond end of ${name()}`,
        );
      }
    }
  }
}
