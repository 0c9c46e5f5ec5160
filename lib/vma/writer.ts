import type { ByteSink } from "../io/sink.ts";
import { nonZeroMask } from "../wasm/mod.ts";
import { VmaError } from "./errors.ts";
import {
  blockInfoHigh,
  clusterCount,
  VMA_BLOCK_SIZE,
  VMA_BLOCKS_PER_EXTENT,
  VMA_CLUSTER_SIZE,
  VMA_EXTENT,
  VMA_EXTENT_HEADER_SIZE,
  VMA_EXTENT_MAGIC,
  VMA_MAX_DEVICES,
  VMA_MAX_EXTENT_SIZE,
  VMA_MD5_SIZE,
  VMA_UUID_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import { encodeHeader, md5, type VmaConfig, type VmaDevice } from "./header.ts";

/** Clusters one `writeClusters` call stores at most (`zeroMask` has 32 bits). */
export const VMA_MAX_RUN = 32;

export interface VmaWriterOptions {
  uuid?: Uint8Array;
  /** Seconds since the epoch; default now. */
  ctime?: number;
}

interface DeviceState extends VmaDevice {
  vmstate: boolean;
  /** One bit per cluster already stored (disks only). */
  seen: Uint8Array | null;
  nextVmstateCluster: number;
}

/**
 * Writes a VMA archive strictly sequentially to a sink: the header first,
 * then extents of up to 59 clusters. Clusters may come in any order and
 * concurrently; calls are serialized, and memory stays at one extent.
 */
export class VmaWriter {
  #sink: ByteSink;
  #uuid: Uint8Array;
  #ctime: number;
  #configs: VmaConfig[] = [];
  #devices: DeviceState[] = [];
  #state: "setup" | "writing" | "finished" | "failed" = "setup";
  #error: unknown;
  #extent = new Uint8Array(VMA_MAX_EXTENT_SIZE);
  #extentView = new DataView(this.#extent.buffer);
  /** The other extent buffer: filled while this one is being written. */
  #spare = new Uint8Array(VMA_MAX_EXTENT_SIZE);
  #spareView = new DataView(this.#spare.buffer);
  /** The write of the previous extent, still in progress (never rejects unobserved). */
  #writing: Promise<void> | null = null;
  #slots = 0;
  #blocks = 0;
  #extentsWritten = 0;
  #staging = new Uint8Array(VMA_CLUSTER_SIZE);
  #queue: Promise<void> = Promise.resolve();
  /** Bytes written to the sink so far. */
  bytesWritten = 0;

  constructor(sink: ByteSink, options: VmaWriterOptions = {}) {
    this.#sink = sink;
    this.#uuid = options.uuid ??
      crypto.getRandomValues(new Uint8Array(VMA_UUID_SIZE));
    if (this.#uuid.length !== VMA_UUID_SIZE) {
      throw new VmaError("Cannot create VMA writer: uuid must be 16 bytes");
    }
    this.#ctime = options.ctime ?? Math.floor(Date.now() / 1000);
  }

  get uuid(): Uint8Array {
    return this.#uuid;
  }

  addConfig(name: string, data: Uint8Array): void {
    this.#needState("setup", "add config");
    if (this.#configs.some((c) => c.name === name)) {
      throw new VmaError(`Cannot add config "${name}": added twice`);
    }
    this.#configs.push({ name, data });
  }

  /** Replaces the data of a config added before (until `start()`), keeping its place. */
  replaceConfig(name: string, data: Uint8Array): void {
    this.#needState("setup", `replace config "${name}"`);
    const config = this.#configs.find((c) => c.name === name);
    if (config === undefined) {
      throw new VmaError(`Cannot replace config "${name}": not added`);
    }
    config.data = data;
  }

  addDevice(name: string, size: number): number {
    this.#needState("setup", `add device "${name}"`);
    if (name === "") throw new VmaError("Cannot add device: empty name");
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new VmaError(`Cannot add device "${name}": bad size ${size}`);
    }
    if (this.#devices.some((d) => d.name === name)) {
      throw new VmaError(`Cannot add device "${name}": added twice`);
    }
    const id = this.#devices.length + 1;
    if (id >= VMA_MAX_DEVICES) {
      throw new VmaError(
        `Cannot add device "${name}": at most ${VMA_MAX_DEVICES - 1} devices`,
      );
    }
    const vmstate = name === VMA_VMSTATE_NAME;
    this.#devices.push({
      id,
      name,
      size,
      vmstate,
      seen: vmstate ? null : new Uint8Array(Math.ceil(clusterCount(size) / 8)),
      nextVmstateCluster: 0,
    });
    return id;
  }

  start(): Promise<void> {
    this.#needState("setup", "start");
    this.#state = "writing";
    const header = encodeHeader({
      uuid: this.#uuid,
      ctime: this.#ctime,
      configs: this.#configs,
      devices: this.#devices,
    });
    return this.#enqueue(() => this.#write(header));
  }

  /**
   * Stores one cluster. `data` holds the cluster's bytes (fewer than 65536
   * only for a device's last cluster or the end of a vmstate stream), or is
   * null for an all-zero cluster. The bytes are copied before this resolves.
   */
  writeCluster(
    devId: number,
    clusterNum: number,
    data: Uint8Array | null,
  ): Promise<void> {
    return this.#enqueue(() => this.#storeRun(devId, clusterNum, 1, data, 0));
  }

  /**
   * Stores `count` (1 to `VMA_MAX_RUN`) consecutive clusters from `first` in one call:
   * cluster i is `data[i * 65536, (i + 1) * 65536)` (cut or missing bytes
   * read as zero), or zeros when `data` is null or bit i of `zeroMask` is
   * set. Either every cluster is stored or none (checked first). The bytes
   * are copied before this resolves. One call per chunk instead of one per
   * cluster keeps a backup's promises, closures and views few: they are
   * what V8 promoted and kept until a full GC (peak RSS grew with the disk).
   */
  writeClusters(
    devId: number,
    first: number,
    count: number,
    data: Uint8Array | null,
    zeroMask = 0,
  ): Promise<void> {
    return this.#enqueue(() =>
      this.#storeRun(devId, first, count, data, zeroMask)
    );
  }

  /** Writes the last extent. The archive is complete once this resolves. */
  finish(): Promise<void> {
    return this.#enqueue(async () => {
      this.#needState("writing", "finish");
      if (this.#slots > 0 || this.#extentsWritten === 0) await this.#flush();
      await this.#settle();
      this.#state = "finished";
    });
  }

  #needState(state: "setup" | "writing", what: string): void {
    if (this.#state === "failed") {
      throw new VmaError(`Cannot ${what}: the archive writer failed before`, {
        cause: this.#error,
      });
    }
    if (this.#state !== state) {
      throw new VmaError(
        `Cannot ${what}: the archive writer is ${this.#state}`,
      );
    }
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task).catch((error) => {
      if (
        this.#state !== "failed" &&
        !(error instanceof VmaError && this.#state === "writing")
      ) {
        this.#state = "failed";
        this.#error = error;
      }
      throw error;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  async #storeRun(
    devId: number,
    first: number,
    count: number,
    data: Uint8Array | null,
    zeroMask: number,
  ): Promise<void> {
    this.#needState("writing", "store a cluster");
    const dev = this.#checkRun(devId, first, count, data);
    for (let i = 0; i < count; i++) {
      const zero = data === null || ((zeroMask >>> i) & 1) === 1;
      const from = Math.min(i * VMA_CLUSTER_SIZE, data?.length ?? 0);
      const to = Math.min(from + VMA_CLUSTER_SIZE, data?.length ?? 0);
      this.#put(
        dev,
        first + i,
        zero ? null : (count === 1 ? data : data.subarray(from, to)),
      );
      if (this.#slots === VMA_BLOCKS_PER_EXTENT) await this.#flush();
    }
  }

  /** Checks a run of clusters before any of it is stored; returns its device. */
  #checkRun(
    devId: number,
    first: number,
    count: number,
    data: Uint8Array | null,
  ): DeviceState {
    const dev = this.#devices[devId - 1];
    if (dev === undefined) {
      throw new VmaError(`Cannot store cluster ${first}: no device ${devId}`);
    }
    if (!Number.isInteger(count) || count < 1 || count > VMA_MAX_RUN) {
      throw new VmaError(
        `Cannot store ${count} clusters of device "${dev.name}": 1 to ${VMA_MAX_RUN} at a time`,
      );
    }
    const last = first + count - 1;
    if (!Number.isInteger(first) || first < 0 || last > 0xffffffff) {
      throw new VmaError(
        `Cannot store cluster ${first} of device "${dev.name}": bad cluster number`,
      );
    }
    if (data !== null && data.length > count * VMA_CLUSTER_SIZE) {
      throw new VmaError(
        count === 1
          ? `Cannot store cluster ${first} of device "${dev.name}": ${data.length} bytes`
          : `Cannot store clusters ${first}-${last} of device "${dev.name}": ${data.length} bytes`,
      );
    }
    if (dev.vmstate) {
      if (first !== dev.nextVmstateCluster) {
        throw new VmaError(
          `Cannot store vmstate cluster ${first}: expected ${dev.nextVmstateCluster} (in order)`,
        );
      }
      // Readers refuse a stream past its recorded size: never write one.
      if (last * VMA_CLUSTER_SIZE >= dev.size) {
        throw new VmaError(
          `Cannot store vmstate cluster ${last}: the stream would be longer than its recorded size (${dev.size} bytes)`,
        );
      }
      return dev;
    }
    if (last >= clusterCount(dev.size)) {
      throw new VmaError(
        `Cannot store cluster ${last} of device "${dev.name}": beyond its size ${dev.size}`,
      );
    }
    const seen = dev.seen!;
    for (let c = first; c <= last; c++) {
      if (seen[c >>> 3]! & (1 << (c & 7))) {
        throw new VmaError(
          `Cannot store cluster ${c} of device "${dev.name}": stored twice`,
        );
      }
    }
    return dev;
  }

  /** Adds one checked cluster to the extent being filled (which has a free slot). */
  #put(dev: DeviceState, clusterNum: number, data: Uint8Array | null): void {
    const valid = dev.vmstate ? VMA_CLUSTER_SIZE : Math.min(
      VMA_CLUSTER_SIZE,
      dev.size - clusterNum * VMA_CLUSTER_SIZE,
    );
    let cluster: Uint8Array | null = null;
    let mask = 0;
    if (data !== null) {
      if (data.length >= valid && valid === VMA_CLUSTER_SIZE) {
        cluster = data;
      } else {
        // Short or cut cluster: bytes past the device end (or past the data) read as zero.
        cluster = this.#staging;
        cluster.set(data.length > valid ? data.subarray(0, valid) : data);
        cluster.fill(0, Math.min(data.length, valid));
      }
      mask = nonZeroMask(cluster);
      const validBlocks = Math.ceil(valid / VMA_BLOCK_SIZE);
      if (validBlocks < 16) mask &= (1 << validBlocks) - 1;
    }

    // Copy the stored blocks into the extent, a run of blocks at a time (no
    // BigInt, one view per run: a backup stores millions of clusters, and
    // fewer short-lived objects keep V8's young generation small).
    let at = VMA_EXTENT_HEADER_SIZE + this.#blocks * VMA_BLOCK_SIZE;
    for (let j = 0; j < 16;) {
      if (((mask >>> j) & 1) === 0) {
        j++;
        continue;
      }
      let k = j + 1;
      while (k < 16 && ((mask >>> k) & 1) === 1) k++;
      const bytes = (k - j) * VMA_BLOCK_SIZE;
      this.#extent.set(
        cluster!.subarray(j * VMA_BLOCK_SIZE, k * VMA_BLOCK_SIZE),
        at,
      );
      at += bytes;
      this.#blocks += k - j;
      j = k;
    }
    const info = VMA_EXTENT.blockInfo + 8 * this.#slots;
    this.#extentView.setUint32(info, blockInfoHigh(mask, dev.id));
    this.#extentView.setUint32(info + 4, clusterNum >>> 0);
    this.#slots++;
    if (dev.vmstate) dev.nextVmstateCluster++;
    else dev.seen![clusterNum >>> 3]! |= 1 << (clusterNum & 7);
  }

  async #flush(): Promise<void> {
    const ext = this.#extent;
    const dv = this.#extentView;
    // Unused slots stay zero (dev_id 0).
    ext.fill(0, VMA_EXTENT.blockInfo + 8 * this.#slots, VMA_EXTENT_HEADER_SIZE);
    dv.setUint32(VMA_EXTENT.magic, VMA_EXTENT_MAGIC);
    dv.setUint16(VMA_EXTENT.reserved, 0);
    dv.setUint16(VMA_EXTENT.blockCount, this.#blocks);
    ext.set(this.#uuid, VMA_EXTENT.uuid);
    ext.fill(0, VMA_EXTENT.md5sum, VMA_EXTENT.md5sum + VMA_MD5_SIZE);
    ext.set(md5(ext.subarray(0, VMA_EXTENT_HEADER_SIZE)), VMA_EXTENT.md5sum);
    // Overlap: the sink writes this extent while the next one fills up.
    await this.#settle();
    const writing = this.#write(
      ext.subarray(0, VMA_EXTENT_HEADER_SIZE + this.#blocks * VMA_BLOCK_SIZE),
    );
    writing.catch(() => {});
    this.#writing = writing;
    this.#extent = this.#spare;
    this.#extentView = this.#spareView;
    this.#spare = ext;
    this.#spareView = dv;
    this.#extentsWritten++;
    this.#slots = 0;
    this.#blocks = 0;
  }

  /** Waits for the previous extent's write (and fails with its error). */
  async #settle(): Promise<void> {
    const writing = this.#writing;
    this.#writing = null;
    if (writing !== null) await writing;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    await this.#sink.write(bytes);
    this.bytesWritten += bytes.length;
  }
}
