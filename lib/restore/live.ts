/**
 * `restore --live ARCHIVE DIR`: the VM runs at once from local qcow2
 * overlays backed by the archive's disks, served by vmabak over NBD, while
 * QEMU streams the rest into the overlays; then vmabak stops serving and
 * leaves the VM running from local files only.
 *
 * Stages: index and check (nothing created yet) → DIR, configs, overlays,
 * local copies, resume.sh → serve → QEMU (daemonized: it outlives vmabak)
 * → block-stream every disk → check no overlay has a backing file → stop
 * serving. Before QEMU runs, a failure removes DIR; after, the VM cannot run
 * without the export, so a failure or signal cancels the streams and stops
 * the VM, and DIR keeps the overlays (with what the guest wrote), still
 * backed by the archive. The archive is only read.
 */
import { NbdServer } from "../nbd/server.ts";
import { FileError, makePrivateTempDir } from "../io/safe_file.ts";
import type { QmpClient } from "../qmp/client.ts";
import { closeServed, indexServed } from "../serve/serve.ts";
import { printable } from "../text/escape.ts";
import { backingOf } from "./local_disks.ts";
import {
  finishLiveDir,
  makeLiveDir,
  PID_FILE,
  reopenLiveDir,
} from "./live_dir.ts";
import {
  overlayDisks,
  planRestore,
  restoreArgs,
  restoreScript,
  unmappedNotes,
} from "./plan.ts";
import { connectQmp, startQemuDaemon, stopQemu } from "./qemu_daemon.ts";
import {
  flushNodes,
  nodesWithBacking,
  streamAll,
  type StreamProgress,
} from "./stream.ts";

/** Refused before anything was created, or failed after. */
export class LiveRestoreError extends Error {
  override name = "LiveRestoreError";
}

export interface LiveRestoreOptions {
  bases: string[];
  /** Bytes per second each stream job may copy (QEMU's `speed`); unlimited when absent. */
  speed?: number;
  signal: AbortSignal;
  /** A line for the user (what happens, where things are). */
  log: (line: string) => void;
  progress: (p: StreamProgress) => void;
}

export interface LiveRestoreResult {
  pid: number;
  qmpSocket: string;
  /** The overlays, now standalone qcow2 images. */
  overlays: string[];
  /** Milliseconds from the start to QEMU running the VM, and to the end. */
  runningMs: number;
  totalMs: number;
}

export async function liveRestore(
  archive: string,
  dir: string,
  options: LiveRestoreOptions,
): Promise<LiveRestoreResult> {
  const start = performance.now();
  const { signal, log } = options;
  await using stack = new AsyncDisposableStack();
  // Index and check: nothing is created before this is done.
  const served = await indexServed(archive, {
    signal,
    bases: options.bases,
  });
  stack.defer(() => closeServed(served));
  const header = served.index.header;
  const plan = planRestore(header, dir);
  if (plan.kind === "none") {
    throw new LiveRestoreError(
      "Cannot restore --live: the archive has no vmabak.json or qemu-server.conf, so there is no VM to start (use vmabak restore or serve)",
    );
  }
  if (plan.kind === "vmabak" && plan.withState) {
    throw new LiveRestoreError(
      "Cannot restore --live: the archive holds the VM's RAM state, which QEMU loads before the VM runs; use vmabak restore",
    );
  }
  const disks = overlayDisks(plan);
  const overlaid = new Set(disks.map((d) => d.device));
  const args = restoreArgs(plan, dir, overlaid).flat();
  const script = restoreScript(plan, dir, overlaid)!;

  // Serve, then DIR and its files (removed again if new and the VM never ran).
  const sockets = await makePrivateTempDir("vmabak-live-");
  stack.defer(() => Deno.remove(sockets, { recursive: true }).catch(() => {}));
  const socket = `${sockets}/nbd.sock`;
  const server = await NbdServer.listen({
    path: socket,
    exports: served.exports,
    maxInFlight: 64,
  });
  stack.defer(() => server.close());
  const fresh = await Deno.lstat(dir).then(() => false, () => true);
  let keepDir = !fresh;
  stack.defer(async () => {
    if (!keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  });
  const setup = {
    header,
    exports: served.exports,
    disks,
    socket,
    script,
    log,
    signal,
  };
  if (fresh) { for (const note of unmappedNotes(plan)) log(note); }
  const { overlays, streams } = fresh
    ? await makeLiveDir(dir, setup).catch((error) => {
      // Another run made DIR meanwhile: not ours to remove.
      if (error instanceof FileError && error.path === dir) keepDir = true;
      throw error;
    })
    : await reopenLiveDir(dir, setup);
  signal.throwIfAborted();

  // The VM: from here on DIR holds what the guest writes.
  const pidFile = `${dir}/${PID_FILE}`;
  const qmpSocket = `${dir}/qmp.sock`;
  const pid = await startQemuDaemon(args, pidFile);
  keepDir = true;
  const runningMs = performance.now() - start;
  let qmp: QmpClient | undefined;
  let finished = false;
  stack.defer(async () => {
    if (!finished) await stopQemu(pid, pidFile, qmp);
    await qmp?.close();
  });
  log(
    `the VM runs: QEMU pid ${pid}, QMP ${printable(qmpSocket)}; streaming ${
      disks.map((d) => printable(d.device, 80)).join(", ")
    } from the archive`,
  );
  try {
    qmp = await connectQmp(qmpSocket);
    await streamAll(qmp, streams, {
      signal,
      onProgress: options.progress,
      ...(options.speed !== undefined ? { speed: options.speed } : {}),
    });
    await flushNodes(qmp, disks.map((d) => d.node));
    await checkStandalone(qmp, disks.map((d) => d.node), overlays);
  } catch (error) {
    throw new LiveRestoreError(
      `${
        (error as Error).message
      }; the VM was stopped (it cannot run without the archive); ${
        printable(dir)
      } keeps its overlays with what the guest wrote, still backed by the archive: run the same command again to go on`,
      { cause: error },
    );
  }
  await finishLiveDir(dir);
  finished = true;
  return {
    pid,
    qmpSocket,
    overlays,
    runningMs,
    totalMs: performance.now() - start,
  };
}

/** Checks that no overlay has a backing file, in QEMU and in its header. */
async function checkStandalone(
  qmp: QmpClient,
  nodes: string[],
  overlays: string[],
): Promise<void> {
  const still = await nodesWithBacking(qmp, nodes);
  if (still.length > 0) {
    throw new LiveRestoreError(
      `Cannot finish the live restore: node ${
        printable(still[0]!, 80)
      } still has a backing file after its stream`,
    );
  }
  for (const path of overlays) {
    if (await backingOf(path) !== null) {
      throw new LiveRestoreError(
        `Cannot finish the live restore: ${
          printable(path)
        } still names a backing file after its stream`,
      );
    }
  }
}
