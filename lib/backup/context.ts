/** What every stage of a backup shares: the QMP connection, the run, the undo stack, the first failure. */
import type { QmpClient } from "../qmp/client.ts";
import type { VmaWriter } from "../vma/writer.ts";
import type { ClusterSink } from "./cluster_assembler.ts";
import type { VmDisk } from "./inventory.ts";
import type { RunId } from "./run_id.ts";

/** The first fatal error of a backup, latched: everything after it fails with it. */
export class FailureLatch {
  #error: unknown;
  #failed = false;

  get failed(): boolean {
    return this.#failed;
  }

  get error(): unknown {
    return this.#error;
  }

  fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#error = error;
  }

  throwIfFailed(): void {
    if (this.#failed) throw this.#error;
  }
}

/** One disk in the archive: the VM's disk and its VMA device id. */
export interface PlannedDisk {
  disk: VmDisk;
  devId: number;
  /** Index among the backed-up disks, used in the names of what vmabak adds. */
  index: number;
}

export interface BackupContext {
  qmp: QmpClient;
  run: RunId;
  /** Undo of every change to QEMU or the host, run in reverse order on every exit. */
  stack: AsyncDisposableStack;
  disks: PlannedDisk[];
  writer: VmaWriter;
  /** Into the writer; once the backup failed, takes and drops (QEMU must never see errors). */
  clusters: ClusterSink;
  /** 0700 directory for sockets. */
  privateDir: string;
  failure: FailureLatch;
  signal: AbortSignal;
}

/**
 * Registers an undo of a change to QEMU: skipped when the QMP connection is
 * gone (QEMU exited), errors ignored (teardown is best effort, and the error
 * that stopped the backup is the one worth reporting).
 */
export function deferQmp(
  ctx: Pick<BackupContext, "stack" | "qmp">,
  undo: () => Promise<unknown>,
): void {
  ctx.stack.defer(async () => {
    if (ctx.qmp.error) return;
    try {
      await undo();
    } catch { /* best effort */ }
  });
}

/** `vmabak-p1s2-<what>`: the name of something this run adds. */
export function nameFor(ctx: Pick<BackupContext, "run">, what: string): string {
  return `${ctx.run.tag}-${what}`;
}
