import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { QmpClient } from "../qmp/client.ts";
import {
  type BitmapInfo,
  cleanDeadRunBitmaps,
  listVmabakBitmaps,
  removeBitmap,
  trackedArchive,
} from "../backup/bitmaps.ts";

const USAGE = "vmabak cleanup --qmp SOCKET [--remove NAME]... [--all]";

/** One line per bitmap, for people. */
export function bitmapLine(b: BitmapInfo): string {
  const archive = trackedArchive(b.name);
  return `${b.node} ${b.name}: ${b.count} bytes changed (${
    Math.ceil(b.count / b.granularity)
  } clusters of ${b.granularity}), ${
    b.persistent ? "persistent" : "in memory"
  }, ${b.recording ? "recording" : "not recording"}${b.busy ? ", busy" : ""}${
    archive ? `; changes since archive ${archive}` : ""
  }`;
}

export const cleanupCommand: Command = {
  name: "cleanup",
  summary:
    "list vmabak's dirty bitmaps in a VM (changes since each archive), remove them on request, undo dead runs' bitmaps",
  usage: USAGE,
  async run(ctx) {
    const { values } = parseCommandArgs(ctx.args, {
      qmp: { type: "string" },
      remove: { type: "string", multiple: true },
      all: { type: "boolean" },
    }, { min: 0, max: 0, usage: USAGE });
    if (typeof values.qmp !== "string") {
      throw new UsageError(`--qmp SOCKET is required (usage: ${USAGE})`);
    }
    const qmp = await QmpClient.connect(values.qmp);
    try {
      for (const line of await cleanDeadRunBitmaps(qmp)) {
        ctx.stderr.line(`cleanup: removed ${line} (left by a dead run)`);
      }
      const bitmaps = await listVmabakBitmaps(qmp);
      const wanted = (values.remove as string[] | undefined) ?? [];
      for (const name of wanted) {
        if (!bitmaps.some((b) => b.name === name)) {
          throw new Error(
            `Cannot remove bitmap ${name}: the VM has no vmabak bitmap of that name`,
          );
        }
      }
      const remove = values.all === true
        ? bitmaps
        : bitmaps.filter((b) => wanted.includes(b.name));
      for (const b of remove) {
        if (b.busy) {
          throw new Error(
            `Cannot remove bitmap ${b.name} of node ${b.node}: it is in use (a backup is running)`,
          );
        }
        await removeBitmap(qmp, b.node, b.name);
        ctx.stderr.line(`cleanup: removed bitmap ${b.name} of node ${b.node}`);
      }
      for (const b of bitmaps) {
        if (!remove.includes(b)) ctx.out.line(bitmapLine(b));
      }
    } finally {
      await qmp.close();
    }
  },
};
