/**
 * Whether an archive's `qemu-server.conf` and devices are what Proxmox's
 * restore (`qmrestore` -> restore_vma_archive) needs, per
 * ../shared/docs/proxmox-restore.md sections 1 and 5.
 */
import { parsePveConfig } from "./config.ts";
import { ProxmoxConfigError } from "./errors.ts";
import { PVE_DISK_LINE_RE, PVE_MAP_RE } from "./format.ts";
import { printable } from "./plan_types.ts";

export interface ArchiveDevice {
  id: number;
  name: string;
  size: number;
}

/**
 * Throws a ProxmoxConfigError naming the first rule the archive breaks:
 * a map line naming no device, a device without a map line, a device name
 * Proxmox's FIFO protocol cannot carry, dev_id outside 1..254, or a mapped
 * drive without a disk line restore can remap.
 */
export function checkPveArchive(
  conf: Uint8Array,
  devices: ArchiveDevice[],
): void {
  const config = parsePveConfig(conf);
  const text = new TextDecoder().decode(conf);
  for (const [i, line] of text.split("\n").entries()) {
    if (line.startsWith("#qmdump#map") && !PVE_MAP_RE.test(line)) {
      throw new ProxmoxConfigError(
        `Cannot use qemu-server.conf: line ${
          i + 1
        } is a map line Proxmox does not match`,
        { line: i + 1 },
      );
    }
  }
  const disks = devices.filter((d) => d.name !== "vmstate");
  for (const d of disks) {
    if (/[\s=]/.test(d.name) || d.name === "") {
      throw new ProxmoxConfigError(
        `Cannot use device name ${
          JSON.stringify(printable(d.name))
        } with Proxmox: it holds whitespace or "="`,
      );
    }
    if (d.id < 1 || d.id > 254) {
      throw new ProxmoxConfigError(
        `Cannot use device ${
          printable(d.name)
        } with Proxmox: dev_id ${d.id} is outside 1..254`,
      );
    }
    const maps = config.maps.filter((m) => m.devname === d.name);
    if (maps.length !== 1) {
      throw new ProxmoxConfigError(
        `Cannot use qemu-server.conf: device ${printable(d.name)} has ${
          maps.length === 0 ? "no map line" : "several map lines"
        } (Proxmox: "found no device mapping information")`,
      );
    }
  }
  for (const m of config.maps) {
    if (!disks.some((d) => d.name === m.devname)) {
      throw new ProxmoxConfigError(
        `Cannot use qemu-server.conf: the map line of ${
          printable(m.virtdev)
        } names device ${printable(m.devname)}, which is not in the archive`,
        { line: m.line },
      );
    }
    const entry = config.entries.get(m.virtdev);
    if (
      entry === undefined ||
      !PVE_DISK_LINE_RE.test(`${entry.key}: ${entry.value}`)
    ) {
      throw new ProxmoxConfigError(
        `Cannot use qemu-server.conf: ${
          printable(m.virtdev)
        } has a map line but no disk line Proxmox can remap`,
        { line: m.line },
      );
    }
  }
}
