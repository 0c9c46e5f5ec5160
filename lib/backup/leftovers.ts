/**
 * Finds what vmabak runs whose process is gone left in QEMU and on the host
 * (a SIGKILL, a crash) and removes it in the safe order: jobs, exports, the
 * NBD server, snapshot nodes, devices back onto their original nodes (never
 * onto the node they use already), filters, fleecing and target nodes, their
 * files, their bitmaps (see bitmaps.ts), and migration settings put back.
 * A leftover of a run that is still alive means another vmabak works on
 * this VM: that is refused.
 */
import type { QmpClient } from "../qmp/client.ts";
import { cleanDeadRunBitmaps } from "./bitmaps.ts";
import { deleteExport, moveDevice } from "./fleecing.ts";
import { cancelJobs, deleteNodes } from "./jobs.ts";
import { isSettingsMarker, restoreSettings } from "./migration_settings.ts";
import { isRunAlive, type RunId, runOf } from "./run_id.ts";

export interface LeftoverOptions {
  /** This run (never cleaned). */
  self?: RunId;
  /** Directories where fleecing images and spooled VM state of dead runs may lie. */
  dirs: string[];
}

/** Another vmabak run is working on the same VM. */
export class ConcurrentRunError extends Error {
  override name = "ConcurrentRunError";
  readonly pid: number;
  constructor(pid: number, what: string) {
    super(
      `Cannot start: another vmabak (pid ${pid}) is working on this VM (it owns ${what})`,
    );
    this.pid = pid;
  }
}

interface NodeInfo {
  "node-name": string;
  drv: string;
  file: string;
}

interface GraphNode {
  id: number;
  name: string;
}

interface GraphEdge {
  parent: number;
  child: number;
  name: string;
}

/** Removes what dead runs left; returns one line per thing removed. */
export async function cleanLeftovers(
  qmp: QmpClient,
  options: LeftoverOptions,
): Promise<string[]> {
  const removed: string[] = [];
  const dead = (name: string) => {
    const run = runOf(name);
    if (run === undefined || run.tag === options.self?.tag) return false;
    if (isRunAlive(run)) throw new ConcurrentRunError(run.pid, name);
    return true;
  };

  const jobs = (await qmp.execute<{ id: string }[]>("query-jobs"))
    .map((j) => j.id).filter(dead);
  if (jobs.length > 0) {
    await cancelJobs(qmp, jobs);
    removed.push(...jobs.map((j) => `job ${j}`));
  }

  const exports = (await qmp.execute<{ id: string }[]>("query-block-exports"))
    .map((e) => e.id).filter(dead);
  for (const id of exports) {
    await deleteExport(qmp, id);
    removed.push(`export ${id}`);
  }

  const nodes = (await qmp.execute<NodeInfo[]>("query-named-block-nodes"))
    .filter((n) => dead(n["node-name"]));
  const names = nodes.map((n) => n["node-name"]);
  const kind = (n: string) => /-([a-z]+)\d+$/.exec(n)?.[1] ?? "";
  if (exports.length > 0 || names.some((n) => kind(n) === "acc")) {
    // The NBD server of a dead pull run (QEMU runs one at most).
    await qmp.execute("nbd-server-stop").then(
      () => removed.push("QEMU's NBD server"),
      () => {},
    );
  }
  for (const n of names.filter((n) => kind(n) === "acc")) {
    await deleteNodes(qmp, [n]);
    removed.push(`node ${n}`);
  }
  const cbws = names.filter((n) => kind(n) === "cbw");
  if (cbws.length > 0) {
    const graph = await qmp.execute<{ nodes: GraphNode[]; edges: GraphEdge[] }>(
      "x-debug-query-block-graph",
    );
    const blocks = await qmp.execute<
      { qdev?: string; inserted?: { "node-name": string } }[]
    >("query-block");
    for (const cbw of cbws) {
      const id = graph.nodes.find((g) => g.name === cbw)?.id;
      const childId = graph.edges.find((e) =>
        e.parent === id && e.name === "file"
      )?.child;
      const original = graph.nodes.find((g) => g.id === childId)?.name;
      for (const b of blocks) {
        if (b.inserted?.["node-name"] !== cbw || !b.qdev || !original) continue;
        if (await moveDevice(qmp, b.qdev, cbw, original)) {
          removed.push(`device ${b.qdev} back on node ${original}`);
        }
      }
      await deleteNodes(qmp, [cbw]);
      removed.push(`node ${cbw}`);
    }
  }
  const files: string[] = [];
  for (
    const n of nodes.filter((n) =>
      !["acc", "cbw"].includes(kind(n["node-name"]))
    )
  ) {
    await deleteNodes(qmp, [n["node-name"]]);
    removed.push(`node ${n["node-name"]}`);
    if (kind(n["node-name"]) === "fleece") files.push(n.file);
  }
  for (const f of files) {
    if (await removeFile(f)) removed.push(`file ${f}`);
  }
  for (const dir of options.dirs) {
    for (const f of await deadFiles(dir, options.self)) {
      if (await removeFile(f)) removed.push(`file ${f}`);
    }
  }

  // Bitmaps of dead runs (their exports are gone, so none is busy now).
  removed.push(...await cleanDeadRunBitmaps(qmp, options.self?.tag));

  const objects = await qmp.execute<{ name: string }[]>("qom-list", {
    path: "/objects",
  });
  for (const o of objects) {
    if (!isSettingsMarker(o.name) || !dead(o.name)) continue;
    await restoreSettings(qmp, o.name);
    removed.push(`migration settings of ${o.name} put back`);
  }
  return removed;
}

/** Files of runs that are gone (a live run's files, maybe of another VM, stay). */
async function deadFiles(dir: string, self?: RunId): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const run = runOf(e.name);
      if (run !== undefined && run.tag !== self?.tag && !isRunAlive(run)) {
        out.push(`${dir}/${e.name}`);
      }
    }
  } catch { /* no such directory */ }
  return out;
}

async function removeFile(path: string): Promise<boolean> {
  try {
    await Deno.remove(path, { recursive: true });
    return true;
  } catch {
    return false;
  }
}
