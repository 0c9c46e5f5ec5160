/**
 * What QMP tells of a running VM that a Proxmox config needs (QEMU 7.2,
 * see ../shared/docs/proxmox-restore.md section 2): machine, memory, CPU
 * topology and model, name, uuid, vmgenid, every block device with its bus
 * and controller, every NIC with its MAC, and boot indexes.
 */
import type { QmpClient } from "../qmp/client.ts";

export interface BlockFact {
  /** Top node of the medium, or null when the drive is empty. */
  node: string | null;
  /** `query-block`'s device (`pflash1`, `drive0`), may be "". */
  device: string;
  /** QOM type of the guest device (`scsi-hd`, `cfi.pflash01`). */
  deviceType: string;
  bootIndex: number | null;
  /** The bus it sits on and the controller's QOM type, when it has one. */
  bus: { name: string; controllerType: string; builtIn: boolean } | null;
  unit: number | null;
  readOnly: boolean;
  size: number | null;
  /** 0 for the OVMF code flash, 1 for the VARS flash, else null. */
  pflash: 0 | 1 | null;
}

export interface NicFact {
  id: string;
  /** QOM type (`virtio-net-pci`). */
  type: string;
  mac: string;
  bootIndex: number | null;
}

export interface VmFacts {
  name: string | null;
  uuid: string | null;
  vmgenid: string | null;
  /** `pc-q35-7.2`, from the QOM type without `-machine`. */
  machine: string;
  memoryMiB: number;
  sockets: number;
  cores: number;
  threads: number;
  /** CPU QOM type without `-x86_64-cpu` (`qemu64`, `Haswell-noTSX`). */
  cpuModel: string | null;
  blocks: BlockFact[];
  nics: NicFact[];
}

interface BlockInfo {
  device: string;
  qdev?: string;
  inserted?: {
    "node-name": string;
    ro: boolean;
    image: { "virtual-size": number };
  };
}

const NIC_TYPES =
  /^(virtio-net-pci|e1000|e1000e|rtl8139|vmxnet3|i82551|i82557b|i82559er|ne2k_pci|pcnet)$/;

export async function gatherFacts(qmp: QmpClient): Promise<VmFacts> {
  const get = <T>(path: string, property: string): Promise<T | null> =>
    qmp.execute<T>("qom-get", { path, property }).catch(() => null);
  const opt = <T>(cmd: string): Promise<T | null> =>
    qmp.execute<T>(cmd).catch(() => null);

  const name = (await opt<{ name?: string }>("query-name"))?.name ?? null;
  const uuidR = (await opt<{ UUID: string }>("query-uuid"))?.UUID ?? null;
  const uuid = uuidR === null || /^[0-]+$/.test(uuidR) ? null : uuidR;
  const vmgenid = (await opt<{ guid: string }>("query-vm-generation-id"))
    ?.guid ?? null;
  const machine = ((await get<string>("/machine", "type")) ?? "")
    .replace(/-machine$/, "");
  const mem = await qmp.execute<{ "base-memory": number }>(
    "query-memory-size-summary",
  );
  const smp = await get<
    { sockets: number; cores: number; threads: number; dies?: number }
  >("/machine", "smp");
  const cpus = await opt<{ "qom-path": string }[]>("query-cpus-fast");
  const cpuType = cpus && cpus[0]
    ? await get<string>(cpus[0]["qom-path"], "type")
    : null;

  const blocks: BlockFact[] = [];
  for (const b of await qmp.execute<BlockInfo[]>("query-block")) {
    const qdev = b.qdev ?? "";
    const flash = /\/system\.flash([01])$/.exec(qdev);
    const path = qdev.replace(/\/virtio-backend$/, "");
    const deviceType = path === ""
      ? ""
      : (await get<string>(path, "type")) ?? "";
    const boot = path === "" ? null : await get<number>(path, "bootindex");
    const unit = path === "" ? null : await get<number>(path, "unit");
    const busPath = path === "" ? null : await get<string>(path, "parent_bus");
    let bus: BlockFact["bus"] = null;
    if (busPath && !flash) {
      const parts = busPath.split("/");
      const busName = parts.pop()!;
      let ctl = parts.join("/");
      let controllerType = (await get<string>(ctl, "type")) ?? "";
      if (ctl.endsWith("/virtio-backend")) {
        ctl = ctl.replace(/\/virtio-backend$/, "");
        controllerType = (await get<string>(ctl, "type")) ?? controllerType;
      }
      bus = {
        name: busName,
        controllerType,
        builtIn: !ctl.startsWith("/machine/peripheral"),
      };
    }
    const ins = b.inserted;
    blocks.push({
      node: ins?.["node-name"] ?? null,
      device: b.device,
      deviceType,
      bootIndex: typeof boot === "number" && boot >= 0 ? boot : null,
      bus,
      unit: typeof unit === "number" ? unit : null,
      readOnly: ins?.ro ?? true,
      size: ins?.image["virtual-size"] ?? null,
      pflash: flash ? (Number(flash[1]) as 0 | 1) : null,
    });
  }

  const nics: NicFact[] = [];
  for (const base of ["/machine/peripheral", "/machine/peripheral-anon"]) {
    const children = await qmp.execute<{ name: string; type: string }[]>(
      "qom-list",
      { path: base },
    ).catch(() => []);
    for (const c of children) {
      const m = /^child<(.+)>$/.exec(c.type);
      if (!m || !NIC_TYPES.test(m[1]!)) continue;
      const path = `${base}/${c.name}`;
      const mac = await get<string>(path, "mac");
      const boot = await get<number>(path, "bootindex");
      if (mac === null) continue;
      nics.push({
        id: c.name,
        type: m[1]!,
        mac,
        bootIndex: typeof boot === "number" && boot >= 0 ? boot : null,
      });
    }
  }
  return {
    name,
    uuid,
    vmgenid,
    machine,
    memoryMiB: Math.round(mem["base-memory"] / (1024 * 1024)),
    sockets: (smp?.sockets ?? 1) * (smp?.dies ?? 1),
    cores: smp?.cores ?? (cpus?.length ?? 1),
    threads: smp?.threads ?? 1,
    cpuModel: cpuType?.replace(/-x86_64-cpu$/, "") ?? null,
    blocks,
    nics,
  };
}
