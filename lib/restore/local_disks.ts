/**
 * The local files of a live restore: a qcow2 overlay per streamed disk,
 * backed by the disk's NBD export, and whole raw copies of the devices that
 * cannot be streamed (firmware flash, read-only drives). All created
 * exclusively, 0600.
 */
import { createExclusive, fileError, writeAllTo } from "../io/safe_file.ts";
import type { NbdExport } from "../nbd/server.ts";

/** A tool (`qemu-img`) failed; `detail` is the first line it printed. */
export class ToolError extends Error {
  override name = "ToolError";
  constructor(readonly tool: string, readonly detail: string) {
    super(`Cannot run ${tool}: ${detail}`);
  }
}

/** Runs a tool without a shell; its first stderr line becomes the error. */
export async function runTool(cmd: string, args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new ToolError(cmd, (error as Error).message);
  }
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    throw new ToolError(cmd, why || `exit code ${out.code}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * QEMU's description of an NBD export on a unix socket, as a `json:`
 * backing file name: JSON escapes whatever the names hold, and nothing in
 * it is parsed as a URI or a `key=value,...` option string.
 */
export function nbdBacking(socket: string, exportName: string): string {
  return `json:${
    JSON.stringify({
      driver: "raw",
      file: {
        driver: "nbd",
        server: { type: "unix", path: socket },
        export: exportName,
      },
    })
  }`;
}

/**
 * Creates `path` (exclusive, 0600) and makes it a qcow2 image of `size`
 * bytes backed by `backing`: every read of a cluster the overlay does not
 * hold goes to the export, every write stays local.
 */
export async function createOverlay(
  path: string,
  size: number,
  backing: string,
): Promise<void> {
  (await createExclusive(path, { what: "overlay" })).close();
  await runTool("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "raw",
    "-b",
    backing,
    path,
    String(size),
  ]);
}

const COPY_CHUNK = 1024 * 1024;

function isAllZero(b: Uint8Array): boolean {
  const words = new Uint32Array(b.buffer, b.byteOffset, b.length >> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < b.length; i++) {
    if (b[i] !== 0) return false;
  }
  return true;
}

/** Copies an export into a new sparse raw file (exclusive, 0600). */
export async function copyExport(
  exp: NbdExport,
  path: string,
  signal?: AbortSignal,
): Promise<void> {
  const file = await createExclusive(path, { what: "disk image" });
  const where = { what: "disk image", path };
  try {
    const buf = new Uint8Array(COPY_CHUNK);
    for (let offset = 0; offset < exp.size; offset += COPY_CHUNK) {
      signal?.throwIfAborted();
      const chunk = buf.subarray(0, Math.min(COPY_CHUNK, exp.size - offset));
      await exp.handler.read!(offset, chunk);
      if (isAllZero(chunk)) continue;
      try {
        await file.seek(offset, Deno.SeekMode.Start);
      } catch (error) {
        throw fileError("write", where.what, path, error);
      }
      await writeAllTo(file, chunk, where);
    }
    try {
      await file.truncate(exp.size);
      await file.sync();
    } catch (error) {
      throw fileError("write", where.what, path, error);
    }
  } finally {
    file.close();
  }
}

/** Virtual size (-1 if not told) and backing file of qcow2 image `path` (read with -U: QEMU may hold it). */
export async function qcow2Info(
  path: string,
): Promise<{ size: number; backing: string | null }> {
  const info = JSON.parse(
    await runTool("qemu-img", [
      "info",
      "-U",
      "--output=json",
      "-f",
      "qcow2",
      path,
    ]),
  ) as { "virtual-size"?: number; "backing-filename"?: string };
  return {
    size: info["virtual-size"] ?? -1,
    backing: info["backing-filename"] ?? null,
  };
}

/** Whether qcow2 image `path` still names a backing file (read with -U: QEMU may hold it). */
export async function backingOf(path: string): Promise<string | null> {
  return (await qcow2Info(path)).backing;
}
