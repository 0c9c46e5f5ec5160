import { VMA_BLOCK_SIZE } from "./format.ts";

/** A block of zeros, as a source for runs. */
export const ZERO_BLOCK = new Uint8Array(VMA_BLOCK_SIZE);
/** Written bytes of a file after which a background flush starts. */
const WRITEBACK_BYTES = 64 << 20;

/**
 * Joins runs of blocks that continue each other both in the file and in the
 * source buffer into one seek and one write: an extent of whole clusters of
 * one disk in order (what vmabak and Proxmox write) is a single write.
 * Sync calls: an async call costs ~30 µs, more than writing a 4 KiB block.
 */
export class RunWriter {
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
