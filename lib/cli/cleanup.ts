import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_FLEECING_DIR, tempDir } from "../backup/backup.ts";
import { cleanLeftovers } from "../backup/leftovers.ts";
import { QmpClient } from "../qmp/client.ts";

const USAGE = "vmabak cleanup --qmp SOCKET [--fleecing-dir DIR]";

export const cleanupCommand: Command = {
  name: "cleanup",
  summary:
    "remove what killed vmabak runs left in a VM (nodes, jobs, exports, fleecing files, migration settings)",
  usage: USAGE,
  async run(ctx) {
    const { values } = parseCommandArgs(ctx.args, {
      qmp: { type: "string" },
      "fleecing-dir": { type: "string" },
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
    } finally {
      await qmp.close();
    }
  },
};
