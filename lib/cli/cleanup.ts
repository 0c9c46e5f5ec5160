import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_FLEECING_DIR, tempDir } from "../backup/backup.ts";
import {
  type BitmapInfo,
  listVmabakBitmaps,
  removeBitmap,
  trackedArchive,
} from "../backup/bitmaps.ts";
import { cleanLeftovers } from "../backup/leftovers.ts";
import { QmpClient } from "../qmp/client.ts";

const USAGE =
  "vmabak cleanup --qmp SOCKET [--fleecing-dir DIR] [--remove BITMAP]... [--all-bitmaps]";

/** One line per tracking bitmap, for people. */
export function bitmapLine(b: BitmapInfo): string {
  const archive = trackedArchive(b.name);
  return `bitmap ${b.node} ${b.name}: ${
    Math.ceil(b.count / b.granularity)
  } clusters of ${b.granularity} bytes changed${
    archive ? ` since archive ${archive}` : ""
  }, ${b.persistent ? "persistent" : "in memory"}${
    b.recording ? "" : ", not recording"
  }${b.busy ? ", busy" : ""}${b.inconsistent ? ", inconsistent" : ""}`;
}

export const cleanupCommand: Command = {
  name: "cleanup",
  summary:
    "remove what killed vmabak runs left in a VM (nodes, jobs, exports, bitmaps, fleecing files, migration settings); list or remove vmabak's tracking bitmaps",
  usage: USAGE,
  async run(ctx) {
    const { values } = parseCommandArgs(ctx.args, {
      qmp: { type: "string" },
      "fleecing-dir": { type: "string" },
      remove: { type: "string", multiple: true },
      "all-bitmaps": { type: "boolean" },
    }, { min: 0, max: 0, usage: USAGE });
    if (typeof values.qmp !== "string") {
      throw new UsageError(`--qmp SOCKET is required (usage: ${USAGE})`);
    }
    const dir = typeof values["fleecing-dir"] === "string"
      ? values["fleecing-dir"]
      : DEFAULT_FLEECING_DIR;
    const qmp = await QmpClient.connect(values.qmp);
    try {
      const removed = await cleanLeftovers(qmp, { dirs: [dir, tempDir()] });
      for (const r of removed) ctx.out.line(`removed ${r}`);
      ctx.stderr.line(
        removed.length === 0
          ? "cleanup: nothing left by vmabak"
          : `cleanup: removed ${removed.length} leftover(s)`,
      );
      // Tracking bitmaps: listed, removed only on request.
      const bitmaps = await listVmabakBitmaps(qmp);
      const wanted = (values.remove as string[] | undefined) ?? [];
      for (const name of wanted) {
        if (!bitmaps.some((b) => b.name === name)) {
          throw new Error(
            `Cannot remove bitmap ${name}: the VM has no vmabak bitmap of that name`,
          );
        }
      }
      const remove = values["all-bitmaps"] === true
        ? bitmaps
        : bitmaps.filter((b) => wanted.includes(b.name));
      for (const b of remove) {
        if (b.busy) {
          throw new Error(
            `Cannot remove bitmap ${b.name} of node ${b.node}: it is in use (a backup is running)`,
          );
        }
        await removeBitmap(qmp, b.node, b.name);
        ctx.out.line(`removed bitmap ${b.name} of node ${b.node}`);
      }
      for (const b of bitmaps) {
        if (!remove.includes(b)) ctx.out.line(bitmapLine(b));
      }
    } finally {
      await qmp.close();
    }
  },
};
