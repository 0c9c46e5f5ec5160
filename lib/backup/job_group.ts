/**
 * QEMU backup jobs started together: one `transaction` (one instant for
 * every disk), no automatic finalize or dismiss, then wait until all are
 * pending and finalize them. `completion-mode: grouped` when the transaction
 * holds only the jobs; QEMU 7.2 refuses it with dirty bitmap actions, so
 * with those the jobs complete on their own (a failed one fails the backup
 * all the same: the others are cancelled by the undo). Cancelling every job
 * that is still there is registered as the undo.
 */
import type { QmpClient } from "../qmp/client.ts";
import { type BackupContext, deferQmp } from "./context.ts";
import { cancelJobs, JobWatcher } from "./jobs.ts";

export interface GroupedJob {
  id: string;
  /** The `blockdev-backup` arguments (without job-id and auto-* flags). */
  backup: Record<string, unknown>;
}

export class JobGroup {
  readonly ids: string[];
  #qmp: QmpClient;
  #watcher: JobWatcher;
  #grouped: boolean;

  private constructor(
    qmp: QmpClient,
    ids: string[],
    watcher: JobWatcher,
    grouped: boolean,
  ) {
    this.#qmp = qmp;
    this.ids = ids;
    this.#watcher = watcher;
    this.#grouped = grouped;
  }

  /**
   * Starts every job in one transaction, with `actions` (dirty bitmaps)
   * first; the jobs' undo (cancel) is registered right after.
   */
  static async start(
    ctx: Pick<BackupContext, "qmp" | "stack">,
    jobs: GroupedJob[],
    actions: unknown[] = [],
  ): Promise<JobGroup> {
    const ids = jobs.map((j) => j.id);
    const watcher = new JobWatcher(ctx.qmp, ids);
    ctx.stack.defer(() => watcher.close());
    const grouped = actions.length === 0;
    await ctx.qmp.execute("transaction", {
      actions: [
        ...actions,
        ...jobs.map((j) => ({
          type: "blockdev-backup",
          data: {
            "job-id": j.id,
            ...j.backup,
            "auto-finalize": false,
            "auto-dismiss": false,
          },
        })),
      ],
      ...(grouped ? { properties: { "completion-mode": "grouped" } } : {}),
    });
    deferQmp(ctx, () => cancelJobs(ctx.qmp, ids));
    return new JobGroup(ctx.qmp, ids, watcher, grouped);
  }

  /**
   * Waits until every job is pending (grouped: they get there together).
   * `check` runs on every change and every `tickMs`: it throws to stop.
   */
  async waitPending(check: () => void, tickMs = 500): Promise<void> {
    for (;;) {
      check();
      if (this.#qmp.error) throw this.#qmp.error;
      const bad = [...this.#watcher.jobs.entries()].find(([, s]) =>
        s.ended || ["aborting", "concluded"].includes(s.status)
      );
      if (bad) {
        throw new Error(
          `Cannot back up: QEMU's job ${bad[0]} failed: ${
            bad[1].ended?.error ?? bad[1].status
          }`,
        );
      }
      if (
        [...this.#watcher.jobs.values()].every((s) => s.status === "pending")
      ) {
        return;
      }
      await this.#watcher.changed(tickMs);
    }
  }

  /** Finalizes the jobs (grouped: one job-finalize finalizes all), checks each result, dismisses. */
  async finalize(): Promise<void> {
    for (const id of this.#grouped ? this.ids.slice(0, 1) : this.ids) {
      await this.#qmp.execute("job-finalize", { id });
    }
    for (;;) {
      if (this.#qmp.error) throw this.#qmp.error;
      const jobs = [...this.#watcher.jobs.entries()];
      const err = jobs.find(([, s]) => s.ended?.error || s.ended?.cancelled);
      if (err) {
        throw new Error(
          `Cannot back up: QEMU's job ${err[0]} failed: ${
            err[1].ended?.error ?? "cancelled"
          }`,
        );
      }
      if (jobs.every(([, s]) => s.ended && s.status === "concluded")) break;
      await this.#watcher.changed(500);
    }
    for (const id of this.ids) await this.#qmp.execute("job-dismiss", { id });
  }
}
