import type { IncrementalRecord } from "../chain/incremental.ts";
import type { QmpClient } from "../qmp/client.ts";
import { VERSION } from "../version.ts";

/** One disk of the VM, as vmabak backs it up. */
export interface VmDisk {
  /** Name in the archive: the drive id, else the node name, else the device id. */
  name: string;
  /** Node name of the top of the disk's graph (the backup job's `device`). */
  node: string;
  /** QOM path of the guest device's block backend, e.g. /machine/peripheral/vd0/virtio-backend. */
  qdev: string;
  /** The guest device's id (`vd0`), and its QOM type (`virtio-blk-pci`). */
  deviceId: string;
  deviceType: string;
  /** PCI address of the device (`0x4.0x0`), when it has one. */
  pciAddr: string | null;
  /** The device's bootindex, or null. */
  bootIndex: number | null;
  format: string;
  file: string;
  size: number;
}

/** What the archive's `vmabak.json` says of the VM: enough to rebuild its command line. */
export interface VmDescription {
  vmabak: string;
  qemu: string;
  name: string | null;
  machine: string;
  /** Whether the VM runs on KVM (else TCG). */
  kvm: boolean;
  memoryBytes: number;
  cpus: number;
  disks: VmDisk[];
  vmstate: boolean;
  /** An incremental archive's place in its chain and the clusters it holds. */
  incremental?: IncrementalRecord;
}

interface BlockInfo {
  device: string;
  qdev?: string;
  inserted?: {
    "node-name": string;
    drv: string;
    file: string;
    ro: boolean;
    image: { "virtual-size": number; format: string };
  };
}

/** The VM's disks (media that are not read-only), in `query-block` order. */
export async function listDisks(qmp: QmpClient): Promise<VmDisk[]> {
  const blocks = await qmp.execute<BlockInfo[]>("query-block");
  const disks: VmDisk[] = [];
  for (const b of blocks) {
    const ins = b.inserted;
    if (ins === undefined || ins.ro) continue;
    const qdev = b.qdev ?? "";
    const parent = qdev.replace(/\/virtio-backend$/, "");
    const deviceId = parent.split("/").pop() ?? "";
    const prop = <T>(property: string) =>
      parent === ""
        ? Promise.resolve(null)
        : qmp.execute<T>("qom-get", { path: parent, property }).catch(() =>
          null
        );
    const deviceType = (await prop<string>("type")) ?? "";
    const addr = await prop<number>("addr");
    const boot = await prop<number>("bootindex");
    const name = b.device !== ""
      ? b.device
      : !ins["node-name"].startsWith("#")
      ? ins["node-name"]
      : deviceId;
    disks.push({
      name,
      node: ins["node-name"],
      qdev,
      deviceId,
      deviceType,
      pciAddr: typeof addr === "number" && addr >= 0
        ? `0x${(addr >> 3).toString(16)}.0x${(addr & 7).toString(16)}`
        : null,
      bootIndex: typeof boot === "number" && boot >= 0 ? boot : null,
      format: ins.image.format ?? ins.drv,
      file: ins.file,
      size: ins.image["virtual-size"],
    });
  }
  return disks;
}

export async function describeVm(
  qmp: QmpClient,
  disks: VmDisk[],
  vmstate: boolean,
): Promise<VmDescription> {
  const v = qmp.greeting.version.qemu;
  const name = await qmp.execute<{ name?: string }>("query-name").then((r) =>
    r.name ?? null
  ).catch(() => null);
  const machine = await qmp.execute<string>("qom-get", {
    path: "/machine",
    property: "type",
  })
    .then((t) => t.replace(/-machine$/, ""))
    .catch(() => "");
  const memory = await qmp.execute<
    { "base-memory": number; "plugged-memory"?: number }
  >("query-memory-size-summary");
  const kvm = await qmp.execute<{ enabled: boolean }>("query-kvm").then((k) =>
    k.enabled
  ).catch(() => false);
  const cpus = await qmp.execute<unknown[]>("query-cpus-fast").then((c) =>
    c.length
  ).catch(() => 1);
  return {
    vmabak: VERSION,
    qemu: `${v.major}.${v.minor}.${v.micro}`,
    name,
    machine,
    kvm,
    memoryBytes: memory["base-memory"] + (memory["plugged-memory"] ?? 0),
    cpus,
    disks,
    vmstate,
  };
}
