import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { QmpClient } from "../qmp/client.ts";
import { QmpBusyError } from "../qmp/errors.ts";

const USAGE = "vmabak resume --qmp SOCKET [--timeout SECONDS]";

/** Waits for a VM started by resume.sh to load its state, then lets it run. */
export const resumeCommand: Command = {
  name: "resume",
  summary: "let a restored VM run once it has loaded its saved state",
  usage: USAGE,
  async run(ctx) {
    const { values } = parseCommandArgs(ctx.args, {
      qmp: { type: "string" },
      timeout: { type: "string" },
    }, {
      min: 0,
      max: 0,
      usage: USAGE,
    });
    if (typeof values.qmp !== "string") {
      throw new UsageError(`--qmp SOCKET is required (usage: ${USAGE})`);
    }
    const timeoutMs = Number(values.timeout ?? 120) * 1000;
    if (!(timeoutMs > 0)) {
      throw new UsageError("--timeout must be a positive number of seconds");
    }
    const deadline = Date.now() + timeoutMs;
    let qmp: QmpClient | undefined;
    while (qmp === undefined) {
      try {
        qmp = await QmpClient.connect(values.qmp);
      } catch (error) {
        // QEMU still starting: retry; another client holding it: say so now.
        if (error instanceof QmpBusyError || Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
      ctx.signal.throwIfAborted();
    }
    try {
      for (;;) {
        const { status } = await qmp.execute<{ status: string }>(
          "query-status",
        );
        if (status !== "inmigrate") {
          const m = await qmp.execute<{ status?: string }>("query-migrate");
          if (m.status === "failed") {
            throw new Error("Cannot resume the VM: loading its state failed");
          }
          if (status === "paused" || status === "prelaunch") {
            await qmp.execute("cont");
          }
          const now = await qmp.execute<{ status: string }>("query-status");
          ctx.stderr.line(`resume: the VM is ${now.status}`);
          if (now.status !== "running") {
            throw new Error(`Cannot resume the VM: it is ${now.status}`);
          }
          return;
        }
        if (Date.now() > deadline) {
          throw new Error(
            "Cannot resume the VM: still loading its state at the timeout",
          );
        }
        ctx.signal.throwIfAborted();
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await qmp.close();
    }
  },
};
