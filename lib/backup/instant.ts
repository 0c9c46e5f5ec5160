/**
 * The backup's instant: stops the guest when the data path or the RAM state
 * needs it, fixes the snapshot of every disk, starts the RAM snapshot, and
 * lets the guest run again. Measures the pause from QEMU's STOP and RESUME
 * event times. A guest that was paused before stays paused.
 */
import type { BackupContext } from "./context.ts";
import { QmpTimeoutError } from "../qmp/errors.ts";

/** A `stop` takes milliseconds; one that takes this long never ends (a stuck vCPU). */
const STOP_TIMEOUT_MS = 30_000;

/** The guest's vCPUs never stopped: QEMU's main loop is stuck, nothing can be undone over QMP. */
export class GuestStuckError extends Error {
  override name = "GuestStuckError";
}

/** Stops the guest, or says why it cannot when its vCPUs never stop. */
async function stopGuest(qmp: BackupContext["qmp"]): Promise<void> {
  try {
    await qmp.execute("stop", undefined, { timeoutMs: STOP_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof QmpTimeoutError)) throw error;
    throw new GuestStuckError(
      `Cannot stop the guest for the backup's instant: QEMU did not stop its vCPUs within ${
        STOP_TIMEOUT_MS / 1000
      } s and no longer answers (a vCPU is stuck; QEMU 7.2 leaves guest RAM blocked after an interrupted background snapshot); restart the VM, then run vmabak cleanup`,
      { cause: error },
    );
  }
}

export interface InstantSteps {
  /** Stop the guest around `snapshot` (and `startVmstate`). */
  stop: boolean;
  snapshot(): Promise<void>;
  /** Starts QEMU's background snapshot of RAM, which resumes the guest by itself (QEMU 7.2). */
  startVmstate?: () => Promise<void>;
}

export interface InstantReport {
  /** How long the guest was paused by vmabak, when vmabak paused it and QEMU reported both events. */
  pausedMs?: number;
  /** Whether the guest was already paused before the backup (it is left paused). */
  wasPaused: boolean;
}

type Status = { status: string };

export async function fixInstant(
  ctx: BackupContext,
  steps: InstantSteps,
): Promise<InstantReport> {
  const qmp = ctx.qmp;
  let stopUs = 0;
  let resumeUs = 0;
  const off = qmp.onEvent((e) => {
    if (e.event === "STOP") stopUs = e.timestampUs;
    if (e.event === "RESUME") resumeUs = e.timestampUs;
  });
  try {
    const before = (await qmp.execute<Status>("query-status")).status;
    const wasRunning = before === "running";
    const vmstate = steps.startVmstate !== undefined;
    let stoppedByUs = false;
    if (wasRunning && (steps.stop || vmstate)) {
      await stopGuest(qmp);
      stoppedByUs = true;
      let resumed = false;
      ctx.stack.defer(async () => {
        if (resumed || qmp.error) return;
        const s = await qmp.execute<Status>("query-status").catch(() => null);
        if (s?.status === "paused") await qmp.execute("cont").catch(() => {});
      });
      const markResumed = () => resumed = true;
      ctx.signal.throwIfAborted();
      await steps.snapshot();
      if (vmstate) {
        await steps.startVmstate!();
        await waitForStatus(ctx, "running", 1000);
        if ((await qmp.execute<Status>("query-status")).status !== "running") {
          await qmp.execute("cont");
        }
      } else {
        await qmp.execute("cont");
      }
      markResumed();
    } else {
      ctx.signal.throwIfAborted();
      await steps.snapshot();
      if (vmstate) {
        resumeUs = 0;
        await steps.startVmstate!();
        if (!wasRunning) {
          // QEMU 7.2's background snapshot starts the vCPUs even when they
          // were paused: pause them again as soon as it did.
          await waitFor(() => resumeUs !== 0, 2000);
          const s = await qmp.execute<Status>("query-status");
          if (s.status === "running") await qmp.execute("stop");
        }
      }
    }
    const measured = stoppedByUs && stopUs > 0 && resumeUs > stopUs;
    return {
      wasPaused: !wasRunning,
      ...(measured ? { pausedMs: (resumeUs - stopUs) / 1000 } : {}),
    };
  } finally {
    off();
  }
}

async function waitForStatus(
  ctx: BackupContext,
  status: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const s = await ctx.qmp.execute<Status>("query-status");
    if (s.status === status) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond() && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
}
