import {
  createExclusive,
  errorCode,
  FileError,
  fileError,
  makePrivateDir,
  writeAllTo,
  writeFileExclusive,
} from "../io/safe_file.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import { checkDeviceSizes, type VmaDevice, type VmaHeader } from "./header.ts";
import { checkFileNameLength, checkSafeName } from "./names.ts";
import type { ExtentSlot, VmaReader } from "./reader.ts";
import { type RunTarget, RunWriter, ZERO_BLOCK } from "./run_writer.ts";

export interface ExtractResult {
  files: string[];
  clusters: number;
  storedBytes: number;
}

/** The file name `extract` gives a device (as raw), or a qcow2 image of it (`restore --live` overlays). */
export function deviceFileName(
  name: string,
  format: "raw" | "qcow2" = "raw",
): string {
  return name === VMA_VMSTATE_NAME
    ? "vmstate.bin"
    : `disk-${checkSafeName(name, "device")}.${format}`;
}

/** One cluster to put into an extracted file (a reader event, or one replayed from a chain). */
export interface ExtractCluster {
  device: VmaDevice;
  cluster: number;
  mask: number;
  data: Uint8Array;
}

/**
 * Checks, before anything is written, that every entry of an archive can
 * become a file in a target directory: safe names, short enough for file
 * systems, no two alike, sizes an archive can address. Returns the device
 * file names in device order.
 */
export function planExtract(header: VmaHeader): string[] {
  checkDeviceSizes(header);
  for (const c of header.configs) {
    checkFileNameLength(checkSafeName(c.name, "config"), "config");
  }
  const names = header.devices.map((d) =>
    checkFileNameLength(deviceFileName(d.name), "device")
  );
  const all = [...header.configs.map((c) => c.name), ...names];
  if (new Set(all).size !== all.length) {
    throw new VmaError(
      "Cannot extract archive: two entries have the same file name",
    );
  }
  return names;
}

/**
 * The files of an extraction into a new directory, made 0700: disks as
 * sparse raw files (zero blocks stay holes), the vmstate stream as
 * `vmstate.bin` (every byte, in order), configs under their names, all
 * created exclusively with mode 0600 (`safe_file.ts`). Names are checked
 * before the directory is made, so nothing is written outside it; every
 * disk file is sized before any data is written, so a size the file system
 * cannot hold fails at once, and the new directory is removed.
 */
export class ExtractTarget {
  readonly files: string[];
  clusters = 0;
  storedBytes = 0;
  #open = new Map<number, RunTarget>();
  #runs = new RunWriter();

  private constructor(files: string[]) {
    this.files = files;
  }

  /** Checks the names, makes `dir` (which must not exist), writes the configs, opens and sizes the files. */
  static async create(header: VmaHeader, dir: string): Promise<ExtractTarget> {
    const names = planExtract(header);
    await makePrivateDir(dir, "target directory");
    const target = new ExtractTarget([
      ...header.configs.map((c) => c.name),
      ...names,
    ]);
    try {
      for (const c of header.configs) {
        await writeFileExclusive(`${dir}/${c.name}`, c.data, {
          what: "config",
        });
      }
      for (const [i, d] of header.devices.entries()) {
        const path = `${dir}/${names[i]}`;
        const vmstate = d.name === VMA_VMSTATE_NAME;
        const what = vmstate ? "vmstate" : "disk image";
        const file = await createExclusive(path, { what });
        target.#open.set(d.id, { file, where: { what, path } });
        if (!vmstate) await sizeFile(file, path, d.size);
      }
    } catch (error) {
      // Nothing but empty files yet: leave no trace.
      target.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    return target;
  }

  /** Writes one cluster; `ev.device` is a device of this target's header. */
  async write(ev: ExtractCluster): Promise<void> {
    const { file, where } = this.#open.get(ev.device.id)!;
    this.clusters++;
    if (ev.device.name === VMA_VMSTATE_NAME) {
      await writeAllTo(file, ev.data, where);
      this.storedBytes += ev.data.length;
      return;
    }
    this.#disk(this.#open.get(ev.device.id)!, ev, ev.data, -1);
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
      const target = this.#open.get(slot.device.id)!;
      this.clusters++;
      if (slot.device.name === VMA_VMSTATE_NAME) {
        // Every byte, zero blocks included, in order.
        const base = slot.cluster * VMA_CLUSTER_SIZE;
        for (let j = 0; j < 16; j++) {
          const at = base + j * VMA_BLOCK_SIZE;
          if ((slot.mask >>> j) & 1) {
            this.#runs.add(target, at, data, block++, 1);
          } else this.#runs.add(target, at, ZERO_BLOCK, 0, 1);
        }
        this.storedBytes += VMA_CLUSTER_SIZE;
        continue;
      }
      block = this.#disk(target, slot, data, block);
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
    target: RunTarget,
    slot: ExtentSlot,
    data: Uint8Array,
    block: number,
  ): number {
    const base = slot.cluster * VMA_CLUSTER_SIZE;
    const valid = Math.min(VMA_CLUSTER_SIZE, slot.device.size - base);
    for (let j = 0; j < 16;) {
      if (!((slot.mask >>> j) & 1)) {
        j++;
        continue;
      }
      let k = j;
      while (k < 16 && (slot.mask >>> k) & 1) k++;
      const bytes = Math.min(k * VMA_BLOCK_SIZE, valid) - j * VMA_BLOCK_SIZE;
      const from = block < 0 ? j : block;
      this.#runs.add(
        target,
        base + j * VMA_BLOCK_SIZE,
        data,
        from,
        k - j,
        bytes,
      );
      this.storedBytes += bytes;
      if (block >= 0) block += k - j;
      j = k;
    }
    return block;
  }

  /** Makes every written file durable; the result (disk files were sized when created). */
  async finish(): Promise<ExtractResult> {
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
    for (const f of this.#open.values()) f.file.close();
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

/** Gives a new disk file its final (sparse) length: EFBIG shows here, not half-way. */
async function sizeFile(
  file: Deno.FsFile,
  path: string,
  size: number,
): Promise<void> {
  try {
    await file.truncate(size);
  } catch (error) {
    if (errorCode(error) === "EFBIG") {
      throw new FileError(
        "create",
        "disk image",
        path,
        `${size} bytes is larger than the file system allows for one file`,
        { cause: error },
      );
    }
    throw fileError("create", "disk image", path, error);
  }
}
