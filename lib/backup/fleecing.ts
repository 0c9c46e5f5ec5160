/**
 * The fleecing graph of one disk, in QEMU (QEMU 7.2 recipe, see
 * qemu-7.2-findings.md section 3):
 *
 *   device -> copy-before-write (cbw) -> disk          snapshot-access (acc) -> cbw
 *                      \-> fleecing qcow2 (old data of overwritten ranges)
 *
 * Each step registers its undo right after it succeeded, so the teardown
 * runs in the only safe order: acc before the device moves back, the device
 * back before cbw goes, cbw before the fleecing image.
 */
import { createExclusive } from "../io/safe_file.ts";
import type { QmpClient } from "../qmp/client.ts";
import { type BackupContext, deferQmp, nameFor } from "./context.ts";
import type { PlannedDisk } from "./context.ts";
import { deleteNodes } from "./jobs.ts";

export interface FleecingOptions {
  /** Directory of the fleecing images. */
  dir: string;
  /** Seconds a guest write may wait for the fleecing image before the snapshot breaks. */
  cbwTimeout: number;
  /**
   * An incremental: the frozen dirty bitmap (on each disk's node). The
   * filter copies old data only for the clusters it marks, and the snapshot
   * is readable only there (reads elsewhere fail with EINVAL).
   */
  bitmap?: string;
}

interface BlockInfo {
  qdev?: string;
  inserted?: { "node-name": string };
}

/** The node the guest device `qdev` uses now (query-block), or undefined. */
export async function deviceNode(
  qmp: QmpClient,
  qdev: string,
): Promise<string | undefined> {
  const blocks = await qmp.execute<BlockInfo[]>("query-block");
  return blocks.find((b) => b.qdev === qdev)?.inserted?.["node-name"];
}

/**
 * Moves the guest device onto `node`, unless it uses it already: setting a
 * device's drive to the node it uses aborts QEMU 7.2.
 */
export async function moveDevice(
  qmp: QmpClient,
  qdev: string,
  from: string,
  to: string,
): Promise<boolean> {
  const now = await deviceNode(qmp, qdev);
  if (now !== from) return false;
  await qmp.execute("qom-set", { path: qdev, property: "drive", value: to });
  return true;
}

/** Creates the fleecing image file: exclusively, 0600, qcow2 of the disk's size. */
export async function createFleecingImage(
  path: string,
  size: number,
): Promise<void> {
  (await createExclusive(path, { what: "fleecing image" })).close();
  const out = await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "qcow2", path, String(size)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output().catch((error) => {
    throw new Error(
      `Cannot create fleecing image ${path}: cannot run qemu-img: ${error.message}`,
    );
  });
  if (!out.success) {
    await Deno.remove(path).catch(() => {});
    throw new Error(
      `Cannot create fleecing image ${path}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

/** Names of what one disk's fleecing adds. */
export interface FleecingNames {
  fleece: string;
  cbw: string;
  acc: string;
  exportId: string;
  exportName: string;
}

export function fleecingNames(
  ctx: Pick<BackupContext, "run">,
  i: number,
): FleecingNames {
  return {
    fleece: nameFor(ctx, `fleece${i}`),
    cbw: nameFor(ctx, `cbw${i}`),
    acc: nameFor(ctx, `acc${i}`),
    exportId: nameFor(ctx, `exp${i}`),
    exportName: `disk${i}`,
  };
}

/** While the guest runs: the fleecing image, as a file and as a node. */
export async function addFleecingImage(
  ctx: BackupContext,
  d: PlannedDisk,
  options: FleecingOptions,
): Promise<string> {
  const names = fleecingNames(ctx, d.index);
  const path = `${options.dir}/${names.fleece}.qcow2`;
  await createFleecingImage(path, d.disk.size);
  ctx.stack.defer(() => Deno.remove(path).catch(() => {}));
  await ctx.qmp.execute("blockdev-add", {
    driver: "qcow2",
    "node-name": names.fleece,
    discard: "unmap",
    file: { driver: "file", filename: path },
  });
  deferQmp(ctx, () => deleteNodes(ctx.qmp, [names.fleece]));
  return path;
}

/** With the guest stopped: the copy-before-write filter and the device on it. */
export async function insertFilter(
  ctx: BackupContext,
  d: PlannedDisk,
  options: FleecingOptions,
): Promise<void> {
  const { qmp } = ctx;
  const names = fleecingNames(ctx, d.index);
  const original = d.disk.node;
  await qmp.execute("blockdev-add", {
    driver: "copy-before-write",
    "node-name": names.cbw,
    file: original,
    target: names.fleece,
    "on-cbw-error": "break-snapshot",
    "cbw-timeout": options.cbwTimeout,
    ...(options.bitmap !== undefined
      ? { bitmap: { node: original, name: options.bitmap } }
      : {}),
  });
  deferQmp(ctx, () => deleteNodes(qmp, [names.cbw]));
  if (!(await moveDevice(qmp, d.disk.qdev, original, names.cbw))) {
    throw new Error(
      `Cannot back up disk ${d.disk.name}: its device ${d.disk.qdev} no longer uses node ${original}`,
    );
  }
  deferQmp(ctx, () => moveDevice(qmp, d.disk.qdev, names.cbw, original));
}

/**
 * The snapshot node on the filter. The filter fixed the instant when it was
 * inserted, so this may come after the guest runs again (out of its pause).
 */
export async function addSnapshotAccess(
  ctx: BackupContext,
  d: PlannedDisk,
): Promise<void> {
  const { qmp } = ctx;
  const names = fleecingNames(ctx, d.index);
  await qmp.execute("blockdev-add", {
    driver: "snapshot-access",
    "node-name": names.acc,
    file: names.cbw,
    discard: "unmap",
  });
  deferQmp(ctx, () => deleteNodes(qmp, [names.acc]));
}

/** QEMU's NBD server on a unix socket in the private directory. */
export async function startNbdServer(ctx: BackupContext): Promise<string> {
  const path = `${ctx.privateDir}/qemu-nbd.sock`;
  try {
    await ctx.qmp.execute("nbd-server-start", {
      addr: { type: "unix", data: { path } },
    });
  } catch (error) {
    throw new Error(
      `Cannot start QEMU's NBD server: ${
        (error as Error).message
      } (another NBD server runs in this QEMU? back up with --mode push)`,
      { cause: error },
    );
  }
  deferQmp(ctx, () => ctx.qmp.execute("nbd-server-stop"));
  return path;
}

/** Exports the snapshot node, writable so that the reader can TRIM what it stored; with `bitmap`, that dirty bitmap too. */
export async function exportSnapshot(
  ctx: BackupContext,
  d: PlannedDisk,
  bitmap?: string,
): Promise<string> {
  const names = fleecingNames(ctx, d.index);
  await ctx.qmp.execute("block-export-add", {
    type: "nbd",
    id: names.exportId,
    "node-name": names.acc,
    name: names.exportName,
    writable: true,
    // A dirty bitmap of the disk's own node, as `qemu:dirty-bitmap:NAME`
    // (the {node, name} form: a plain name is not found from `acc`).
    ...(bitmap !== undefined
      ? { bitmaps: [{ node: d.disk.node, name: bitmap }] }
      : {}),
  });
  deferQmp(ctx, () => deleteExport(ctx.qmp, names.exportId));
  return names.exportName;
}

/** Deletes an export and waits until QEMU says it is gone (its clients dropped). */
export async function deleteExport(qmp: QmpClient, id: string): Promise<void> {
  const gone = qmp.waitEvent(
    (e) => e.event === "BLOCK_EXPORT_DELETED" && e.data.id === id,
    { timeoutMs: 10_000 },
  );
  gone.catch(() => {});
  try {
    await qmp.execute("block-export-del", { id });
  } catch (error) {
    if (/not found|no export/i.test((error as Error).message)) return;
    await qmp.execute("block-export-del", { id, mode: "hard" });
  }
  await gone.catch(() => {});
}
