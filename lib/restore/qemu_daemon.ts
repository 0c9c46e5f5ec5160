/**
 * A QEMU that outlives vmabak: started with `-daemonize` (QEMU forks, the
 * child leaves vmabak's session, and the command returns once the VM is set
 * up, or fails with QEMU's own message), known by its pid file.
 */
import { QmpClient } from "../qmp/client.ts";

export const QEMU_BINARY = "qemu-system-x86_64";

/** QEMU did not start, or did not stop when told. */
export class QemuDaemonError extends Error {
  override name = "QemuDaemonError";
}

/** How long QEMU may take to set the VM up before vmabak gives up on it. */
const START_TIMEOUT_MS = 60_000;

/**
 * Runs QEMU with `args` plus `-daemonize -pidfile PIDFILE` and returns the
 * daemon's pid. Bounded: a QEMU still setting up after a minute is killed.
 */
export async function startQemuDaemon(
  args: string[],
  pidFile: string,
): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(QEMU_BINARY, {
      args: [...args, "-daemonize", "-pidfile", pidFile],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw new QemuDaemonError(
      `Cannot start ${QEMU_BINARY}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, START_TIMEOUT_MS);
  // The daemon keeps stderr until it is set up: wait for both ends.
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
  ]).finally(() => clearTimeout(timer));
  const pid = await readPid(pidFile);
  if (timedOut) {
    if (pid !== null) killQemu(pid, pidFile);
    throw new QemuDaemonError(
      `Cannot start ${QEMU_BINARY}: still setting up the VM after ${
        START_TIMEOUT_MS / 1000
      } s`,
    );
  }
  if (!status.success || pid === null) {
    const why = stderr.trim().split("\n").find((l) => l.trim() !== "") ??
      `exit code ${status.code}`;
    throw new QemuDaemonError(`Cannot start ${QEMU_BINARY}: ${why}`);
  }
  return pid;
}

async function readPid(pidFile: string): Promise<number | null> {
  try {
    const text = (await Deno.readTextFile(pidFile)).trim();
    return /^\d{1,9}$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/**
 * Whether `pid` is the QEMU that wrote `pidFile` and still runs: its command
 * line names the pid file (so a reused pid is never taken for it), and it
 * is not a zombie.
 */
export function qemuRunning(pid: number, pidFile: string): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (/\) Z /.test(stat)) return false;
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return cmdline.includes(pidFile);
  } catch {
    return false;
  }
}

function killQemu(pid: number, pidFile: string): void {
  if (!qemuRunning(pid, pidFile)) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/**
 * Stops the VM: `quit` over QMP, or SIGTERM when there is no working QMP
 * client (QEMU closes its images cleanly on both), then waits up to
 * `timeoutMs` for the process to end, and kills it if it did not.
 */
export async function stopQemu(
  pid: number,
  pidFile: string,
  qmp: QmpClient | undefined,
  timeoutMs = 30_000,
): Promise<void> {
  const quit = qmp === undefined || qmp.error !== undefined
    ? false
    : await qmp.execute("quit", undefined, { timeoutMs: 10_000 }).then(
      () => true,
      () => false,
    );
  if (!quit && qemuRunning(pid, pidFile)) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
  const deadline = Date.now() + timeoutMs;
  while (qemuRunning(pid, pidFile) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (qemuRunning(pid, pidFile)) {
    killQemu(pid, pidFile);
    for (let i = 0; i < 50 && qemuRunning(pid, pidFile); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Connects to the daemon's QMP socket, retrying for up to `timeoutMs`. */
export async function connectQmp(
  path: string,
  timeoutMs = 10_000,
): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await QmpClient.connect(path);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
