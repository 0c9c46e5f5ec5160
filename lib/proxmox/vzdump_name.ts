/**
 * Names as vzdump gives them, so that Proxmox lists and restores the files
 * (pve-storage archive_info, ../shared/docs/proxmox-restore.md section 4).
 */

/** The standard name's pattern: the VM id (3 to 9 digits) and a local timestamp. */
export const VZDUMP_NAME_RE =
  /^(vzdump-qemu-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2}))\.(vma(\.zst)?)$/;
/** A VM id Proxmox accepts in a backup's name. */
export const PVE_VMID_RE = /^[1-9][0-9]{2,8}$/;
/** A storage id (pve-storage's `pve-storage-id`). */
export const PVE_STORAGE_ID_RE = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/;

/** `vzdump-qemu-VMID-YYYY_MM_DD-HH_MM_SS`, in local time as vzdump does. */
export function vzdumpBaseName(vmid: number, date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `vzdump-qemu-${vmid}-${date.getFullYear()}_${p(date.getMonth() + 1)}_${
    p(date.getDate())
  }-${p(date.getHours())}_${p(date.getMinutes())}_${p(date.getSeconds())}`;
}

/** The archive, notes and log paths of a backup into `dir`. */
export function vzdumpPaths(
  dir: string,
  vmid: number,
  date: Date,
  zstd: boolean,
): { archive: string; log: string } {
  const base = `${dir.replace(/\/+$/, "")}/${vzdumpBaseName(vmid, date)}`;
  return { archive: `${base}.vma${zstd ? ".zst" : ""}`, log: `${base}.log` };
}
