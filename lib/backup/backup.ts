/**
 * The backup of a running VM, as a script of stages:
 *
 *   inventory -> plan -> snapshot -> copy -> finalize
 *
 * Every stage that changes QEMU or the host registers its undo on one stack
 * right after the change succeeded; the stack unwinds in reverse order on
 * every exit, success included, so teardown mirrors set-up by construction.
 * The data path (push or pull) sits behind `DataPath`; the RAM state
 * (`--vmstate`) owns its branch in `vmstate.ts`.
 */
import type { ByteSink } from "../io/sink.ts";
import { makePrivateTempDir } from "../io/safe_file.ts";
import { QmpClient } from "../qmp/client.ts";
import type { ClusterSet } from "../chain/cluster_set.ts";
import { formatUuid, VMA_CLUSTER_SIZE } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import { VmaWriter } from "../vma/writer.ts";
import { planChanges, startIncremental } from "./changes.ts";
import type { ClusterSink } from "./cluster_assembler.ts";
import {
  type BackupContext,
  FailureLatch,
  type PlannedDisk,
} from "./context.ts";
import type { DataPath } from "./data_path.ts";
import { guestOstype, openGuestAgent } from "./guest_agent.ts";
import { fixInstant } from "./instant.ts";
import { describeVm, listDisks, type VmDescription } from "./inventory.ts";
import { selectDisks } from "./select_disks.ts";
import type { Progress } from "./progress.ts";
import { cleanLeftovers } from "./leftovers.ts";
import { PullPath } from "./pull.ts";
import { PushPath } from "./push.ts";
import { currentRun } from "./run_id.ts";
import { VmstateCapture, vmstateSizeHint } from "./vmstate.ts";
import {
  fullBackupNames,
  proxmoxBackupConfig,
  type ProxmoxBackupOptions,
} from "../proxmox/backup_config.ts";
import { checkPveArchive } from "../proxmox/check.ts";
import { freezeGuest } from "../qga/freeze.ts";
import { PVE_CONFIG_NAME } from "../proxmox/format.ts";

export type BackupMode = "push" | "pull";

export interface BackupOptions {
  qmpPath: string;
  sink: ByteSink;
  configs?: { name: string; data: Uint8Array }[];
  drives?: string[];
  /** Data path; default "pull". */
  mode?: BackupMode;
  /** Where the fleecing images and the spooled VM state go; default /var/tmp. */
  fleecingDir?: string;
  /** Seconds a guest write may wait on a fleecing image before the snapshot breaks (default 30). */
  cbwTimeout?: number;
  /** Pull: TRIM what was stored (default true; off only to measure). */
  trim?: boolean;
  /** Bytes of disk per second, per disk (push: per job); 0 or absent: unlimited. */
  speed?: number;
  /** QEMU's copy workers per job (x-perf.max-workers): bounds data in flight. */
  maxWorkers?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Called once the backup's instant is fixed. */
  onStarted?: (info: { disks: string[]; privateDir: string }) => void;
  /** Also save RAM and device state (a background snapshot) of the same instant. */
  vmstate?: boolean;
  /** Leave a dirty bitmap per disk for the next incremental (default true). */
  track?: boolean;
  /** An incremental: only what changed since this archive (the chain's last; pull mode). */
  since?: { label: string; header: VmaHeader };
  /** With `since`: take a full backup when the bitmaps cannot serve, instead of failing. */
  orFull?: boolean;
  /** How the stored qemu-server.conf names storage and VM id. */
  proxmox?: ProxmoxBackupOptions;
  /** Told what the stored qemu-server.conf leaves out, or that the guest could not be frozen. */
  onNotice?: (text: string) => void;
  /** Freeze the guest's file systems through its agent around the instant. */
  qga?: { path: string; timeoutMs: number; required: boolean };
}

export interface BackupResult {
  description: VmDescription;
  mode: BackupMode;
  bytes: number;
  archiveBytes: number;
  seconds: number;
  /** How long vmabak paused the guest, when it paused it (and QEMU said when). */
  pausedMs?: number;
  /** With `vmstate`: the stream's size. */
  vmstate?: { bytes: number };
  /** An incremental: changed clusters per disk name. */
  incremental?: Record<string, number>;
  /** Why `since` was not honoured (with `orFull`): this is a full backup. */
  fullInstead?: string;
  /** With `qga`: file systems the agent froze, and for how long. */
  frozen?: { filesystems: number; ms: number };
}

/** The name of the config that describes the VM. */
export const VM_CONFIG_NAME = "vmabak.json";

/** Disk-backed on most hosts, where $TMPDIR is often RAM. */
export const DEFAULT_FLEECING_DIR = "/var/tmp";

const encoder = new TextEncoder();

/** Where the private directories of runs are made (Deno.makeTempDir's choice). */
export function tempDir(): string {
  return Deno.env.get("TMPDIR") ?? "/tmp";
}

/**
 * Backs up every disk of a running VM at one instant into a VMA archive
 * written to `options.sink`. On any failure or abort, everything vmabak
 * changed in QEMU is undone and the VM keeps running; the caller commits or
 * aborts the output.
 */
export async function backupVm(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  await using stack = new AsyncDisposableStack();
  const failure = new FailureLatch();
  const onAbort = () => failure.fail(signal.reason);
  signal.addEventListener("abort", onAbort);
  stack.defer(() => signal.removeEventListener("abort", onAbort));
  try {
    const qmp = await QmpClient.connect(options.qmpPath);
    stack.defer(() => qmp.close());
    const run = currentRun();
    const fleecingDir = options.fleecingDir ?? DEFAULT_FLEECING_DIR;

    // Leftovers of runs that were killed go first; a live run is refused.
    await cleanLeftovers(qmp, { self: run, dirs: [fleecingDir, tempDir()] });

    // Inventory: what the VM has, and what to back up.
    const all = await listDisks(qmp);
    const wanted = options.drives ?? [];
    const selected = selectDisks(
      all,
      wanted,
      wanted.length > 0 ? await fullBackupNames(qmp, all) : null,
    );
    if (selected.length === 0) {
      throw new Error("Cannot start backup: the VM has no writable disk");
    }
    // With --qga the guest agent tells the guest's OS (ostype).
    const agent = options.qga ? openGuestAgent(stack, options.qga) : undefined;
    const os = agent !== undefined &&
        !(options.configs ?? []).some((c) => c.name === PVE_CONFIG_NAME)
      ? await guestOstype(agent, options.qga!.timeoutMs)
      : null;
    if (os?.note) options.onNotice?.(`${PVE_CONFIG_NAME}: ${os.note}`);
    // The Proxmox description also names the archive's devices (drive-<virtdev>).
    const pve = await proxmoxBackupConfig(
      qmp,
      selected,
      options.configs ?? [],
      { ...options.proxmox, ostype: os?.ostype ?? null },
      options.since?.header,
    );
    const disks = pve.disks;
    const vmstate = options.vmstate === true;
    const description = await describeVm(qmp, disks, vmstate);

    // Plan: the archive's layout.
    const writer = new VmaWriter(options.sink);
    writer.addConfig(
      VM_CONFIG_NAME,
      encoder.encode(JSON.stringify(description, null, 2) + "\n"),
    );
    if (pve.generated) writer.addConfig(PVE_CONFIG_NAME, pve.generated);
    for (const c of options.configs ?? []) writer.addConfig(c.name, c.data);
    const planned: PlannedDisk[] = disks.map((disk, index) => ({
      disk,
      index,
      devId: writer.addDevice(disk.name, disk.size),
    }));
    if (pve.data !== null) {
      checkPveArchive(
        pve.data,
        planned.map((p) => ({
          id: p.devId,
          name: p.disk.name,
          size: p.disk.size,
        })),
      );
    }
    for (const note of pve.notes) {
      options.onNotice?.(`${PVE_CONFIG_NAME}: ${note}`);
    }
    const vmstateId = vmstate
      ? writer.addDevice("vmstate", vmstateSizeHint(description.memoryBytes))
      : 0;
    const privateDir = await makePrivateTempDir(`${run.tag}-`);
    stack.defer(() => Deno.remove(privateDir, { recursive: true }));
    const ctx: BackupContext = {
      qmp,
      run,
      stack,
      disks: planned,
      writer,
      clusters: droppingAfterFailure(writer, failure),
      privateDir,
      failure,
      signal,
    };
    // Change tracking, and the incremental's base: checked before anything changes.
    const changes = await planChanges(ctx, {
      uuid: formatUuid(writer.uuid),
      track: options.track !== false,
      ...(options.since !== undefined ? { since: options.since } : {}),
      orFull: options.orFull === true,
      mode: options.mode ?? "pull",
    });
    const frozenBitmap = changes.since !== undefined
      ? changes.tracking!.frozenName()
      : undefined;
    const path: DataPath = options.mode === "push"
      ? new PushPath(ctx, {
        ...(options.speed ? { speed: options.speed } : {}),
        ...(options.maxWorkers ? { maxWorkers: options.maxWorkers } : {}),
        holdJobs: vmstate,
      })
      : new PullPath(ctx, {
        dir: fleecingDir,
        cbwTimeout: options.cbwTimeout ?? 30,
        ...(options.trim === false ? { trim: false } : {}),
        ...(frozenBitmap !== undefined ? { bitmap: frozenBitmap } : {}),
        ...(options.speed ? { speed: options.speed } : {}),
      });
    const capture = vmstate
      ? await VmstateCapture.prepare(ctx, vmstateId, fleecingDir)
      : undefined;
    await path.prepare();
    // An incremental's header waits until its clusters are known.
    if (frozenBitmap === undefined) await writer.start();

    // Snapshot: one instant for every disk (and the RAM).
    const freeze = agent !== undefined
      ? await freezeGuest(stack, {
        ...options.qga!,
        connection: agent,
        onWarning: (text) => options.onNotice?.(text),
      })
      : undefined;
    const frozenAt = performance.now();
    // Bitmaps join the instant: in the jobs' transaction (push, no stop) or
    // inside the one stop of the filters' insertion (pull).
    const instant = await fixInstant(ctx, {
      stop: path.needsStop,
      snapshot: () => path.snapshot(changes.tracking),
      ...(capture ? { startVmstate: () => capture.start() } : {}),
    });
    await freeze?.thaw();
    const frozen = freeze && freeze.frozen > 0
      ? { filesystems: freeze.frozen, ms: performance.now() - frozenAt }
      : undefined;
    await path.afterInstant();
    let incremental: Record<string, number> | undefined;
    let total = disks.reduce((a, d) => a + d.size, 0);
    if (frozenBitmap !== undefined) {
      const sets = await (path as PullPath).changedClusters();
      await startIncremental(writer, description, changes.since!.header, sets);
      incremental = Object.fromEntries(
        [...sets].map(([name, set]) => [name, set.count]),
      );
      total = disks.reduce(
        (a, d) => a + changedBytes(sets.get(d.name)!, d.size),
        0,
      );
    }
    options.onStarted?.({ disks: disks.map((d) => d.name), privateDir });

    // Copy: every cluster of every disk (an incremental's changed ones) into the archive.
    const progress = () =>
      options.onProgress?.({
        done: path.done,
        total,
        elapsedMs: performance.now() - started,
        archiveBytes: writer.bytesWritten,
      });
    await path.copy(progress);
    const stateBytes = capture ? await capture.finish() : undefined;

    // Finalize: the archive's last extent.
    failure.throwIfFailed();
    await writer.finish();
    changes.tracking?.succeeded();
    const older = changes.tracking?.track ? changes.tracking.others.length : 0;
    if (older > 0) {
      options.onNotice?.(
        `the disks also track changes since ${older} other archive(s) (other chains; each bitmap costs the guest's writes a little): vmabak cleanup lists and removes them`,
      );
    }
    progress();
    return {
      description,
      mode: path.mode,
      bytes: total,
      archiveBytes: writer.bytesWritten,
      seconds: (performance.now() - started) / 1000,
      ...(instant.pausedMs !== undefined ? { pausedMs: instant.pausedMs } : {}),
      ...(stateBytes !== undefined ? { vmstate: { bytes: stateBytes } } : {}),
      ...(incremental !== undefined ? { incremental } : {}),
      ...(changes.fullInstead !== undefined
        ? { fullInstead: changes.fullInstead }
        : {}),
      ...(frozen ? { frozen } : {}),
    };
  } catch (error) {
    failure.fail(error);
    throw failure.error;
  }
}

/**
 * Clusters into the writer. Once the backup has failed, takes and drops
 * whatever QEMU still sends: refusing it would turn into I/O errors of the
 * guest's own writes.
 */
function droppingAfterFailure(
  writer: VmaWriter,
  failure: FailureLatch,
): ClusterSink {
  return {
    writeClusters(devId, first, count, data, zeroMask) {
      if (failure.failed) return Promise.resolve();
      return writer.writeClusters(devId, first, count, data, zeroMask).catch(
        (error) => {
          failure.fail(error);
        },
      );
    },
  };
}

/** Bytes of a disk of `size` bytes that the clusters of `set` cover. */
function changedBytes(set: ClusterSet, size: number): number {
  const last = Math.ceil(size / VMA_CLUSTER_SIZE) - 1;
  return set.count * VMA_CLUSTER_SIZE -
    (set.has(last) ? (last + 1) * VMA_CLUSTER_SIZE - size : 0);
}
