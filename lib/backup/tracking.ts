/**
 * Change tracking across backups. At the backup's instant, one transaction
 * per run (pull: its own, the guest stopped with the filters' insertion;
 * push: the backup jobs' own transaction, no stop):
 *
 * - `track`: adds `vmabak-<new uuid>` per disk, recording from this instant
 *   (persistent on qcow2, in memory otherwise);
 * - always, per disk: `<run>-frozen-<new uuid>`, disabled, in memory; with
 *   `since`, the changes of `vmabak-<prev uuid>` are merged into it: the
 *   clusters this incremental reads (exported as `qemu:dirty-bitmap:...`).
 *
 * `vmabak-<prev uuid>` itself keeps recording throughout. On success it is
 * removed (the new bitmap carries on); on failure the new one is removed and
 * the old one still holds every change since PREV, so nothing is lost; a
 * SIGKILL leaves both, and `cleanDeadRunBitmaps` removes the uncommitted one.
 */
import { formatUuid } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import {
  type BitmapInfo,
  frozenBitmapName,
  listVmabakBitmaps,
  removeBitmap,
  trackedArchive,
  trackingBitmapName,
} from "./bitmaps.ts";
import { type BackupContext, deferQmp } from "./context.ts";

/** The bitmap granularity vmabak asks for: one VMA cluster. */
export const TRACKING_GRANULARITY = 65536;

/** `--since` cannot be honoured; the message says to take a full backup. */
export class TrackingError extends Error {
  override name = "TrackingError";
  readonly disk: string;
  constructor(message: string, disk: string) {
    super(message);
    this.disk = disk;
  }
}

export interface TrackingOptions {
  /** uuid of the archive being written. */
  uuid: string;
  /** Leave a tracking bitmap for the next incremental (default true). */
  track: boolean;
  /** The previous archive of the chain: read only what changed since. */
  since?: { label: string; header: VmaHeader };
}

type Ctx = Pick<BackupContext, "qmp" | "stack" | "disks" | "run">;

export class Tracking {
  readonly track: boolean;
  /** uuid of the base archive, when incremental. */
  readonly since: string | undefined;
  readonly uuid: string;
  /** Other archives whose tracking bitmaps the VM's disks carry (older chains). */
  others: string[] = [];
  #ctx: Ctx;
  #succeeded = false;

  private constructor(ctx: Ctx, options: TrackingOptions) {
    this.#ctx = ctx;
    this.track = options.track;
    this.uuid = options.uuid;
    this.since = options.since && formatUuid(options.since.header.uuid);
  }

  /**
   * Checks, before anything changes, that an incremental can be taken: each
   * disk was in PREV with the same size and has PREV's bitmap, recording.
   * Throws a `TrackingError` otherwise.
   */
  static async prepare(ctx: Ctx, options: TrackingOptions): Promise<Tracking> {
    const tracking = new Tracking(ctx, options);
    const bitmaps = await listVmabakBitmaps(ctx.qmp);
    if (options.since !== undefined) {
      checkSince(ctx, options.since, bitmaps);
    }
    const nodes = new Set(ctx.disks.map((d) => d.disk.node));
    tracking.others = [
      ...new Set(
        bitmaps.filter((b) => nodes.has(b.node)).map((b) =>
          trackedArchive(b.name)
        )
          .filter((u): u is string => u !== undefined && u !== tracking.since),
      ),
    ];
    return tracking;
  }

  /** Whether anything happens at the instant. */
  get active(): boolean {
    return this.track || this.since !== undefined;
  }

  /** The frozen bitmap of a disk (node) to export and read. */
  frozenName(): string {
    return frozenBitmapName(this.#ctx.run.tag, this.uuid);
  }

  /** At the instant, with the guest stopped: one transaction for every disk. */
  async atInstant(): Promise<void> {
    await this.#ctx.qmp.execute("transaction", { actions: this.actions() });
    this.added();
  }

  /** The transaction actions of the instant, for every disk. */
  actions(): unknown[] {
    const ctx = this.#ctx;
    const frozen = this.frozenName();
    const mine = trackingBitmapName(this.uuid);
    const actions: unknown[] = [];
    for (const { disk } of ctx.disks) {
      if (this.track) {
        actions.push({
          type: "block-dirty-bitmap-add",
          data: {
            node: disk.node,
            name: mine,
            granularity: TRACKING_GRANULARITY,
            persistent: disk.format === "qcow2",
          },
        });
      }
      actions.push({
        type: "block-dirty-bitmap-add",
        data: {
          node: disk.node,
          name: frozen,
          granularity: TRACKING_GRANULARITY,
          persistent: false,
          disabled: true,
        },
      });
      if (this.since !== undefined) {
        actions.push({
          type: "block-dirty-bitmap-merge",
          data: {
            node: disk.node,
            target: frozen,
            bitmaps: [trackingBitmapName(this.since)],
          },
        });
      }
    }
    return actions;
  }

  /** Once the actions' transaction succeeded: registers their undo. */
  added(): void {
    const ctx = this.#ctx;
    const frozen = this.frozenName();
    const mine = trackingBitmapName(this.uuid);
    deferQmp(ctx, async () => {
      for (const { disk } of ctx.disks) {
        await removeBitmap(ctx.qmp, disk.node, frozen);
        if (this.#succeeded) {
          // The new bitmap carries on; the old one's changes are archived.
          if (this.since !== undefined) {
            await removeBitmap(
              ctx.qmp,
              disk.node,
              trackingBitmapName(this.since),
            );
          }
        } else if (this.track) {
          // The old bitmap kept recording: it still holds every change.
          await removeBitmap(ctx.qmp, disk.node, mine);
        }
      }
    });
  }

  /** Called once the archive is complete: the teardown keeps the new bitmap. */
  succeeded(): void {
    this.#succeeded = true;
  }
}

function checkSince(
  ctx: Ctx,
  since: { label: string; header: VmaHeader },
  bitmaps: BitmapInfo[],
): void {
  const uuid = formatUuid(since.header.uuid);
  const name = trackingBitmapName(uuid);
  const refuse = (disk: string, why: string) =>
    new TrackingError(
      `Cannot back up incrementally since ${since.label}: ${why}; take a full backup (without --since), or add --or-full`,
      disk,
    );
  for (const { disk } of ctx.disks) {
    const dev = since.header.devices.find((d) => d.name === disk.name);
    if (dev === undefined) {
      throw refuse(disk.name, `disk ${disk.name} is not in it`);
    }
    if (dev.size !== disk.size) {
      throw refuse(
        disk.name,
        `disk ${disk.name} has ${disk.size} bytes now, ${dev.size} then (resized)`,
      );
    }
    const b = bitmaps.find((x) => x.node === disk.node && x.name === name);
    if (b === undefined) {
      throw refuse(
        disk.name,
        `disk ${disk.name} has no bitmap ${name} (QEMU restarted with a disk that cannot keep it, such as raw, or crashed before storing it, or ${since.label} is not this VM's last archive of the chain)`,
      );
    }
    if (b.inconsistent) {
      throw refuse(
        disk.name,
        `bitmap ${name} of disk ${disk.name} is inconsistent (QEMU stopped without storing it, e.g. it crashed)`,
      );
    }
    if (!b.recording || b.busy) {
      throw refuse(
        disk.name,
        `bitmap ${name} of disk ${disk.name} is ${
          b.busy ? "in use" : "not recording"
        }`,
      );
    }
  }
}
