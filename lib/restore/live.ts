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
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { deviceFileName } from "../vma/extract.ts";
import { makePrivateDir as makeSocketDir } from "../nbd/private_dir.ts";
import { NbdServer } from "../nbd/server.ts";
import { makePrivateDir, writeFileExclusive } from "../io/safe_file.ts";
import type { QmpClient } from "../qmp/client.ts";
import { closeServed, indexServed } from "../serve/serve.ts";
import { printable } from "../text/escape.ts";
import {
  backingOf,
  copyExport,
  createOverlay,
  nbdBacking,
} from "./local_disks.ts";
import {
  overlayDisks,
  planRestore,
  restoreArgs,
  restoreScript,
  RESUME_SCRIPT,
} from "./plan.ts";
import { connectQmp, startQemuDaemon, stopQemu } from "./qemu_daemon.ts";
import { nodesWithBacking, streamAll, type StreamProgress } from "./stream.ts";

/** Refused before anything was created, or failed after. */
export class LiveRestoreError extends Error {
  override name = "LiveRestoreError";
}

export interface LiveRestoreOptions {
  bases: string[];
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

/** The file name of a disk's overlay in DIR. */
export function overlayFileName(device: string): string {
  return deviceFileName(device).replace(/\.raw$/, ".qcow2");
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
  if (plan.kind === "proxmox") {
    for (const u of plan.plan.unmapped) {
      log(`not mapped from qemu-server.conf: ${printable(u)}`);
    }
  }

  // DIR and its files: removed again if the VM never ran.
  await makePrivateDir(dir, "target directory");
  let keepDir = false;
  stack.defer(async () => {
    if (!keepDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  });
  for (const c of header.configs) {
    await writeFileExclusive(`${dir}/${c.name}`, c.data, { what: "config" });
  }
  const sockets = await makeSocketDir("vmabak-live-");
  stack.defer(() => Deno.remove(sockets, { recursive: true }).catch(() => {}));
  const socket = `${sockets}/nbd.sock`;
  const server = await NbdServer.listen({
    path: socket,
    exports: served.exports,
    maxInFlight: 64,
  });
  stack.defer(() => server.close());
  const overlays: string[] = [];
  for (const exp of served.exports) {
    if (exp.name === VMA_VMSTATE_NAME) continue; // a cold boot: not a disk
    if (overlaid.has(exp.name)) {
      const path = `${dir}/${overlayFileName(exp.name)}`;
      await createOverlay(path, exp.size, nbdBacking(socket, exp.name));
      overlays.push(path);
    } else {
      log(`copying ${printable(exp.name, 80)} whole (it is not streamed)`);
      await copyExport(exp, `${dir}/${deviceFileName(exp.name)}`, signal);
    }
  }
  await writeFileExclusive(
    `${dir}/${RESUME_SCRIPT}`,
    new TextEncoder().encode(script),
    { what: "script", mode: 0o700 },
  );
  signal.throwIfAborted();

  // The VM: from here on DIR holds what the guest writes.
  const pidFile = `${dir}/qemu.pid`;
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
    await streamAll(qmp, disks, { signal, onProgress: options.progress });
  } catch (error) {
    throw new LiveRestoreError(
      `${
        (error as Error).message
      }; the VM was stopped (it cannot run without the archive); ${
        printable(dir)
      } keeps its overlays with what the guest wrote, still backed by the archive (to go on: vmabak restore --live --resume)`,
      { cause: error },
    );
  }

  const still = await nodesWithBacking(qmp, disks.map((d) => d.node));
  if (still.length > 0) {
    throw new LiveRestoreError(
      `Cannot finish the live restore: node ${
        printable(still[0]!, 80)
      } still has a backing file after its stream`,
    );
  }
  for (const path of overlays) {
    const backing = await backingOf(path);
    if (backing !== null) {
      throw new LiveRestoreError(
        `Cannot finish the live restore: ${
          printable(path)
        } still names a backing file after its stream`,
      );
    }
  }
  finished = true;
  return {
    pid,
    qmpSocket,
    overlays,
    runningMs,
    totalMs: performance.now() - start,
  };
}
