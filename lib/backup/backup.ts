import type { ByteSink } from "../cli/types.ts";
import { makePrivateDir } from "../nbd/private_dir.ts";
import { NbdServer } from "../nbd/server.ts";
import { QmpClient } from "../qmp/client.ts";
import { VmaWriter } from "../vma/writer.ts";
import { ClusterAssembler, type ClusterSink } from "./cluster_assembler.ts";
import {
  describeVm,
  listDisks,
  selectDisks,
  type VmDescription,
} from "./inventory.ts";
import { cancelJobs, deleteNodes, JobWatcher } from "./jobs.ts";
import type { Progress } from "./progress.ts";
import {
  enableBackgroundSnapshot,
  VmstateReceiver,
  vmstateSizeHint,
} from "./vmstate.ts";

export interface BackupOptions {
  qmpPath: string;
  sink: ByteSink;
  configs?: { name: string; data: Uint8Array }[];
  drives?: string[];
  /** Bytes per second for each job; 0 or absent: unlimited. */
  speed?: number;
  /** QEMU's copy workers per job (x-perf.max-workers): bounds data in flight. */
  maxWorkers?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Called once the backup's instant is fixed (the transaction returned). */
  onStarted?: (info: { disks: string[]; privateDir: string }) => void;
  /** Also save RAM and device state (a background snapshot) of the same instant. */
  vmstate?: boolean;
}

export interface BackupResult {
  description: VmDescription;
  bytes: number;
  archiveBytes: number;
  seconds: number;
  /** With `vmstate`: the stream's size and how long the guest was paused. */
  vmstate?: { bytes: number; pausedMs: number };
}

/** The name of the config that describes the VM. */
export const VM_CONFIG_NAME = "vmabak.json";

const encoder = new TextEncoder();

/**
 * Backs up every disk of a running VM at one instant: QEMU's backup jobs
 * (copy-before-write) push the disks over NBD into a private unix socket of
 * ours; clusters go into the VMA writer as they arrive. On any failure or
 * abort the jobs are cancelled and every node vmabak added is removed; the
 * VM keeps running. The caller commits or aborts the output.
 */
export async function backupVm(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  const qmp = await QmpClient.connect(options.qmpPath);
  const run = Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const nodes: string[] = [];
  const jobIds: string[] = [];
  let server: NbdServer | undefined;
  let receiver: VmstateReceiver | undefined;
  let restoreMigration: (() => Promise<void>) | undefined;
  let stoppedByUs = false;
  let pause = { stopUs: 0, resumeUs: 0 };
  let migration = "none";
  const offEvents = qmp.onEvent((e) => {
    if (e.event === "STOP") pause = { stopUs: e.timestampUs, resumeUs: 0 };
    if (e.event === "RESUME") pause.resumeUs = e.timestampUs;
    if (e.event === "MIGRATION") {
      migration = e.data.status as string;
      if (["failed", "cancelled"].includes(migration)) {
        fail(new Error(`Cannot save the VM state: migration ${migration}`));
      }
    }
  });
  let dir: string | undefined;
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
  };
  const onAbort = () => fail(signal.reason);
  signal.addEventListener("abort", onAbort);
  try {
    const running = await qmp.execute<{ id: string }[]>("query-jobs");
    const ours = running.filter((j) => j.id.startsWith("vmabak-"));
    if (ours.length > 0) {
      throw new Error(
        `Cannot start backup: vmabak job ${
          ours[0]!.id
        } is already running on this VM`,
      );
    }
    const disks = selectDisks(await listDisks(qmp), options.drives ?? []);
    if (disks.length === 0) {
      throw new Error("Cannot start backup: the VM has no writable disk");
    }
    const vmstate = options.vmstate === true;
    if (vmstate) restoreMigration = await enableBackgroundSnapshot(qmp);
    const description = await describeVm(qmp, disks, vmstate);

    const writer = new VmaWriter(options.sink);
    writer.addConfig(
      VM_CONFIG_NAME,
      encoder.encode(JSON.stringify(description, null, 2) + "\n"),
    );
    for (const c of options.configs ?? []) writer.addConfig(c.name, c.data);
    const ids = disks.map((d) => writer.addDevice(d.name, d.size));
    const vmstateId = vmstate
      ? writer.addDevice("vmstate", vmstateSizeHint(description.memoryBytes))
      : 0;
    await writer.start();

    // Once the backup has failed, take and drop whatever QEMU still sends:
    // refusing it would turn into I/O errors of the guest's own writes.
    const sink: ClusterSink = {
      writeCluster(devId, c, data) {
        if (failure !== undefined) return Promise.resolve();
        return writer.writeCluster(devId, c, data).catch((error) => {
          fail(error);
        });
      },
    };
    const assemblers = disks.map((d, i) =>
      new ClusterAssembler({ devId: ids[i]!, size: d.size, sink })
    );
    dir = await makePrivateDir("vmabak-");
    server = await NbdServer.listen({
      path: `${dir}/nbd.sock`,
      exports: disks.map((d, i) => ({
        name: `disk${i}`,
        size: d.size,
        handler: assemblers[i]!,
      })),
    });

    for (const [i] of disks.entries()) {
      const node = `vmabak-${run}-tgt${i}`;
      await qmp.execute("blockdev-add", {
        driver: "nbd",
        "node-name": node,
        server: { type: "unix", path: server.path },
        export: `disk${i}`,
        "reconnect-delay": 5,
      });
      nodes.push(node);
    }
    disks.forEach((_, i) => jobIds.push(`vmabak-${run}-job${i}`));
    if (vmstate) {
      receiver = new VmstateReceiver(`${dir}/vmstate.sock`, (c, data) => {
        if (failure !== undefined) return Promise.resolve();
        return writer.writeCluster(vmstateId, c, data);
      });
      receiver.done.catch(fail);
      // One instant for RAM and disks: the guest is paused from here until the
      // background snapshot starts (milliseconds), never for the backup.
      const status = await qmp.execute<{ status: string }>("query-status");
      if (status.status === "running") {
        await qmp.execute("stop");
        stoppedByUs = true;
      }
    }
    let vmstateResult: BackupResult["vmstate"];
    const watcher = new JobWatcher(qmp, jobIds);
    try {
      signal.throwIfAborted();
      await qmp.execute("transaction", {
        actions: disks.map((d, i) => ({
          type: "blockdev-backup",
          data: {
            "job-id": jobIds[i],
            device: d.node,
            target: nodes[i],
            sync: "full",
            "auto-finalize": false,
            "auto-dismiss": false,
            ...(options.speed ? { speed: options.speed } : {}),
            "x-perf": { "max-workers": options.maxWorkers ?? 8 },
          },
        })),
        properties: { "completion-mode": "grouped" },
      });
      if (vmstate) {
        await qmp.execute("migrate", { uri: `unix:${receiver!.path}` });
        // QEMU 7.2 resumes the VM itself once the background snapshot runs.
        for (let i = 0; stoppedByUs && i < 40; i++) {
          const s = await qmp.execute<{ status: string }>("query-status");
          if (s.status === "running") break;
          if (s.status === "paused" && i >= 10) {
            await qmp.execute("cont").catch(() => {});
          }
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      options.onStarted?.({ disks: disks.map((d) => d.name), privateDir: dir });

      const total = disks.reduce((a, d) => a + d.size, 0);
      const progress = () =>
        options.onProgress?.({
          done: assemblers.reduce((a, x) => a + x.received, 0),
          total,
          elapsedMs: performance.now() - started,
          archiveBytes: writer.bytesWritten,
        });
      // Wait until every job is pending (grouped: all of them together).
      for (;;) {
        if (failure !== undefined) throw failure;
        if (qmp.error) throw qmp.error;
        if (server.error) throw server.error;
        const states = [...watcher.jobs.values()];
        const bad = [...watcher.jobs.entries()].find(([, s]) =>
          s.ended || ["aborting", "concluded"].includes(s.status)
        );
        if (bad) {
          throw new Error(
            `Cannot back up: QEMU's job ${bad[0]} failed: ${
              bad[1].ended?.error ?? bad[1].status
            }`,
          );
        }
        if (states.every((s) => s.status === "pending")) break;
        progress();
        await watcher.changed(500);
      }
      await qmp.execute("job-finalize", { id: jobIds[0] });
      for (;;) {
        if (qmp.error) throw qmp.error;
        const ended = [...watcher.jobs.entries()];
        const err = ended.find(([, s]) => s.ended?.error || s.ended?.cancelled);
        if (err) {
          throw new Error(
            `Cannot back up: QEMU's job ${err[0]} failed: ${
              err[1].ended?.error ?? "cancelled"
            }`,
          );
        }
        if (ended.every(([, s]) => s.ended && s.status === "concluded")) break;
        await watcher.changed(500);
      }
      for (const id of jobIds) await qmp.execute("job-dismiss", { id });
      jobIds.length = 0;
      if (failure !== undefined) throw failure;
      if (server.error) throw server.error;
      for (const [i, a] of assemblers.entries()) {
        if (!a.isComplete()) {
          throw new Error(
            `Cannot finish backup: disk ${disks[i]!.name} misses clusters ${
              a.missingClusters(3).join(", ")
            }`,
          );
        }
      }
      if (receiver !== undefined) {
        const got = await receiver.done;
        for (let i = 0; migration !== "completed"; i++) {
          if (failure !== undefined) throw failure;
          const m = await qmp.execute<{ status?: string }>("query-migrate");
          if (m.status === "completed") break;
          if (m.status === "failed" || m.status === "cancelled" || i > 600) {
            throw new Error(`Cannot save the VM state: migration ${m.status}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        vmstateResult = {
          bytes: got.bytes,
          pausedMs: pause.resumeUs > pause.stopUs
            ? (pause.resumeUs - pause.stopUs) / 1000
            : NaN,
        };
      }
      await writer.finish();
      progress();
    } finally {
      watcher.close();
    }
    await deleteNodes(qmp, nodes);
    nodes.length = 0;
    return {
      description,
      bytes: disks.reduce((a, d) => a + d.size, 0),
      archiveBytes: writer.bytesWritten,
      seconds: (performance.now() - started) / 1000,
      ...(vmstateResult ? { vmstate: vmstateResult } : {}),
    };
  } catch (error) {
    fail(error);
    throw failure;
  } finally {
    signal.removeEventListener("abort", onAbort);
    offEvents();
    receiver?.close();
    if (!qmp.error) {
      if (failure !== undefined && receiver !== undefined) {
        await qmp.execute("migrate_cancel").catch(() => {});
      }
      if (stoppedByUs) {
        const s = await qmp.execute<{ status: string }>("query-status").catch(
          () => ({ status: "" }),
        );
        if (s.status === "paused") await qmp.execute("cont").catch(() => {});
      }
      await cancelJobs(qmp, jobIds).catch(() => {});
      await deleteNodes(qmp, nodes).catch(() => {});
      await restoreMigration?.().catch(() => {});
    }
    await server?.close();
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    await qmp.close();
  }
}
