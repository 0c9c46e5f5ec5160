/**
 * The migration settings a background snapshot of RAM needs, and their undo.
 *
 * Before changing anything, vmabak records the settings it is about to
 * change in the id of a QOM object of its own
 * (`vmabak-p<pid>s<start>-mig-bs<0|1>-ev<0|1>-bw<bytes>`, a `secret`), so a
 * later run can put them back when this one was killed (`restoreLeftover`).
 */
import type { QmpClient } from "../qmp/client.ts";
import type { RunId } from "./run_id.ts";

interface Capability {
  capability: string;
  state: boolean;
}

const ACTIVE = ["active", "setup", "pre-switchover", "device", "cancelling"];
const MARKER = /^vmabak-p\d+s\d+-mig-bs([01])-ev([01])-bw(\d+)$/;

/**
 * Turns on the `background-snapshot` migration capability (the RAM of the
 * instant `migrate` starts, saved while the guest runs on) and raises
 * `max-bandwidth` (QEMU's 128 MiB/s default makes saving slow). Returns the
 * function that puts back every capability and parameter it changed. Fails,
 * before anything else touches the VM, when QEMU cannot do it, saying why.
 */
export async function enableBackgroundSnapshot(
  qmp: QmpClient,
  run: RunId,
): Promise<() => Promise<void>> {
  const status = await qmp.execute<{ status?: string }>("query-migrate");
  if (status.status !== undefined && ACTIVE.includes(status.status)) {
    throw new Error(
      `Cannot save the VM state: a migration is already ${status.status}`,
    );
  }
  const caps = await qmp.execute<Capability[]>("query-migrate-capabilities");
  const params = await qmp.execute<Record<string, unknown>>(
    "query-migrate-parameters",
  );
  const had = (name: string) =>
    caps.find((c) => c.capability === name)?.state ?? false;
  if (!caps.some((c) => c.capability === "background-snapshot")) {
    throw new Error(
      "Cannot save the VM state: this QEMU has no background-snapshot migration (QEMU 6.0 or newer needed); back up without --vmstate",
    );
  }
  const bandwidth = Number(params["max-bandwidth"] ?? 134217728);
  const marker = `${run.tag}-mig-bs${had("background-snapshot") ? 1 : 0}-ev${
    had("events") ? 1 : 0
  }-bw${bandwidth}`;
  await qmp.execute("object-add", {
    "qom-type": "secret",
    id: marker,
    data: "vmabak",
  });
  const undo = () => restoreSettings(qmp, marker);
  try {
    await qmp.execute("migrate-set-capabilities", {
      capabilities: [
        { capability: "background-snapshot", state: true },
        { capability: "events", state: true },
      ],
    });
  } catch (error) {
    await undo();
    const reason = (error as Error).message.replace(
      /^Cannot run QMP command [^:]+: /,
      "",
    );
    // Blame the kernel only when QEMU's own check of the kernel failed.
    const kernel = /host kernel/i.test(reason);
    const interrupted = /guest memory configuration/i.test(reason) &&
      ["failed", "cancelled"].includes(status.status ?? "");
    throw new Error(
      `Cannot save the VM state: QEMU refused a background snapshot (${reason})${
        kernel
          ? "; the host kernel lacks userfaultfd write-protection;"
          : interrupted
          ? `; an earlier background snapshot of this QEMU was interrupted (migration ${status.status}): QEMU 7.2 cannot take another until the VM is restarted, and may have left the guest's RAM write-protected (the guest then hangs at its next write to it): restart the VM, or`
          : ";"
      } back up without --vmstate`,
      { cause: error },
    );
  }
  await qmp.execute("migrate-set-parameters", {
    "max-bandwidth": 100 * 1024 ** 3,
  });
  return undo;
}

/** Whether `id` names a settings marker of vmabak's. */
export function isSettingsMarker(id: string): boolean {
  return MARKER.test(id);
}

/** A migration still runs and has sent nothing new for a while. */
export class MigrationStalledError extends Error {
  override name = "MigrationStalledError";
  constructor(readonly status: string, readonly stalledMs: number) {
    super(
      `Cannot wait for the background snapshot of the VM's RAM: it is still ${status} and sent nothing for ${
        Math.round(stalledMs / 1000)
      } s; vmabak does not cancel it (QEMU 7.2 would leave the guest's RAM write-protected and the VM stuck): it ends when its output drains`,
    );
  }
}

export interface MigrationInfo {
  status?: string;
  "error-desc"?: string;
  ram?: { transferred?: number };
}

/**
 * Waits until no migration runs and returns QEMU's last `query-migrate`.
 * Never cancels it: in QEMU 7.2, `migrate_cancel` of a background snapshot
 * mid-way leaves guest RAM write-protected by userfaultfd with nobody to
 * serve the faults (measured: the next write to a page not yet saved, e.g.
 * a `system_reset`, blocked QEMU for good, `stop` never answered). A
 * background snapshot into vmabak's spool always completes (the spool
 * drains to /dev/null when it cannot write), so waiting is enough; waits as
 * long as it makes progress and throws `MigrationStalledError` after
 * `stallMs` without any. `check` runs at every poll (it may throw).
 */
export async function waitMigrationEnd(
  qmp: QmpClient,
  options: { stallMs?: number; check?: () => void } = {},
): Promise<MigrationInfo> {
  const stallMs = options.stallMs ?? 60_000;
  let sent = -1;
  let since = Date.now();
  for (;;) {
    options.check?.();
    // A monitor that does not answer is stalled too (QEMU's main loop can
    // wait on a stuck migration stream).
    const m = await qmp.execute<MigrationInfo>("query-migrate", undefined, {
      timeoutMs: stallMs,
    });
    if (m.status === undefined || !ACTIVE.includes(m.status)) return m;
    const now = m.ram?.transferred ?? 0;
    if (now !== sent) {
      sent = now;
      since = Date.now();
    } else if (Date.now() - since > stallMs) {
      throw new MigrationStalledError(m.status, stallMs);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Puts back the settings recorded in a marker and deletes the marker, once
 * no migration runs (a background snapshot still being written, e.g. by a
 * killed run's spool, is waited for, never cancelled: see
 * `waitMigrationEnd`).
 */
export async function restoreSettings(
  qmp: QmpClient,
  marker: string,
): Promise<void> {
  const m = MARKER.exec(marker);
  if (m === null) {
    throw new Error(`Cannot restore migration settings: bad marker ${marker}`);
  }
  await waitMigrationEnd(qmp);
  await qmp.execute("migrate-set-parameters", {
    "max-bandwidth": Number(m[3]),
  });
  await qmp.execute("migrate-set-capabilities", {
    capabilities: [
      { capability: "background-snapshot", state: m[1] === "1" },
      { capability: "events", state: m[2] === "1" },
    ],
  });
  await qmp.execute("object-del", { id: marker });
}
