/**
 * The VMA device names of a backup's disks. vzdump names them
 * `drive-<virtdev>` (drive-scsi0, drive-virtio1, drive-efidisk0); vmabak does
 * the same whenever Proxmox can describe every disk, and keeps the QEMU name
 * (drive id, else node name, else device id) otherwise. An incremental keeps
 * the names of its base: a chain matches disks by device name.
 */
import type { VmDisk } from "../backup/inventory.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";

/** What an archive's vmabak.json says of one disk, enough to find it again. */
export interface NamedDisk {
  name: string;
  node: string;
  qdev: string;
}

/** Proxmox's convention for the VMA device of a drive key. */
export function pveDeviceName(virtdev: string): string {
  return `drive-${virtdev}`;
}

/** Whether names can be VMA device names Proxmox's restore reads: unique, non-empty, no whitespace or "=". */
export function validDeviceNames(names: string[]): boolean {
  return new Set(names).size === names.length &&
    names.every((n) => n !== "" && !/[\s=]/.test(n) && n !== VMA_VMSTATE_NAME);
}

/** The base's disk a disk of the VM is: same QEMU name, same device, or same (user-given) node. */
function baseDisk(disk: VmDisk, base: NamedDisk[]): NamedDisk | undefined {
  return base.find((b) => b.name === disk.name) ??
    base.find((b) => disk.qdev !== "" && b.qdev === disk.qdev) ??
    base.find((b) => !disk.node.startsWith("#") && b.node === disk.node);
}

/**
 * Device names for `disks` (QEMU names on entry): `drive-<virtdev>` when
 * `virtdevs` gives every disk's Proxmox key, each base disk's name for an
 * incremental; the QEMU names when the result would not be valid.
 */
export function deviceNames(
  disks: VmDisk[],
  virtdevs: (string | null)[] | null,
  base: NamedDisk[] | null,
): string[] {
  const qemu = disks.map((d) => d.name);
  const pve = virtdevs !== null && virtdevs.length === disks.length &&
      virtdevs.every((v) => v !== null)
    ? virtdevs.map((v) => pveDeviceName(v!))
    : qemu;
  const names = base === null
    ? pve
    : disks.map((d, i) => baseDisk(d, base)?.name ?? pve[i]!);
  return validDeviceNames(names) ? names : qemu;
}

/** The disks under their archive names. */
export function renameDisks(disks: VmDisk[], names: string[]): VmDisk[] {
  return disks.map((d, i) => ({ ...d, name: names[i]! }));
}
