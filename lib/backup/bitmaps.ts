/**
 * vmabak's dirty bitmaps in QEMU, as QMP sees them, and how a dead run's
 * leftovers are undone. Names:
 *
 * - `vmabak-<uuid>`: tracking since the archive with that uuid (persistent on
 *   qcow2, in memory otherwise). `backup --since ARCHIVE` reads it.
 * - `vmabak-p<pid>s<start>-frozen-<uuid>`: a run's frozen copy of the changes
 *   it reads, for the archive `<uuid>` it writes; in memory, disabled. It
 *   also marks `vmabak-<uuid>` as not committed while the run lives.
 */
import type { QmpClient } from "../qmp/client.ts";
import { isRunAlive, NAME_PREFIX, runOf } from "./run_id.ts";

export interface BitmapInfo {
  node: string;
  name: string;
  /** Dirty bytes. */
  count: number;
  granularity: number;
  persistent: boolean;
  recording: boolean;
  busy: boolean;
  /** A persistent bitmap QEMU did not store cleanly (it crashed): unusable. */
  inconsistent: boolean;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const TRACKING = new RegExp(`^${NAME_PREFIX}(${UUID})$`);
const FROZEN = new RegExp(`^${NAME_PREFIX}p\\d+s\\d+-frozen-(${UUID})$`);

/** The bitmap that tracks changes since the archive `uuid`. */
export function trackingBitmapName(uuid: string): string {
  return `${NAME_PREFIX}${uuid}`;
}

/** A run's frozen bitmap for the archive `uuid` it writes. */
export function frozenBitmapName(tag: string, uuid: string): string {
  return `${tag}-frozen-${uuid}`;
}

/** The archive uuid a tracking bitmap is named after, or undefined. */
export function trackedArchive(name: string): string | undefined {
  return TRACKING.exec(name)?.[1];
}

interface NodeBitmaps {
  "node-name": string;
  "dirty-bitmaps"?: {
    name?: string;
    count: number;
    granularity: number;
    persistent: boolean;
    recording: boolean;
    busy: boolean;
    inconsistent?: boolean;
  }[];
}

/** Every named dirty bitmap whose name starts with `vmabak-`, per node. */
export async function listVmabakBitmaps(
  qmp: QmpClient,
): Promise<BitmapInfo[]> {
  const nodes = await qmp.execute<NodeBitmaps[]>("query-named-block-nodes");
  const out: BitmapInfo[] = [];
  const seen = new Set<string>();
  for (const n of nodes) {
    for (const b of n["dirty-bitmaps"] ?? []) {
      // QEMU's own anonymous bitmaps (copy-before-write) have no name.
      if (b.name === undefined || !b.name.startsWith(NAME_PREFIX)) continue;
      const key = `${n["node-name"]}\0${b.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        node: n["node-name"],
        name: b.name,
        count: b.count,
        granularity: b.granularity,
        persistent: b.persistent,
        recording: b.recording,
        busy: b.busy,
        inconsistent: b.inconsistent === true,
      });
    }
  }
  return out;
}

/** Removes one bitmap; a bitmap that is already gone is fine. */
export async function removeBitmap(
  qmp: QmpClient,
  node: string,
  name: string,
): Promise<void> {
  try {
    await qmp.execute("block-dirty-bitmap-remove", { node, name });
  } catch (error) {
    if (/not found/i.test((error as Error).message)) return;
    throw error;
  }
}

/**
 * Undoes the bitmaps of runs that are gone (SIGKILL, crash): a frozen bitmap
 * and the tracking bitmap it marks as not committed (that archive was never
 * finished). The tracking bitmap the dead run read from kept recording all
 * along, so the next incremental still carries every change. Call after the
 * dead run's exports are gone (an exported bitmap is busy). Returns one line
 * per bitmap removed.
 */
export async function cleanDeadRunBitmaps(
  qmp: QmpClient,
  selfTag?: string,
): Promise<string[]> {
  const removed: string[] = [];
  for (const b of await listVmabakBitmaps(qmp)) {
    const run = runOf(b.name);
    if (run === undefined || run.tag === selfTag || isRunAlive(run)) continue;
    const uuid = FROZEN.exec(b.name)?.[1];
    if (uuid !== undefined) {
      await removeBitmap(qmp, b.node, trackingBitmapName(uuid));
      removed.push(
        `bitmap ${
          trackingBitmapName(uuid)
        } on node ${b.node} (its archive was never finished)`,
      );
    }
    await removeBitmap(qmp, b.node, b.name);
    removed.push(`bitmap ${b.name} on node ${b.node}`);
  }
  return removed;
}
