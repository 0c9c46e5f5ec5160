/**
 * The `--vmstate` branch of a backup: RAM and device state of the same
 * instant as the disks, by QEMU's background-snapshot migration. The stream
 * is spooled to local storage while it comes (the guest's pause never waits
 * on the archive's consumer) and stored into the archive after the disks.
 */
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import { type BackupContext, deferQmp, nameFor } from "./context.ts";
import { enableBackgroundSnapshot } from "./migration_settings.ts";
import { VmstateSpool } from "./vmstate_spool.ts";

/**
 * An upper bound for the state stream of a VM with `memoryBytes` of RAM,
 * recorded as the `vmstate` device's size (a hint: the stream delimits
 * itself). Every 4 KiB page costs at most 8 bytes of header on top; video
 * RAM, ROMs and device state are covered by 256 MiB.
 */
export function vmstateSizeHint(memoryBytes: number): number {
  const bound = memoryBytes + Math.ceil(memoryBytes / 4096) * 8 +
    256 * 1024 * 1024;
  return Math.ceil(bound / VMA_CLUSTER_SIZE) * VMA_CLUSTER_SIZE;
}

export class VmstateCapture {
  #ctx: BackupContext;
  #devId: number;
  #spool: VmstateSpool;
  #status = "none";

  private constructor(ctx: BackupContext, devId: number, spool: VmstateSpool) {
    this.#ctx = ctx;
    this.#devId = devId;
    this.#spool = spool;
    const off = ctx.qmp.onEvent((e) => {
      if (e.event !== "MIGRATION") return;
      this.#status = e.data.status as string;
      if (["failed", "cancelled"].includes(this.#status)) {
        const status = this.#status;
        // A spool that could not be written (a full fleecing directory) is named.
        void spool.writeFailure().then((f) =>
          ctx.failure.fail(
            f ?? new Error(`Cannot save the VM state: migration ${status}`),
          )
        );
      }
    });
    ctx.stack.defer(off);
  }

  /**
   * Turns on the migration settings (their undo registered) and opens the
   * spool in `spoolDir`. Fails before the VM is touched when QEMU cannot do
   * a background snapshot.
   */
  static async prepare(
    ctx: BackupContext,
    devId: number,
    spoolDir: string,
  ): Promise<VmstateCapture> {
    const restore = await enableBackgroundSnapshot(ctx.qmp, ctx.run);
    deferQmp(ctx, restore);
    const spool = await VmstateSpool.create(
      `${spoolDir}/${nameFor(ctx, "vmstate.bin")}`,
      `${ctx.privateDir}/vmstate.done`,
    );
    ctx.stack.defer(() => spool.remove());
    return new VmstateCapture(ctx, devId, spool);
  }

  /** Starts the background snapshot (at the instant, guest stopped). */
  async start(): Promise<void> {
    const qmp = this.#ctx.qmp;
    await qmp.execute("migrate", { uri: this.#spool.uri });
    // Never cancel it: QEMU 7.2 cannot take another background snapshot
    // after an interrupted one. Into a local file it ends in moments.
    deferQmp(this.#ctx, () => waitMigrationEnd(qmp));
  }

  /** Waits for the stream's end and stores it into the archive; returns its size. */
  async finish(): Promise<number> {
    const ctx = this.#ctx;
    for (let i = 0; this.#status !== "completed"; i++) {
      ctx.failure.throwIfFailed();
      const m = await ctx.qmp.execute<{ status?: string }>("query-migrate");
      if (m.status === "completed") {
        this.#status = "completed";
        break;
      }
      if (m.status === "failed" || m.status === "cancelled" || i > 1200) {
        throw (await this.#spool.writeFailure()) ??
          new Error(`Cannot save the VM state: migration ${m.status}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const bytes = await this.#spool.waitWritten();
    await this.#spool.copyInto((c, data) =>
      ctx.writer.writeCluster(this.#devId, c, data)
    );
    return bytes;
  }
}

/** Waits (at most a minute) until no migration runs; cancels it only then. */
async function waitMigrationEnd(qmp: BackupContext["qmp"]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = await qmp.execute<{ status?: string }>("query-migrate");
    if (!["setup", "active", "device", "cancelling"].includes(m.status ?? "")) {
      return;
    }
    if (Date.now() > deadline) {
      await qmp.execute("migrate_cancel");
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
