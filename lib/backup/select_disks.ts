/**
 * `backup --drive NAME`: which of the VM's disks to back up. A disk answers
 * to its QEMU names (drive id, node name, device id) and to the device name
 * a backup of the whole VM gives it in the archive (`drive-virtio0`,
 * `drive-scsi0`: what `vma list` and the Proxmox GUI show).
 */
import { printable } from "../text/escape.ts";
import type { VmDisk } from "./inventory.ts";

/** A `--drive` that names no disk, or more than one, or one already chosen. */
export class DriveSelectionError extends Error {
  override name = "DriveSelectionError";
  constructor(
    readonly wanted: string,
    readonly reason: "unknown" | "ambiguous" | "repeated",
    /** Each disk's names, archive name first. */
    readonly valid: string[][],
  ) {
    super(
      `Cannot back up drive "${printable(wanted, 80)}": ${
        REASONS[reason]
      } (valid names: ${
        valid.map((names) => names.map((n) => printable(n, 80)).join("|"))
          .join(", ")
      })`,
    );
  }
}

const REASONS = {
  unknown: "the VM has no such disk",
  ambiguous: "it names more than one disk",
  repeated: "that disk is already chosen",
} as const;

/** The names `disk` answers to; `archiveName` first when it has one. */
export function diskNames(disk: VmDisk, archiveName: string | null): string[] {
  const names = [
    archiveName,
    disk.name,
    disk.node.startsWith("#") ? null : disk.node,
    disk.deviceId,
  ];
  return [...new Set(names.filter((n): n is string => n !== null && n !== ""))];
}

/**
 * The disks named by `wanted`, in that order; all of them when it is empty.
 * `archiveNames[i]`: the device name a backup of all `disks` gives disk i
 * (null: none known, e.g. Proxmox cannot describe the VM).
 */
export function selectDisks(
  disks: VmDisk[],
  wanted: string[],
  archiveNames: readonly (string | null)[] | null = null,
): VmDisk[] {
  if (wanted.length === 0) return disks;
  const names = disks.map((d, i) => diskNames(d, archiveNames?.[i] ?? null));
  const chosen: number[] = [];
  for (const w of wanted) {
    const hits = names.flatMap((n, i) => n.includes(w) ? [i] : []);
    const reason = hits.length === 0
      ? "unknown"
      : hits.length > 1
      ? "ambiguous"
      : chosen.includes(hits[0]!)
      ? "repeated"
      : null;
    if (reason !== null) throw new DriveSelectionError(w, reason, names);
    chosen.push(hits[0]!);
  }
  return chosen.map((i) => disks[i]!);
}
