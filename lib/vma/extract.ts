import {
  createExclusive,
  errorCode,
  FileError,
  fileError,
  makePrivateDir,
  writeAllTo,
  writeAllToSync,
  writeFileExclusive,
} from "../io/safe_file.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import { checkFileNameLength, checkSafeName } from "./names.ts";
import type { VmaReader } from "./reader.ts";

export interface ExtractResult {
  files: string[];
  clusters: number;
  storedBytes: number;
}

/** The file name `extract` gives a device. */
export function deviceFileName(name: string): string {
  return name === VMA_VMSTATE_NAME
    ? "vmstate.bin"
    : `disk-${checkSafeName(name, "device")}.raw`;
}

/**
 * Checks, before anything is written, that every entry of the archive can
 * become a file in a target directory: safe names, short enough for the
 * file system, no two alike. Returns the device file names in device order.
 */
export function planExtract(reader: VmaReader): string[] {
  const h = reader.header;
  reader.checkReadable();
  for (const c of h.configs) {
    checkFileNameLength(checkSafeName(c.name, "config"), "config");
  }
  const names = h.devices.map((d) =>
    checkFileNameLength(deviceFileName(d.name), "device")
  );
  const all = [...h.configs.map((c) => c.name), ...names];
  if (new Set(all).size !== all.length) {
    throw new VmaError(
      "Cannot extract archive: two entries have the same file name",
    );
  }
  return names;
}

/**
 * Writes every device of an archive into `dir`, a new directory made 0700:
 * disks as sparse raw files (zero blocks stay holes), the vmstate stream as
 * `vmstate.bin` (every byte, in order), configs under their names, all
 * created exclusively with mode 0600. Names are checked first, so nothing
 * is written outside `dir`; every disk file is sized before any data is
 * written, so a size the file system cannot hold fails at once (and the
 * new directory is removed). Fails, after writing what it could, when the
 * archive breaks a rule or misses clusters.
 */
export async function extractArchive(
  reader: VmaReader,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractResult> {
  const h = reader.header;
  const names = planExtract(reader);
  await makePrivateDir(dir, "target directory");
  const files = new Map<number, { file: Deno.FsFile; path: string }>();
  const what = (id: number) =>
    files.get(id)!.path.endsWith("/vmstate.bin") ? "vmstate" : "disk image";
  try {
    try {
      for (const c of h.configs) {
        await writeFileExclusive(`${dir}/${c.name}`, c.data, {
          what: "config",
        });
      }
      for (const [i, d] of h.devices.entries()) {
        const path = `${dir}/${names[i]}`;
        const vmstate = d.name === VMA_VMSTATE_NAME;
        const file = await createExclusive(path, {
          what: vmstate ? "vmstate" : "disk image",
        });
        files.set(d.id, { file, path });
        if (!vmstate) await sizeFile(file, path, d.size);
      }
    } catch (error) {
      // Nothing but empty files yet: leave no trace.
      for (const f of files.values()) f.file.close();
      files.clear();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    let clusters = 0;
    let storedBytes = 0;
    for await (const ev of reader.clusters()) {
      options.signal?.throwIfAborted();
      const { file, path } = files.get(ev.device.id)!;
      const where = { what: what(ev.device.id), path };
      clusters++;
      if (ev.device.name === VMA_VMSTATE_NAME) {
        await writeAllTo(file, ev.data, where);
        storedBytes += ev.data.length;
        continue;
      }
      const base = ev.cluster * VMA_CLUSTER_SIZE;
      const valid = Math.min(VMA_CLUSTER_SIZE, ev.device.size - base);
      // Write each run of stored blocks; zero blocks stay holes.
      for (let j = 0; j < 16;) {
        if (!((ev.mask >>> j) & 1)) {
          j++;
          continue;
        }
        let k = j;
        while (k < 16 && (ev.mask >>> k) & 1) k++;
        const start = j * VMA_BLOCK_SIZE;
        const end = Math.min(k * VMA_BLOCK_SIZE, valid);
        // Sync calls: an async call costs ~30 µs, more than writing a 4 KiB block.
        file.seekSync(base + start, Deno.SeekMode.Start);
        writeAllToSync(file, ev.data.subarray(start, end), where);
        storedBytes += end - start;
        j = k;
      }
    }
    reader.checkComplete();
    return {
      files: [...h.configs.map((c) => c.name), ...names],
      clusters,
      storedBytes,
    };
  } finally {
    for (const f of files.values()) f.file.close();
  }
}

/** Gives a new disk file its final (sparse) length: EFBIG shows here, not half-way. */
async function sizeFile(
  file: Deno.FsFile,
  path: string,
  size: number,
): Promise<void> {
  try {
    await file.truncate(size);
  } catch (error) {
    const e = fileError("create", "disk image", path, error);
    if (errorCode(error) === "EFBIG") {
      throw new FileError(
        "create",
        "disk image",
        path,
        `${size} bytes is larger than the file system allows for one file`,
        { cause: error },
      );
    }
    throw e;
  }
}
