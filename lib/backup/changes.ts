/**
 * What a backup does about changes: leave tracking bitmaps for the next
 * incremental, and with `since`, be an incremental itself (read only what
 * changed, record it in vmabak.json). The orchestrator calls `planChanges`
 * before anything changes in QEMU and `startIncremental` once the changed
 * clusters are known (the archive's header waits for them).
 */
import type { ClusterSet } from "../chain/cluster_set.ts";
import { DESCRIPTION_CONFIG, makeIncremental } from "../chain/incremental.ts";
import type { VmaHeader } from "../vma/header.ts";
import type { VmaWriter } from "../vma/writer.ts";
import type { BackupContext } from "./context.ts";
import type { VmDescription } from "./inventory.ts";
import { Tracking, TrackingError } from "./tracking.ts";

export interface ChangeOptions {
  /** uuid of the archive being written. */
  uuid: string;
  /** Leave tracking bitmaps (default true). */
  track: boolean;
  /** The chain's last archive: back up only what changed since. */
  since?: { label: string; header: VmaHeader };
  /** When `since` cannot be honoured, take a full backup instead of failing. */
  orFull: boolean;
  mode: "push" | "pull";
}

export interface ChangePlan {
  tracking?: Tracking;
  /** The base when this backup is an incremental. */
  since?: { label: string; header: VmaHeader };
  /** Why `since` was not honoured (with `orFull`): a full backup is taken. */
  fullInstead?: string;
}

type Ctx = Pick<BackupContext, "qmp" | "stack" | "disks" | "run">;

export async function planChanges(
  ctx: Ctx,
  options: ChangeOptions,
): Promise<ChangePlan> {
  if (options.since !== undefined && options.mode === "push") {
    throw new Error(
      "Cannot back up incrementally with --mode push: an incremental reads the changed clusters from QEMU's NBD export (--mode pull)",
    );
  }
  if (!options.track && options.since === undefined) return {};
  try {
    const tracking = await Tracking.prepare(ctx, options);
    return {
      tracking,
      ...(options.since !== undefined ? { since: options.since } : {}),
    };
  } catch (error) {
    if (!(error instanceof TrackingError) || !options.orFull) throw error;
    const reason = error.message;
    if (!options.track) return { fullInstead: reason };
    const { since: _, ...full } = options;
    return {
      tracking: await Tracking.prepare(ctx, full),
      fullInstead: reason,
    };
  }
}

/**
 * Writes the incremental's record into vmabak.json (and long runs into
 * configs of their own), then the archive's header.
 */
export async function startIncremental(
  writer: VmaWriter,
  description: VmDescription,
  base: VmaHeader,
  sets: Map<string, ClusterSet>,
): Promise<void> {
  const inc = makeIncremental(base, sets);
  writer.replaceConfig(
    DESCRIPTION_CONFIG,
    new TextEncoder().encode(
      JSON.stringify({ ...description, incremental: inc.record }, null, 2) +
        "\n",
    ),
  );
  for (const c of inc.configs) writer.addConfig(c.name, c.data);
  await writer.start();
}
