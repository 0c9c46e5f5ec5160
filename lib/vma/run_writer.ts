import { fileError, writeAllToSync } from "../io/safe_file.ts";
import { VMA_BLOCK_SIZE } from "./format.ts";

/** An open output file and how errors name it. */
export interface RunTarget {
  file: Deno.FsFile;
  where: { what: string; path: string };
}

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
  #file: RunTarget | undefined;
  /** Bytes written since the last background flush was started, per file. */
  #dirty = new Map<RunTarget, number>();
  #syncing = new Map<RunTarget, Promise<void>>();
  #syncError: unknown;
  #source: Uint8Array = ZERO_BLOCK;
  #fileAt = 0;
  #from = 0;
  #to = 0;

  /** Blocks `[block, block + count)` of `source` go to `at`; `bytes` cuts the last one. */
  add(
    target: RunTarget,
    at: number,
    source: Uint8Array,
    block: number,
    count: number,
    bytes = count * VMA_BLOCK_SIZE,
  ): void {
    const from = block * VMA_BLOCK_SIZE;
    if (
      target === this.#file && source === this.#source && from === this.#to &&
      at === this.#fileAt + (this.#to - this.#from)
    ) {
      this.#to += bytes;
      return;
    }
    this.flush();
    this.#file = target;
    this.#source = source;
    this.#fileAt = at;
    this.#from = from;
    this.#to = from + bytes;
  }

  flush(): void {
    const target = this.#file;
    if (target === undefined) return;
    this.#file = undefined;
    const bytes = this.#source.subarray(this.#from, this.#to);
    try {
      target.file.seekSync(this.#fileAt, Deno.SeekMode.Start);
    } catch (error) {
      throw fileError("write", target.where.what, target.where.path, error);
    }
    writeAllToSync(target.file, bytes, target.where);
    const file = target;
    const dirty = (this.#dirty.get(file) ?? 0) + bytes.length;
    this.#dirty.set(file, dirty);
    if (dirty >= WRITEBACK_BYTES && !this.#syncing.has(file)) {
      // Start writing back now, on Deno's thread pool, while extraction goes
      // on: the final flush then has little left (sync included, this halves
      // a restore's time on a host that writes back lazily).
      this.#dirty.set(file, 0);
      const p = file.file.syncData().catch((error) => {
        this.#syncError ??= fileError(
          "write",
          file.where.what,
          file.where.path,
          error,
        );
      }).finally(() => this.#syncing.delete(file));
      this.#syncing.set(file, p);
    }
  }

  /** Waits for background flushes, then makes every written file durable. */
  async sync(): Promise<void> {
    this.flush();
    await this.settle();
    if (this.#syncError !== undefined) throw this.#syncError;
    for (const { file, where } of this.#dirty.keys()) {
      try {
        await file.syncData();
      } catch (error) {
        throw fileError("write", where.what, where.path, error);
      }
    }
  }

  /** Waits for background flushes to end (before the files are closed). */
  async settle(): Promise<void> {
    while (this.#syncing.size > 0) {
      await Promise.all(this.#syncing.values());
    }
  }
}
