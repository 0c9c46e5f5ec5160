import { describeFsError } from "../io/input.ts";
import { writeAll, writeAllSync } from "../io/sink.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import type { VmaDevice, VmaHeader } from "./header.ts";
import { checkSafeName } from "./names.ts";
import type { VmaReader } from "./reader.ts";

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
    const base = ev.cluster * VMA_CLUSTER_SIZE;
    const valid = Math.min(VMA_CLUSTER_SIZE, ev.device.size - base);
    // Write each run of stored blocks; zero blocks stay holes.
    for (let j = 0; j < 16;) {
      if (!((ev.mask >>> j) & 1)) {
        j++;
        continue;
      }
      let k = j;
      while (k < 16 && (ev.mask >>> k) & 1) k++;
      const start = j * VMA_BLOCK_SIZE;
      const end = Math.min(k * VMA_BLOCK_SIZE, valid);
      // Sync calls: an async call costs ~30 µs, more than writing a 4 KiB block.
      file.seekSync(base + start, Deno.SeekMode.Start);
      writeAllSync(file, ev.data.subarray(start, end));
      this.storedBytes += end - start;
      j = k;
    }
  }

  /** Sets every disk file to its device's size. */
  async finish(): Promise<ExtractResult> {
    for (const d of this.#header.devices) {
      if (d.name !== VMA_VMSTATE_NAME) {
        await this.#open.get(d.id)!.truncate(d.size);
      }
    }
    return {
      files: this.files,
      clusters: this.clusters,
      storedBytes: this.storedBytes,
    };
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
    for await (const ev of reader.clusters()) {
      options.signal?.throwIfAborted();
      await target.write(ev);
    }
    const result = await target.finish();
    reader.checkComplete();
    return result;
  } finally {
    target.close();
  }
}
