/**
 * The `qemu-server.conf` a backup stores so that Proxmox's restore imports
 * the VM: generated from QMP facts, or the user's own (`-c qemu-server.conf`),
 * which then must map exactly the archive's disks.
 */
import type { QmpClient } from "../qmp/client.ts";
import type { VmDisk } from "../backup/inventory.ts";
import { gatherFacts } from "./facts.ts";
import { PVE_CONFIG_NAME } from "./format.ts";
import { generatePveConfig } from "./generate.ts";

export interface ProxmoxBackupOptions {
  /** Storage id in the map lines (`--storage`); null: empty, Proxmox asks. */
  storage?: string | null;
  /** VM id used in the disk lines' volume names (`--vmid`); default 100. */
  vmid?: number;
}

export interface ProxmoxBackupConfig {
  /** The config to add to the archive; null when the user gave one (or none could be made). */
  generated: Uint8Array | null;
  /** The config the archive will hold, to check against its devices; null: none. */
  data: Uint8Array | null;
  notes: string[];
}

const encoder = new TextEncoder();

export async function proxmoxBackupConfig(
  qmp: QmpClient,
  disks: VmDisk[],
  userConfigs: { name: string; data: Uint8Array }[],
  options: ProxmoxBackupOptions,
): Promise<ProxmoxBackupConfig> {
  const user = userConfigs.find((c) => c.name === PVE_CONFIG_NAME);
  if (user !== undefined) {
    return { generated: null, data: user.data, notes: [] };
  }
  const facts = await gatherFacts(qmp);
  try {
    const g = generatePveConfig(
      facts,
      disks.map((d) => ({ name: d.name, node: d.node, size: d.size })),
      { storage: options.storage ?? null, vmid: options.vmid ?? 100 },
    );
    const data = encoder.encode(g.text);
    return { generated: data, data, notes: g.notes };
  } catch (error) {
    // The backup matters more than its Proxmox description.
    return {
      generated: null,
      data: null,
      notes: [
        `not stored: ${
          (error as Error).message
        }; Proxmox cannot import this archive`,
      ],
    };
  }
}
