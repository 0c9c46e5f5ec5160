/**
 * The directory of a live restore: made new (0700, exclusive files), or
 * taken up again after an interrupted run. A marker file, `.vmabak-live`,
 * holds the archive's uuid from creation until the VM runs from local files
 * only; a directory without it (or of another archive) is never touched.
 */
import {
  fileError,
  makePrivateDir,
  writeFileExclusive,
} from "../io/safe_file.ts";
import type { NbdExport } from "../nbd/server.ts";
import { printable } from "../text/escape.ts";
import { deviceFileName } from "../vma/extract.ts";
import { formatUuid, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import {
  copyExport,
  createOverlay,
  nbdBacking,
  qcow2Info,
  runTool,
} from "./local_disks.ts";
import { type OverlayDisk, RESUME_SCRIPT } from "./plan.ts";
import { qemuRunning } from "./qemu_daemon.ts";

export const LIVE_MARKER = ".vmabak-live";
export const PID_FILE = "qemu.pid";

/** The directory cannot be used (exists and is not an interrupted live restore of this archive). */
export class LiveDirError extends Error {
  override name = "LiveDirError";
}

export interface LiveDirSetup {
  header: VmaHeader;
  exports: NbdExport[];
  disks: OverlayDisk[];
  /** The export socket the overlays are backed by. */
  socket: string;
  script: string;
  log: (line: string) => void;
  signal: AbortSignal;
}

/** What is left to do in the directory. */
export interface LiveDirState {
  /** Every overlay's path. */
  overlays: string[];
  /** The disks whose overlay is still backed by the archive. */
  streams: OverlayDisk[];
}

/** Makes a new DIR: marker, configs, overlays, whole copies, resume.sh. */
export async function makeLiveDir(
  dir: string,
  setup: LiveDirSetup,
): Promise<LiveDirState> {
  await makePrivateDir(dir, "target directory");
  await writeFileExclusive(
    `${dir}/${LIVE_MARKER}`,
    new TextEncoder().encode(`${formatUuid(setup.header.uuid)}\n`),
    { what: "marker" },
  );
  for (const c of setup.header.configs) {
    await writeFileExclusive(`${dir}/${c.name}`, c.data, { what: "config" });
  }
  const overlaid = new Set(setup.disks.map((d) => d.device));
  const overlays: string[] = [];
  for (const exp of setup.exports) {
    if (exp.name === VMA_VMSTATE_NAME) continue; // a cold boot: not a disk
    if (overlaid.has(exp.name)) {
      const path = `${dir}/${deviceFileName(exp.name, "qcow2")}`;
      await createOverlay(path, exp.size, nbdBacking(setup.socket, exp.name));
      overlays.push(path);
    } else {
      setup.log(
        `copying ${printable(exp.name, 80)} whole (it is not streamed)`,
      );
      await copyExport(exp, `${dir}/${deviceFileName(exp.name)}`, setup.signal);
    }
  }
  await writeFileExclusive(
    `${dir}/${RESUME_SCRIPT}`,
    new TextEncoder().encode(setup.script),
    { what: "script", mode: 0o700 },
  );
  return { overlays, streams: [...setup.disks] };
}

/**
 * Takes up an interrupted live restore in `dir`: its marker names this
 * archive, its VM no longer runs, every overlay is there with this disk's
 * size and is backed by this disk's export (then it is pointed at the new
 * socket) or by nothing (its stream had completed).
 */
export async function reopenLiveDir(
  dir: string,
  setup: LiveDirSetup,
): Promise<LiveDirState> {
  const exists = `Cannot create target directory ${dir}: it already exists`;
  const marker = await readSmallFile(`${dir}/${LIVE_MARKER}`);
  if (marker === null) throw new LiveDirError(exists);
  if (marker.trim() !== formatUuid(setup.header.uuid)) {
    throw new LiveDirError(
      `${exists}, from a live restore of another archive`,
    );
  }
  const pidText = await readSmallFile(`${dir}/${PID_FILE}`);
  const pid = Number(pidText?.trim());
  if (pidText !== null && pid > 0 && qemuRunning(pid, `${dir}/${PID_FILE}`)) {
    throw new LiveDirError(
      `Cannot continue the live restore in ${dir}: its VM still runs (QEMU pid ${pid})`,
    );
  }
  const overlays: string[] = [];
  const streams: OverlayDisk[] = [];
  for (const disk of setup.disks) {
    const path = `${dir}/${deviceFileName(disk.device, "qcow2")}`;
    const exp = setup.exports.find((e) => e.name === disk.device)!;
    const info = await overlayInfo(path);
    if (info.size !== exp.size) {
      throw new LiveDirError(
        `Cannot continue the live restore in ${dir}: ${
          printable(path)
        } is not an overlay of ${printable(disk.device, 80)}`,
      );
    }
    overlays.push(path);
    if (info.backing === null) continue; // streamed completely
    if (backingExport(info.backing) !== disk.device) {
      throw new LiveDirError(
        `Cannot continue the live restore in ${dir}: ${
          printable(path)
        } is backed by something else than the archive's ${
          printable(disk.device, 80)
        }`,
      );
    }
    await runTool("qemu-img", [
      "rebase",
      "-u",
      "-f",
      "qcow2",
      "-F",
      "raw",
      "-b",
      nbdBacking(setup.socket, disk.device),
      path,
    ]);
    streams.push(disk);
  }
  setup.log(
    `continuing the live restore in ${
      printable(dir)
    }: ${streams.length} of ${overlays.length} disks left to stream`,
  );
  return { overlays, streams };
}

async function readSmallFile(path: string): Promise<string | null> {
  try {
    const st = await Deno.lstat(path);
    if (!st.isFile || st.size > 4096) return null;
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw fileError("read", "file", path, error);
  }
}

async function overlayInfo(
  path: string,
): Promise<{ size: number; backing: string | null }> {
  const st = await Deno.lstat(path).catch(() => null);
  if (st === null || !st.isFile) {
    throw new LiveDirError(
      `Cannot continue the live restore: ${printable(path)} is missing`,
    );
  }
  return await qcow2Info(path);
}

/** The export name in a backing file name `nbdBacking` wrote, or null. */
export function backingExport(backing: string): string | null {
  if (!backing.startsWith("json:")) return null;
  try {
    const j = JSON.parse(backing.slice(5));
    return j?.driver === "raw" && j.file?.driver === "nbd" &&
        typeof j.file.export === "string"
      ? j.file.export
      : null;
  } catch {
    return null;
  }
}

/** The VM runs from local files only: the directory is an ordinary one now. */
export async function finishLiveDir(dir: string): Promise<void> {
  await Deno.remove(`${dir}/${LIVE_MARKER}`).catch(() => {});
}
