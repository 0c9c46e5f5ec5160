/** Watching and tearing down QEMU backup jobs over QMP. */
import type { QmpClient, QmpEvent } from "../qmp/client.ts";

export interface JobState {
  status: string;
  /** From BLOCK_JOB_COMPLETED / BLOCK_JOB_CANCELLED. */
  ended?: { cancelled: boolean; error?: string };
}

/** Tracks the status of a set of jobs from QMP events. */
export class JobWatcher {
  readonly jobs = new Map<string, JobState>();
  #changed: (() => void)[] = [];
  #off: () => void;

  constructor(qmp: QmpClient, ids: string[]) {
    for (const id of ids) this.jobs.set(id, { status: "created" });
    this.#off = qmp.onEvent((e) => this.#on(e));
  }

  #on(e: QmpEvent): void {
    const id = (e.data.id ?? e.data.device) as string | undefined;
    const job = id === undefined ? undefined : this.jobs.get(id);
    if (job === undefined) return;
    if (e.event === "JOB_STATUS_CHANGE") job.status = e.data.status as string;
    else if (e.event === "BLOCK_JOB_COMPLETED") {
      job.ended = {
        cancelled: false,
        ...(typeof e.data.error === "string" ? { error: e.data.error } : {}),
      };
    } else if (e.event === "BLOCK_JOB_CANCELLED") {
      job.ended = { cancelled: true };
    } else return;
    for (const f of this.#changed.splice(0)) f();
  }

  /** Resolves at the next status change (or after `ms`). */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#changed.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  close(): void {
    this.#off();
  }
}

/** Cancels every listed job still known to QEMU, waits for it to conclude, dismisses it. */
export async function cancelJobs(
  qmp: QmpClient,
  ids: string[],
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const present = async () => {
    const jobs = await qmp.execute<{ id: string; status: string }[]>(
      "query-jobs",
    );
    return jobs.filter((j) => ids.includes(j.id));
  };
  for (const j of await present()) {
    if (!["concluded", "null", "aborting"].includes(j.status)) {
      await qmp.execute("job-cancel", { id: j.id }).catch(() => {});
    }
  }
  for (;;) {
    const jobs = await present();
    for (const j of jobs) {
      if (j.status === "concluded") {
        await qmp.execute("job-dismiss", { id: j.id }).catch(() => {});
      }
    }
    if (jobs.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `Cannot cancel backup jobs: still present after ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deletes block nodes vmabak added, ignoring those already gone; retries while a job still holds one. */
export async function deleteNodes(
  qmp: QmpClient,
  nodes: string[],
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const node of nodes) {
    for (;;) {
      try {
        await qmp.execute("blockdev-del", { "node-name": node });
        break;
      } catch (error) {
        const msg = (error as Error).message;
        if (/Failed to find node|Cannot find node/.test(msg)) break;
        if (!/busy|in use/i.test(msg) || Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
