/**
 * The `qemu-server.conf` a backup stores so that Proxmox's restore imports
 * the VM: generated from QMP facts, or the user's own (`-c qemu-server.conf`),
 * which then must map exactly the archive's disks. Also names the archive's
 * devices (device_names.ts): `drive-<virtdev>` as vzdump does when the
 * config describes every disk.
 */
import type { QmpClient } from "../qmp/client.ts";
import type { VmDisk } from "../backup/inventory.ts";
import { parseVmDescription } from "../backup/description.ts";
import type { VmaHeader } from "../vma/header.ts";
import { parsePveConfig } from "./config.ts";
import { deviceNames, type NamedDisk, renameDisks } from "./device_names.ts";
import { gatherFacts, type VmFacts } from "./facts.ts";
import { PVE_CONFIG_NAME, type PveOstype } from "./format.ts";
import { type GeneratedConfig, generatePveConfig } from "./generate.ts";

export interface ProxmoxBackupOptions {
  /** Storage id in the map lines (`--storage`); null: empty, Proxmox asks. */
  storage?: string | null;
  /** VM id used in the disk lines' volume names (`--vmid`); default 100. */
  vmid?: number;
  /** The guest's OS type, from its agent (`--qga`); absent or null: no line. */
  ostype?: PveOstype | null;
}

export interface ProxmoxBackupConfig {
  /** The config to add to the archive; null when the user gave one (or none could be made). */
  generated: Uint8Array | null;
  /** The config the archive will hold, to check against its devices; null: none. */
  data: Uint8Array | null;
  /** The disks under their archive device names. */
  disks: VmDisk[];
  notes: string[];
}

const encoder = new TextEncoder();

/**
 * The stored config and the archive's device names. `base`: an
 * incremental's base archive, whose device names the disks keep.
 */
export async function proxmoxBackupConfig(
  qmp: QmpClient,
  disks: VmDisk[],
  userConfigs: { name: string; data: Uint8Array }[],
  options: ProxmoxBackupOptions,
  base?: VmaHeader,
): Promise<ProxmoxBackupConfig> {
  const user = userConfigs.find((c) => c.name === PVE_CONFIG_NAME);
  const baseDisks = base === undefined ? null : namedDisks(base);
  const generate = (facts: VmFacts, named: VmDisk[]) =>
    generatePveConfig(
      facts,
      named.map((d) => ({ name: d.name, node: d.node, size: d.size })),
      {
        storage: options.storage ?? null,
        vmid: options.vmid ?? 100,
        ostype: options.ostype ?? null,
      },
    );
  if (user !== undefined) {
    // The user's map lines decide: drive-<virtdev> if they name those.
    const facts = await gatherFacts(qmp).catch(() => null);
    let names = deviceNames(
      disks,
      facts === null ? null : virtdevsOf(facts, disks),
      baseDisks,
    );
    if (baseDisks === null && !mapsName(user.data, names)) {
      names = disks.map((d) => d.name);
    }
    return {
      generated: null,
      data: user.data,
      disks: renameDisks(disks, names),
      notes: [],
    };
  }
  const facts = await gatherFacts(qmp);
  try {
    const first = generate(facts, disks);
    const named = renameDisks(
      disks,
      deviceNames(disks, keysOf(disks, first), baseDisks),
    );
    const g = generate(facts, named);
    const data = encoder.encode(g.text);
    return { generated: data, data, disks: named, notes: g.notes };
  } catch (error) {
    // The backup matters more than its Proxmox description.
    return {
      generated: null,
      data: null,
      disks: renameDisks(disks, deviceNames(disks, null, baseDisks)),
      notes: [
        `not stored: ${
          (error as Error).message
        }; Proxmox cannot import this archive`,
      ],
    };
  }
}

/**
 * The device name each of `disks` gets in a backup of all of them (what
 * `vma list` shows: `drive-virtio0`, or the QEMU name when Proxmox cannot
 * describe every disk); null when the VM's facts cannot be read.
 */
export async function fullBackupNames(
  qmp: QmpClient,
  disks: VmDisk[],
): Promise<string[] | null> {
  const facts = await gatherFacts(qmp).catch(() => null);
  if (facts === null) return null;
  return deviceNames(disks, virtdevsOf(facts, disks), null);
}

/** Each disk's Proxmox key (`scsi0`) under its QEMU name; null when Proxmox cannot describe the disks. */
function virtdevsOf(
  facts: VmFacts,
  disks: VmDisk[],
): (string | null)[] | null {
  try {
    return keysOf(
      disks,
      generatePveConfig(
        facts,
        disks.map((d) => ({ name: d.name, node: d.node, size: d.size })),
        { storage: null, vmid: 100 },
      ),
    );
  } catch {
    return null;
  }
}

/** Each disk's Proxmox key in a generated config (disks under their QEMU names). */
function keysOf(disks: VmDisk[], g: GeneratedConfig): (string | null)[] {
  return disks.map((d) =>
    g.maps.find((m) => m.device === d.name)?.virtdev ?? null
  );
}

/** Whether a user's config maps exactly the devices `names`. */
function mapsName(conf: Uint8Array, names: string[]): boolean {
  try {
    const maps = parsePveConfig(conf).maps.map((m) => m.devname);
    return maps.length === names.length && names.every((n) => maps.includes(n));
  } catch {
    return false;
  }
}

/** The disks an archive's vmabak.json names; empty when it has none readable. */
function namedDisks(header: VmaHeader): NamedDisk[] {
  const config = header.configs.find((c) => c.name === "vmabak.json");
  if (config === undefined) return [];
  try {
    return parseVmDescription(config.data).disks.map((d) => ({
      name: d.name,
      node: d.node,
      qdev: d.qdev,
    }));
  } catch {
    return [];
  }
}
