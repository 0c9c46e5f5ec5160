import { describeFsError } from "../io/input.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
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

/**
 * Writes every device of an archive into `dir` (which must not exist):
 * disks as sparse raw files (zero blocks stay holes), the vmstate stream as
 * `vmstate.bin` (every byte, in order), configs under their names. Names are
 * checked first, so nothing is written outside `dir`. Fails, after writing
 * what it could, when the archive breaks a rule or misses clusters.
 */
export async function extractArchive(
  reader: VmaReader,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractResult> {
  const h = reader.header;
  for (const c of h.configs) checkSafeName(c.name, "config");
  const names = h.devices.map((d) => deviceFileName(d.name));
  const all = [...h.configs.map((c) => c.name), ...names];
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
  for (const c of h.configs) {
    await Deno.writeFile(`${dir}/${c.name}`, c.data, { createNew: true });
  }
  const files = new Map<number, Deno.FsFile>();
  const runs = new RunWriter();
  try {
    for (const [i, d] of h.devices.entries()) {
      files.set(
        d.id,
        await Deno.open(`${dir}/${names[i]}`, { write: true, createNew: true }),
      );
    }
    let clusters = 0;
    let storedBytes = 0;
    for await (const { slots, data } of reader.extents()) {
      options.signal?.throwIfAborted();
      let block = 0;
      for (const slot of slots) {
        const file = files.get(slot.device.id)!;
        clusters++;
        const base = slot.cluster * VMA_CLUSTER_SIZE;
        if (slot.device.name === VMA_VMSTATE_NAME) {
          // Every byte, zero blocks included, in order.
          for (let j = 0; j < 16; j++) {
            if ((slot.mask >>> j) & 1) {
              runs.add(file, base + j * VMA_BLOCK_SIZE, data, block++, 1);
            } else runs.add(file, base + j * VMA_BLOCK_SIZE, ZERO_BLOCK, 0, 1);
          }
          storedBytes += VMA_CLUSTER_SIZE;
          continue;
        }
        const valid = Math.min(VMA_CLUSTER_SIZE, slot.device.size - base);
        // Each run of stored blocks; zero blocks stay holes.
        for (let j = 0; j < 16;) {
          if (!((slot.mask >>> j) & 1)) {
            j++;
            continue;
          }
          let k = j;
          while (k < 16 && (slot.mask >>> k) & 1) k++;
          const bytes = Math.min(k * VMA_BLOCK_SIZE, valid) -
            j * VMA_BLOCK_SIZE;
          runs.add(file, base + j * VMA_BLOCK_SIZE, data, block, k - j, bytes);
          storedBytes += bytes;
          block += k - j;
          j = k;
        }
      }
      runs.flush();
    }
    for (const d of h.devices) {
      if (d.name !== VMA_VMSTATE_NAME) await files.get(d.id)!.truncate(d.size);
    }
    await runs.sync();
    reader.checkComplete();
    return {
      files: [...h.configs.map((c) => c.name), ...names],
      clusters,
      storedBytes,
    };
  } finally {
    await runs.settle();
    for (const f of files.values()) f.close();
  }
}

const ZERO_BLOCK = new Uint8Array(VMA_BLOCK_SIZE);
/** Written bytes of a file after which a background flush starts. */
const WRITEBACK_BYTES = 64 << 20;

/**
 * Joins runs of blocks that continue each other both in the file and in the
 * source buffer into one seek and one write: an extent of whole clusters of
 * one disk in order (what vmabak and Proxmox write) is a single write.
 * Sync calls: an async call costs ~30 µs, more than writing a 4 KiB block.
 */
class RunWriter {
  #file: Deno.FsFile | undefined;
  /** Bytes written since the last background flush was started, per file. */
  #dirty = new Map<Deno.FsFile, number>();
  #syncing = new Map<Deno.FsFile, Promise<void>>();
  #syncError: unknown;
  #source: Uint8Array = ZERO_BLOCK;
  #fileAt = 0;
  #from = 0;
  #to = 0;

  /** Blocks `[block, block + count)` of `source` go to `at`; `bytes` cuts the last one. */
  add(
    file: Deno.FsFile,
    at: number,
    source: Uint8Array,
    block: number,
    count: number,
    bytes = count * VMA_BLOCK_SIZE,
  ): void {
    const from = block * VMA_BLOCK_SIZE;
    if (
      file === this.#file && source === this.#source && from === this.#to &&
      at === this.#fileAt + (this.#to - this.#from)
    ) {
      this.#to += bytes;
      return;
    }
    this.flush();
    this.#file = file;
    this.#source = source;
    this.#fileAt = at;
    this.#from = from;
    this.#to = from + bytes;
  }

  flush(): void {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    file.seekSync(this.#fileAt, Deno.SeekMode.Start);
    const bytes = this.#source.subarray(this.#from, this.#to);
    let done = 0;
    while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
    const dirty = (this.#dirty.get(file) ?? 0) + bytes.length;
    this.#dirty.set(file, dirty);
    if (dirty >= WRITEBACK_BYTES && !this.#syncing.has(file)) {
      // Start writing back now, on Deno's thread pool, while extraction goes
      // on: the final flush then has little left (sync included, this halves
      // a restore's time on a host that writes back lazily).
      this.#dirty.set(file, 0);
      const p = file.syncData().catch((error) => {
        this.#syncError ??= error;
      }).finally(() => this.#syncing.delete(file));
      this.#syncing.set(file, p);
    }
  }

  /** Waits for background flushes, then makes every written file durable. */
  async sync(): Promise<void> {
    this.flush();
    await this.settle();
    if (this.#syncError !== undefined) throw this.#syncError;
    for (const file of this.#dirty.keys()) await file.syncData();
  }

  /** Waits for background flushes to end (before the files are closed). */
  async settle(): Promise<void> {
    while (this.#syncing.size > 0) {
      await Promise.all(this.#syncing.values());
    }
  }
}
