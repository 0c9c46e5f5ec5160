import { describeFsError } from "../io/input.ts";
import { writeAll, writeAllSync } from "../io/sink.ts";
import { VmaError } from "./errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "./format.ts";
import { checkSafeName } from "./names.ts";
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
 * Writes every device of an archive into `dir` (which must not exist):
 * disks as sparse raw files (zero blocks stay holes), the vmstate stream as
 * `vmstate.bin` (every byte, in order), configs under their names. Names are
 * checked first, so nothing is written outside `dir`. Fails, after writing
 * what it could, when the archive breaks a rule or misses clusters.
 */
export async function extractArchive(
  reader: VmaReader,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractResult> {
  const h = reader.header;
  for (const c of h.configs) checkSafeName(c.name, "config");
  const names = h.devices.map((d) => deviceFileName(d.name));
  const all = [...h.configs.map((c) => c.name), ...names];
  if (new Set(all).size !== all.length) {
    throw new VmaError(
      "Cannot extract archive: two entries have the same file name",
    );
  }
  try {
    await Deno.mkdir(dir);
  } catch (error) {
    throw new VmaError(
      `Cannot extract into ${dir}: ${describeFsError(error)}`,
      { cause: error },
    );
  }
  for (const c of h.configs) {
    await Deno.writeFile(`${dir}/${c.name}`, c.data, { createNew: true });
  }
  const files = new Map<number, Deno.FsFile>();
  try {
    for (const [i, d] of h.devices.entries()) {
      files.set(
        d.id,
        await Deno.open(`${dir}/${names[i]}`, { write: true, createNew: true }),
      );
    }
    let clusters = 0;
    let storedBytes = 0;
    for await (const ev of reader.clusters()) {
      options.signal?.throwIfAborted();
      const file = files.get(ev.device.id)!;
      clusters++;
      if (ev.device.name === VMA_VMSTATE_NAME) {
        await writeAll(file, ev.data);
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
        writeAllSync(file, ev.data.subarray(start, end));
        storedBytes += end - start;
        j = k;
      }
    }
    for (const d of h.devices) {
      if (d.name !== VMA_VMSTATE_NAME) await files.get(d.id)!.truncate(d.size);
    }
    reader.checkComplete();
    return {
      files: [...h.configs.map((c) => c.name), ...names],
      clusters,
      storedBytes,
    };
  } finally {
    for (const f of files.values()) f.close();
  }
}
