import { describeFsError } from "../io/input.ts";
import { writeAll } from "../io/sink.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import type { VmaDevice, VmaHeader } from "./header.ts";
import { checkSafeName } from "./names.ts";
import type { ExtentSlot, VmaReader } from "./reader.ts";
import { RunWriter, ZERO_BLOCK } from "./run_writer.ts";

export interface ExtractResult {
  files: string[];
  clusters: number;
  storedBytes: number;
}

/** The file name `extract` gives a device. */
export function deviceFileName(name: string): string {
  return name === VMA_VMSTATE_NAME
    ? "vmstate.bin"
    : `disk-${checkSafeName(name, "device")}.raw`;
}

/** One cluster to put into an extracted file (a reader event, or one replayed from a chain). */
export interface ExtractCluster {
  device: VmaDevice;
  cluster: number;
  mask: number;
  data: Uint8Array;
}

/**
 * The files of an extraction into a new directory: disks as sparse raw files
 * (zero blocks stay holes), the vmstate stream as `vmstate.bin` (every byte,
 * in order), configs under their names. Names are checked before the
 * directory is made, so nothing is written outside it.
 */
export class ExtractTarget {
  readonly files: string[];
  clusters = 0;
  storedBytes = 0;
  #header: VmaHeader;
  #open = new Map<number, Deno.FsFile>();
  #runs = new RunWriter();

  private constructor(header: VmaHeader, files: string[]) {
    this.#header = header;
    this.files = files;
  }

  /** Checks the names, makes `dir` (which must not exist), writes the configs, opens the files. */
  static async create(header: VmaHeader, dir: string): Promise<ExtractTarget> {
    for (const c of header.configs) checkSafeName(c.name, "config");
    const names = header.devices.map((d) => deviceFileName(d.name));
    const all = [...header.configs.map((c) => c.name), ...names];
    if (new Set(all).size !== all.length) {
      throw new VmaError(
        "Cannot extract archive: two entries have the same file name",
      );
    }
    try {
      await Deno.mkdir(dir);
    } catch (error) {
      throw new VmaError(
        `Cannot extract into ${dir}: ${describeFsError(error)}`,
        { cause: error },
      );
    }
    for (const c of header.configs) {
      await Deno.writeFile(`${dir}/${c.name}`, c.data, { createNew: true });
    }
    const target = new ExtractTarget(header, all);
    try {
      for (const [i, d] of header.devices.entries()) {
        target.#open.set(
          d.id,
          await Deno.open(`${dir}/${names[i]}`, {
            write: true,
            createNew: true,
          }),
        );
      }
    } catch (error) {
      target.close();
      throw error;
    }
    return target;
  }

  /** Writes one cluster; `ev.device` is a device of this target's header. */
  async write(ev: ExtractCluster): Promise<void> {
    const file = this.#open.get(ev.device.id)!;
    this.clusters++;
    if (ev.device.name === VMA_VMSTATE_NAME) {
      await writeAll(file, ev.data);
      this.storedBytes += ev.data.length;
      return;
    }
    this.#disk(file, ev.device, ev.cluster, ev.mask, ev.data, -1);
    this.#runs.flush(); // ev.data is reused by the caller
  }

  /**
   * Writes one extent as the reader gives it (slots and their stored blocks
   * back to back): runs of blocks that continue each other in the file go
   * out in one write.
   */
  writeExtent(slots: ExtentSlot[], data: Uint8Array): void {
    let block = 0;
    for (const slot of slots) {
      const file = this.#open.get(slot.device.id)!;
      this.clusters++;
      if (slot.device.name === VMA_VMSTATE_NAME) {
        // Every byte, zero blocks included, in order.
        const base = slot.cluster * VMA_CLUSTER_SIZE;
        for (let j = 0; j < 16; j++) {
          const at = base + j * VMA_BLOCK_SIZE;
          if ((slot.mask >>> j) & 1) this.#runs.add(file, at, data, block++, 1);
          else this.#runs.add(file, at, ZERO_BLOCK, 0, 1);
        }
        this.storedBytes += VMA_CLUSTER_SIZE;
        continue;
      }
      block = this.#disk(
        file,
        slot.device,
        slot.cluster,
        slot.mask,
        data,
        block,
      );
    }
    this.#runs.flush();
  }

  /**
   * Queues each run of stored blocks of a disk cluster; zero blocks stay
   * holes. `block`: where its stored blocks start in `data` (packed, as in
   * an extent), or -1 when `data` is the whole cluster. Returns the block
   * after them.
   */
  #disk(
    file: Deno.FsFile,
    device: VmaDevice,
    cluster: number,
    mask: number,
    data: Uint8Array,
    block: number,
  ): number {
    const base = cluster * VMA_CLUSTER_SIZE;
    const valid = Math.min(VMA_CLUSTER_SIZE, device.size - base);
    for (let j = 0; j < 16;) {
      if (!((mask >>> j) & 1)) {
        j++;
        continue;
      }
      let k = j;
      while (k < 16 && (mask >>> k) & 1) k++;
      const bytes = Math.min(k * VMA_BLOCK_SIZE, valid) - j * VMA_BLOCK_SIZE;
      const from = block < 0 ? j : block;
      this.#runs.add(file, base + j * VMA_BLOCK_SIZE, data, from, k - j, bytes);
      this.storedBytes += bytes;
      if (block >= 0) block += k - j;
      j = k;
    }
    return block;
  }

  /** Sets every disk file to its device's size and makes every file durable. */
  async finish(): Promise<ExtractResult> {
    for (const d of this.#header.devices) {
      if (d.name !== VMA_VMSTATE_NAME) {
        await this.#open.get(d.id)!.truncate(d.size);
      }
    }
    await this.#runs.sync();
    return {
      files: this.files,
      clusters: this.clusters,
      storedBytes: this.storedBytes,
    };
  }

  /** Waits for background write-back (before `close()` on an error path). */
  async settle(): Promise<void> {
    await this.#runs.settle();
  }

  close(): void {
    for (const f of this.#open.values()) f.close();
    this.#open.clear();
  }
}

/**
 * Writes every device of an archive into `dir` (which must not exist), see
 * `ExtractTarget`. Fails, after writing what it could, when the archive
 * breaks a rule or misses clusters.
 */
export async function extractArchive(
  reader: VmaReader,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractResult> {
  const target = await ExtractTarget.create(reader.header, dir);
  try {
    for await (const { slots, data } of reader.extents()) {
      options.signal?.throwIfAborted();
      target.writeExtent(slots, data);
    }
    const result = await target.finish();
    reader.checkComplete();
    return result;
  } finally {
    await target.settle();
    target.close();
  }
}
