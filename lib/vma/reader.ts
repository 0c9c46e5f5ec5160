import { EndOfStreamError, ExactReader } from "../io/read_exact.ts";
import { VmaError } from "./errors.ts";
import {
  clusterCount,
  decodeBlockInfo,
  maskBlockCount,
  VMA_BLOCK_SIZE,
  VMA_BLOCKS_PER_EXTENT,
  VMA_CLUSTER_SIZE,
  VMA_EXTENT,
  VMA_EXTENT_HEADER_SIZE,
  VMA_EXTENT_MAGIC,
  VMA_HEADER,
  VMA_MD5_SIZE,
  VMA_UUID_SIZE,
} from "./format.ts";
import { ClusterSet } from "./cluster_set.ts";
import { printable } from "../text/escape.ts";
import {
  checkDeviceSizes,
  type DecodedVmaHeader,
  decodeHeader,
  decodeHeaderSize,
  isVmstate,
  md5,
  type VmaDevice,
} from "./header.ts";

export interface VmaClusterEvent {
  /** Index of the extent the cluster came in (0-based). */
  extent: number;
  device: VmaDevice;
  cluster: number;
  /** Bit j set: block j is stored; clear: block j is zeros. */
  mask: number;
  /** The whole cluster, zero blocks filled with zeros. Valid until the next event. */
  data: Uint8Array;
}

/** A missing cluster found at the end of the archive. */
export interface MissingCluster {
  device: VmaDevice;
  cluster: number;
}

/**
 * Reads a VMA archive from a stream and checks every rule of the format as
 * it goes (see `vma-format.md`, "Reader rules"). Errors are `VmaError`s
 * naming the extent, device and cluster.
 */
export class VmaReader {
  readonly header: DecodedVmaHeader;
  #input: ExactReader;
  #seen = new Map<number, ClusterSet>();
  /** Disks whose archive holds only some clusters: one bit per cluster it must hold. */
  #expected = new Map<number, Uint8Array>();
  #nextVmstate = new Map<number, number>();
  #cluster = new Uint8Array(VMA_CLUSTER_SIZE);
  #ended = false;

  private constructor(input: ExactReader, header: DecodedVmaHeader) {
    this.#input = input;
    this.header = header;
  }

  /**
   * Throws for a device whose data cannot be read (a size past what a VMA
   * archive can address); listing the header needs no such check.
   */
  checkReadable(): void {
    if (this.#seen.size + this.#nextVmstate.size > 0) return;
    checkDeviceSizes(this.header);
    for (const dev of this.header.devices) {
      if (isVmstate(dev)) this.#nextVmstate.set(dev.id, 0);
      else this.#seen.set(dev.id, new ClusterSet(clusterCount(dev.size)));
    }
  }

  /** Reads and checks the header. */
  static async open(stream: ReadableStream<Uint8Array>): Promise<VmaReader> {
    const input = new ExactReader(stream);
    try {
      const first = await input.readExact(
        VMA_HEADER.headerSize + 4,
        "VMA header",
      );
      const size = decodeHeaderSize(first);
      const rest = await input.readExact(size - first.length, "VMA header");
      const bytes = new Uint8Array(size);
      bytes.set(first);
      bytes.set(rest, first.length);
      return new VmaReader(input, decodeHeader(bytes));
    } catch (error) {
      await input.cancel();
      if (error instanceof EndOfStreamError) {
        throw new VmaError(
          `Cannot read VMA header: archive ends after ${error.received} bytes`,
          { cause: error },
        );
      }
      throw error;
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

  /** Stops reading the input (for commands that only need the header). */
  async close(): Promise<void> {
    await this.#input.cancel();
  }

  /** Yields every stored cluster in archive order. */
  async *clusters(): AsyncGenerator<VmaClusterEvent> {
    if (this.#ended) throw new VmaError("Cannot read clusters: already read");
    this.#ended = true;
    try {
      this.checkReadable();
    } catch (error) {
      await this.#input.cancel();
      throw error;
    }
    const devices = new Map(this.header.devices.map((d) => [d.id, d]));
    try {
      for (let extent = 0;; extent++) {
        const head = await this.#input.readRecord(
          VMA_EXTENT_HEADER_SIZE,
          `header of extent ${extent}`,
        );
        if (head === null) return;
        const where = `extent ${extent} (archive offset ${
          this.#input.position - VMA_EXTENT_HEADER_SIZE
        })`;
        const slots = this.#checkExtentHeader(head, where, devices);
        const blockCount = new DataView(
          head.buffer,
          head.byteOffset,
          head.byteLength,
        ).getUint16(VMA_EXTENT.blockCount);
        let data: Uint8Array;
        try {
          data = await this.#input.readExact(
            blockCount * VMA_BLOCK_SIZE,
            `data of ${where}`,
          );
        } catch (error) {
          if (error instanceof EndOfStreamError) {
            throw new VmaError(
              `Cannot read ${where}: short vma extent (${error.received} < ${error.expected} data bytes)`,
              { cause: error },
            );
          }
          throw error;
        }
        let block = 0;
        for (const slot of slots) {
          const out = this.#cluster;
          for (let j = 0; j < 16; j++) {
            const target = out.subarray(
              j * VMA_BLOCK_SIZE,
              (j + 1) * VMA_BLOCK_SIZE,
            );
            if ((slot.mask >>> j) & 1) {
              target.set(
                data.subarray(
                  block * VMA_BLOCK_SIZE,
                  (block + 1) * VMA_BLOCK_SIZE,
                ),
              );
              block++;
            } else {
              target.fill(0);
            }
          }
          yield {
            extent,
            device: slot.device,
            cluster: slot.cluster,
            mask: slot.mask,
            data: out,
          };
        }
      }
    } finally {
      await this.#input.cancel();
    }
  }

  /** After `clusters()` ran to the end: disk clusters never seen, first per device. */
  missingClusters(): MissingCluster[] {
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

  #checkExtentHeader(
    head: Uint8Array,
    where: string,
    devices: Map<number, VmaDevice>,
  ): { device: VmaDevice; cluster: number; mask: number }[] {
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
    const slots = [];
    let blocks = 0;
    for (let i = 0; i < VMA_BLOCKS_PER_EXTENT; i++) {
      const info = decodeBlockInfo(
        dv.getBigUint64(VMA_EXTENT.blockInfo + 8 * i),
      );
      if (info.devId === 0) continue;
      const device = devices.get(info.devId);
      const at = `${where}, slot ${i}, cluster ${info.cluster}`;
      if (device === undefined) {
        throw new VmaError(
          `Cannot read ${at}: no device ${info.devId} in the header`,
        );
      }
      if (isVmstate(device)) {
        const next = this.#nextVmstate.get(device.id)!;
        if (info.cluster !== next) {
          throw new VmaError(
            `Cannot read ${at}: found out of order vmstate data`,
          );
        }
        if (next * VMA_CLUSTER_SIZE >= device.size) {
          throw new VmaError(
            `Cannot read ${at}: vmstate data beyond its recorded size (${device.size} bytes)`,
          );
        }
        this.#nextVmstate.set(device.id, next + 1);
      } else {
        const seen = this.#seen.get(device.id)!;
        const name = () => printable(device.name, 80);
        if (info.cluster >= seen.count) {
          throw new VmaError(
            `Cannot read ${at}: cluster beyond the end of ${name()} (${device.size} bytes)`,
          );
        }
        if (seen.has(info.cluster)) {
          throw new VmaError(
            `Cannot read ${at}: found duplicated cluster ${info.cluster} for stream ${name()}`,
          );
        }
        const expected = this.#expected.get(device.id);
        if (
          expected !== undefined &&
          !(expected[info.cluster >>> 3]! & (1 << (info.cluster & 7)))
        ) {
          throw new VmaError(
            `Cannot read ${at}: cluster ${info.cluster} of ${name()} is not in the archive's recorded set`,
          );
        }
        seen.add(info.cluster);
        const end = Math.floor(device.size / 512) * 512;
        for (let j = 0; j < 16; j++) {
          if (
            (info.mask >>> j) & 1 &&
            info.cluster * VMA_CLUSTER_SIZE + j * VMA_BLOCK_SIZE >= end
          ) {
            throw new VmaError(
              `Cannot read ${at}: got wrong block address - write beyond end of ${name()}`,
            );
          }
        }
      }
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
    return slots;
  }
}
