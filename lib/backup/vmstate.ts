/**
 * The `--vmstate` branch of a backup: RAM and device state of the same
 * instant as the disks, by QEMU's background-snapshot migration. The stream
 * is spooled to local storage while it comes (the guest's pause never waits
 * on the archive's consumer) and stored into the archive after the disks.
 */
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import { type BackupContext, deferQmp, nameFor } from "./context.ts";
import {
  enableBackgroundSnapshot,
  waitMigrationEnd,
} from "./migration_settings.ts";
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

/**
 * A spool that takes nothing for this long is abandoned and the backup
 * fails: QEMU's migration thread waits on it, guest writes to pages not yet
 * saved wait on that thread, and QEMU's main loop (and its monitor) can wait
 * with them, so vmabak watches the file, not QMP.
 */
const SPOOL_STALL_SECONDS = 30;

export class VmstateCapture {
  #ctx: BackupContext;
  #devId: number;
  #spool: VmstateSpool;
  /** The stream's size once the spool's writer ended (from the `completed` event on). */
  #written: Promise<number> | undefined;

  private constructor(ctx: BackupContext, devId: number, spool: VmstateSpool) {
    this.#ctx = ctx;
    this.#devId = devId;
    this.#spool = spool;
    const off = ctx.qmp.onEvent((e) => {
      if (e.event !== "MIGRATION") return;
      const status = e.data.status as string;
      // A spool that could not be written (a full fleecing directory) fails
      // the backup at once, not after the disks were copied.
      if (status === "completed") this.#written ??= this.#watchWritten();
      if (["failed", "cancelled"].includes(status)) {
        ctx.failure.fail(interrupted(status));
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
    // On any exit, wait until it ended and never cancel it (see
    // waitMigrationEnd: a cancelled background snapshot wedges a QEMU 7.2
    // guest). Into a local file it ends in moments; when the backup failed,
    // the spool stops writing and drains the stream to /dev/null instead.
    const ctx = this.#ctx;
    deferQmp(ctx, () => waitMigrationEnd(qmp));
    // Needs no QMP: a spool that stopped taking data can block QEMU's main
    // loop (a guest page not yet saved waits for the spool's writer), and
    // with it the monitor, until the writer is stopped. An abort stops it at
    // once, so the QMP command it may wait on gets its answer.
    const abandon = () => void this.#spool.abandon();
    ctx.signal.addEventListener("abort", abandon);
    const unwatch = this.#watchSpool();
    ctx.stack.defer(async () => {
      unwatch();
      ctx.signal.removeEventListener("abort", abandon);
      if (ctx.failure.failed) await this.#spool.abandon();
    });
  }

  /** Waits for the stream's end and stores it into the archive; returns its size. */
  async finish(): Promise<number> {
    const ctx = this.#ctx;
    const m = await waitMigrationEnd(ctx.qmp, {
      check: () => ctx.failure.throwIfFailed(),
    });
    if (m.status !== "completed") {
      throw interrupted(m.status ?? "none", m["error-desc"]);
    }
    this.#written ??= this.#watchWritten();
    const bytes = await this.#written;
    ctx.failure.throwIfFailed();
    await this.#spool.copyInto((c, data) =>
      ctx.writer.writeCluster(this.#devId, c, data)
    );
    return bytes;
  }

  /** Fails the backup and abandons the spool when it stops growing before the stream ended. */
  #watchSpool(): () => void {
    let size = -1;
    let since = Date.now();
    let statting = false;
    const timer = setInterval(() => {
      if (this.#written !== undefined) return clearInterval(timer);
      if (!statting) {
        // A stat on a hung disk may itself hang: the clock runs on regardless.
        statting = true;
        this.#spool.size().then((now) => {
          if (now !== size) [size, since] = [now, Date.now()];
        }, () => {}).finally(() => statting = false);
      }
      if (Date.now() - since > SPOOL_STALL_SECONDS * 1000) {
        clearInterval(timer);
        this.#ctx.failure.fail(this.#spool.stalled(SPOOL_STALL_SECONDS));
        void this.#spool.abandon();
      }
    }, 500);
    return () => clearInterval(timer);
  }

  #watchWritten(): Promise<number> {
    const written = this.#spool.waitWritten();
    written.catch((error) => this.#ctx.failure.fail(error));
    return written;
  }
}

/** The background snapshot ended without completing (nothing vmabak does: someone else, or QEMU). */
function interrupted(status: string, why?: string): Error {
  return new Error(
    `Cannot save the VM state: QEMU's background snapshot ended ${status}${
      why ? ` (${why})` : ""
    }; QEMU 7.2 may leave the guest's RAM write-protected after that: if the guest stops responding, restart the VM`,
  );
}
