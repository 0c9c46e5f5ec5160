/**
 * The pull data path: a copy-before-write filter per disk keeps the
 * instant's data in a local fleecing image (the guest's writes only ever
 * wait on local storage, never on the archive's consumer); vmabak reads the
 * snapshot from QEMU's own NBD server at its own pace, in cluster order, and
 * trims what it stored.
 */
import type { BackupContext } from "./context.ts";
import type { DataPath } from "./data_path.ts";
import type { Tracking } from "./tracking.ts";
import {
  addFleecingImage,
  addSnapshotAccess,
  exportSnapshot,
  type FleecingOptions,
  insertFilter,
  startNbdServer,
} from "./fleecing.ts";
import { readDisk, SnapshotBrokenError } from "./pull_reader.ts";
import type { ClusterSet } from "../chain/cluster_set.ts";
import type { NbdClient } from "../nbd/client.ts";
import { NbdRequestError } from "../nbd/errors.ts";
import { NBD_E } from "../nbd/format.ts";
import {
  changedClusters,
  type ChangedDisk,
  connectChanged,
  readChanged,
} from "./changed_reader.ts";

export interface PullOptions extends FleecingOptions {
  /** TRIM what was stored (default true; off only to measure). */
  trim?: boolean;
  /** Bytes of disk per second at most, per disk. */
  speed?: number;
}

export class PullPath implements DataPath {
  readonly mode = "pull";
  readonly needsStop = true;
  #ctx: BackupContext;
  #options: PullOptions;
  #socket = "";
  #exports: string[] = [];
  #done = 0;
  #changed: { disk: ChangedDisk; client: NbdClient; set: ClusterSet }[] = [];

  constructor(ctx: BackupContext, options: PullOptions) {
    this.#ctx = ctx;
    this.#options = options;
  }

  get done(): number {
    return this.#done;
  }

  async prepare(): Promise<void> {
    // The server starts before the instant: the guest's pause holds only
    // what must be atomic (the filters), not the server nor the exports.
    this.#socket = await startNbdServer(this.#ctx);
    for (const d of this.#ctx.disks) {
      try {
        await addFleecingImage(this.#ctx, d, this.#options);
      } catch (error) {
        throw new Error(
          `${
            (error as Error).message
          } (fleecing directory ${this.#options.dir}); ${
            advice(this.#options.dir)
          }`,
          { cause: error },
        );
      }
    }
  }

  async snapshot(tracking?: Tracking): Promise<void> {
    await tracking?.atInstant();
    for (const d of this.#ctx.disks) {
      await insertFilter(this.#ctx, d, this.#options);
    }
  }

  /** The snapshots are fixed: make them readable and export them (the guest runs again). */
  async afterInstant(): Promise<void> {
    for (const d of this.#ctx.disks) {
      await addSnapshotAccess(this.#ctx, d);
      this.#exports.push(
        await exportSnapshot(this.#ctx, d, this.#options.bitmap),
      );
    }
  }

  /** An incremental's clusters, per disk name (after the instant, before `copy`). */
  async changedClusters(): Promise<Map<string, ClusterSet>> {
    const ctx = this.#ctx;
    const out = new Map<string, ClusterSet>();
    for (const d of ctx.disks) {
      const disk: ChangedDisk = {
        socketPath: this.#socket,
        exportName: this.#exports[d.index]!,
        diskName: d.disk.name,
        size: d.disk.size,
        bitmap: this.#options.bitmap!,
      };
      const client = await connectChanged(disk);
      ctx.stack.defer(() => client.close().catch(() => {}));
      const set = await changedClusters(client, disk);
      this.#changed.push({ disk, client, set });
      out.set(d.disk.name, set);
    }
    return out;
  }

  async copy(onProgress: () => void): Promise<void> {
    const ctx = this.#ctx;
    let last = 0;
    for (const d of ctx.disks) {
      try {
        const changed = this.#changed[d.index];
        if (changed !== undefined) {
          await readChanged(changed.client, changed.disk, changed.set, {
            devId: d.devId,
            sink: ctx.writer,
            ...(this.#options.trim === false ? { trim: false } : {}),
            ...(this.#options.speed ? { speed: this.#options.speed } : {}),
            onStored: (n) => {
              this.#done += n;
              onProgress();
            },
            check: () => {
              ctx.failure.throwIfFailed();
              if (ctx.qmp.error) throw ctx.qmp.error;
            },
          });
          continue;
        }
        await readDisk({
          socketPath: this.#socket,
          exportName: this.#exports[d.index]!,
          diskName: d.disk.name,
          size: d.disk.size,
          devId: d.devId,
          sink: ctx.writer,
          ...(this.#options.trim === false ? { trim: false } : {}),
          ...(this.#options.speed ? { speed: this.#options.speed } : {}),
          onStored: (n) => {
            this.#done += n;
            const now = performance.now();
            if (now - last > 250) {
              last = now;
              onProgress();
            }
          },
          check: () => {
            ctx.failure.throwIfFailed();
            if (ctx.qmp.error) throw ctx.qmp.error;
          },
        });
      } catch (error) {
        throw fleecingFailure(error, d.disk.name, this.#options);
      }
    }
  }
}

function advice(dir: string): string {
  return `free space in ${dir} or choose another directory with --fleecing-dir, or back up with --mode push`;
}

/**
 * A failure of the snapshot's export, told as what it is: the fleecing
 * image in `dir` could not take the guest's old data (full, too slow, or
 * failing), with the directory and what to do. Other errors pass as they are.
 */
function fleecingFailure(
  error: unknown,
  disk: string,
  options: PullOptions,
): unknown {
  const dir = options.dir;
  if (error instanceof SnapshotBrokenError) {
    return new Error(
      `Cannot back up disk ${disk}: QEMU broke its snapshot because the fleecing image in ${dir} could not take the guest's writes (the directory is full, or too slow for ${options.cbwTimeout} s); ${
        advice(dir)
      }`,
      { cause: error },
    );
  }
  if (error instanceof NbdRequestError) {
    const why = error.errno === NBD_E.NOSPC
      ? `the fleecing image in ${dir} could not grow, the directory is full`
      : `the fleecing image in ${dir} failed`;
    return new Error(
      `Cannot back up disk ${disk}: ${why} (${error.message}); ${advice(dir)}`,
      { cause: error },
    );
  }
  return error;
}
