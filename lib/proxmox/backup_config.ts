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
  /** The config to add to the archive; null when the user gave one. */
  generated: Uint8Array | null;
  /** The config the archive will hold (generated or the user's). */
  data: Uint8Array;
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
  const g = generatePveConfig(
    facts,
    disks.map((d) => ({ name: d.name, node: d.node, size: d.size })),
    { storage: options.storage ?? null, vmid: options.vmid ?? 100 },
  );
  const data = encoder.encode(g.text);
  return { generated: data, data, notes: g.notes };
}
