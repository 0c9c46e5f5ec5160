/**
 * A Proxmox `qemu-server.conf` for a plain QEMU VM, from its QMP facts
 * (facts.ts), with one `#qmdump#map` line per backed-up disk, following
 * ../shared/docs/proxmox-restore.md section 2. Pure: unit-tested line by line.
 */
import type { BlockFact, NicFact, VmFacts } from "./facts.ts";
import {
  DNS_NAME_RE,
  MAC_RE,
  PVE_CPU_MODELS,
  PVE_DRIVE_KEYS,
  PVE_EFI_VARS_SIZE,
  PVE_MACHINE_RE,
  PVE_NIC_MODELS,
  PVE_SCSIHW,
  type PveOstype,
  type PveScsiHw,
  UUID_RE,
} from "./format.ts";
import { printable } from "./plan_types.ts";

/** A disk in the archive: its VMA device name and the node it was read from. */
export interface ArchivedDisk {
  name: string;
  node: string;
  size: number;
}

export interface GenerateOptions {
  /** Storage id for the disk lines and map lines; null: empty in map lines. */
  storage: string | null;
  vmid: number;
  /** From the guest agent (`--qga`); absent or null: no `ostype` line. */
  ostype?: PveOstype | null;
}

export interface GeneratedConfig {
  text: string;
  /** virtdev -> VMA device name, one per archived disk. */
  maps: { virtdev: string; device: string }[];
  /** What the config leaves out or approximates, printable. */
  notes: string[];
}

/** Proxmox's `scsihw` for a controller's QOM type. */
const SCSI_CONTROLLERS: Record<string, PveScsiHw> = {
  "virtio-scsi-pci": "virtio-scsi-pci",
  "lsi53c895a": "lsi",
  "lsi53c810": "lsi53c810",
  "megasas": "megasas",
  "megasas-gen2": "megasas",
  "pvscsi": "pvscsi",
};
/** q35's AHCI ports 0..3 as Proxmox's ide0..3 (it puts ide1 on port 2). */
const Q35_PORT_TO_IDE = [0, 2, 1, 3];
const PIIX_IDE = /^piix[34]-ide$/;

/** Proxmox's size notation: 4M, 10G, 528K (KiB rounded up otherwise). */
export function pveSize(bytes: number): string {
  const units: [string, number][] = [["T", 2 ** 40], ["G", 2 ** 30], [
    "M",
    2 ** 20,
  ]];
  for (const [u, n] of units) {
    if (bytes % n === 0 && bytes >= n) return `${bytes / n}${u}`;
  }
  return `${Math.ceil(bytes / 1024)}K`;
}

class Slots {
  #used = new Set<string>();
  take(bus: keyof typeof PVE_DRIVE_KEYS, want?: number): string | null {
    if (want !== undefined) {
      const key = `${bus}${want}`;
      if (want < PVE_DRIVE_KEYS[bus] && !this.#used.has(key)) {
        this.#used.add(key);
        return key;
      }
      return null;
    }
    for (let i = 0; i < PVE_DRIVE_KEYS[bus]; i++) {
      const key = `${bus}${i}`;
      if (!this.#used.has(key)) {
        this.#used.add(key);
        return key;
      }
    }
    return null;
  }
}

/** The Proxmox drive key a block device gets, by its device type and bus. */
function driveKey(b: BlockFact, slots: Slots, notes: string[]): string | null {
  const t = b.deviceType;
  if (t.startsWith("virtio-blk")) return slots.take("virtio");
  if (t.startsWith("scsi-")) return slots.take("scsi");
  if (t.startsWith("ide-") && b.bus !== null) {
    const port = /\.(\d+)$/.exec(b.bus.name);
    const n = port ? Number(port[1]) : -1;
    if (PIIX_IDE.test(b.bus.controllerType) && n >= 0) {
      return slots.take("ide", n * 2 + (b.unit ?? 0)) ?? slots.take("sata");
    }
    if (
      b.bus.controllerType === "ich9-ahci" && b.bus.builtIn && n >= 0 && n < 4
    ) {
      return slots.take("ide", Q35_PORT_TO_IDE.indexOf(n)) ??
        slots.take("sata");
    }
    return slots.take("sata");
  }
  notes.push(
    `${printable(b.device || t)}: ${
      printable(t)
    } has no Proxmox bus, stored as a SATA disk`,
  );
  return slots.take("sata");
}

export function generatePveConfig(
  facts: VmFacts,
  disks: ArchivedDisk[],
  options: GenerateOptions,
): GeneratedConfig {
  const lines = new Map<string, string>();
  const notes: string[] = [];
  const maps: GeneratedConfig["maps"] = [];
  const slots = new Slots();
  const store = options.storage ?? "local";
  const boot: { index: number; key: string }[] = [];
  const scsiControllers = new Map<string, string>(); // bus name -> controller type
  let scsiDisks = 0;
  const volume = (device: string) =>
    `${store}:vm-${options.vmid}-disk-${
      disks.findIndex((d) => d.name === device)
    }`;

  if (PVE_MACHINE_RE.test(facts.machine) && !facts.machine.startsWith("virt")) {
    lines.set("machine", facts.machine);
  } else {notes.push(
      `machine ${
        printable(facts.machine)
      }: not a Proxmox machine type, left to its default`,
    );}
  lines.set("memory", String(Math.max(16, facts.memoryMiB)));
  lines.set("sockets", String(facts.sockets));
  lines.set("cores", String(facts.cores * facts.threads));
  if (facts.cpuModel !== null) {
    const base = facts.cpuModel.replace(/-v\d+$/, "");
    if (PVE_CPU_MODELS.includes(facts.cpuModel)) {
      lines.set("cpu", facts.cpuModel);
    } else if (PVE_CPU_MODELS.includes(base)) lines.set("cpu", base);
    else {notes.push(
        `cpu ${
          printable(facts.cpuModel)
        }: not a model Proxmox knows, left to its default`,
      );}
  }
  if (facts.name !== null) {
    if (DNS_NAME_RE.test(facts.name)) lines.set("name", facts.name);
    else notes.push("name: not a DNS name, left out");
  }
  if (options.ostype) lines.set("ostype", options.ostype);
  if (facts.uuid !== null && UUID_RE.test(facts.uuid)) {
    lines.set("smbios1", `uuid=${facts.uuid}`);
  }
  if (facts.vmgenid !== null && UUID_RE.test(facts.vmgenid)) {
    lines.set("vmgenid", facts.vmgenid);
  }

  for (const b of facts.blocks) {
    const archived = b.node === null
      ? undefined
      : disks.find((d) => d.node === b.node);
    if (b.pflash === 0) {
      lines.set("bios", "ovmf");
      continue;
    }
    if (b.pflash === 1) {
      if (archived === undefined) {
        notes.push("efidisk0: the OVMF variables are not in the backup");
        continue;
      }
      const efitype = archived.size === PVE_EFI_VARS_SIZE["2m"] ? "2m" : "4m";
      if (archived.size !== PVE_EFI_VARS_SIZE[efitype]) {
        notes.push(
          `efidisk0: ${archived.size} bytes is not an OVMF variable store size`,
        );
      }
      lines.set(
        "efidisk0",
        `${volume(archived.name)},efitype=${efitype},size=${
          pveSize(archived.size)
        }`,
      );
      maps.push({ virtdev: "efidisk0", device: archived.name });
      continue;
    }
    const cdrom = b.deviceType.endsWith("-cd");
    if (!cdrom && archived === undefined) {
      continue;
    }
    const key = driveKey(b, slots, notes);
    if (key === null) {
      throw new Error(
        `no free Proxmox drive slot for ${printable(b.device || b.deviceType)}`,
      );
    }
    if (key.startsWith("scsi") && b.bus !== null) {
      scsiControllers.set(b.bus.name, b.bus.controllerType);
      scsiDisks++;
    }
    if (b.bootIndex !== null) boot.push({ index: b.bootIndex, key });
    if (cdrom) {
      lines.set(key, "none,media=cdrom");
      if (archived !== undefined) {
        notes.push(`${key}: a CD-ROM's medium is not restored`);
      }
      continue;
    }
    lines.set(key, `${volume(archived!.name)},size=${pveSize(archived!.size)}`);
    maps.push({ virtdev: key, device: archived!.name });
  }
  for (const d of disks) {
    if (!maps.some((m) => m.device === d.name)) {
      throw new Error(
        `disk ${printable(d.name)} has no guest device`,
      );
    }
  }
  if (scsiDisks > 0) {
    const types = new Set(scsiControllers.values());
    const first = [...types][0]!;
    let hw: PveScsiHw = SCSI_CONTROLLERS[first] ?? "virtio-scsi-pci";
    if (types.size > 1 || !(first in SCSI_CONTROLLERS)) {
      notes.push(
        `scsihw: controllers ${
          [...types].map(printable).join(", ")
        } become ${hw}`,
      );
    }
    if (
      hw === "virtio-scsi-pci" && scsiControllers.size === scsiDisks &&
      scsiDisks > 1
    ) {
      hw = "virtio-scsi-single";
    }
    if (hw === "virtio-scsi-pci" && scsiDisks === 1) hw = "virtio-scsi-single";
    if (!(hw in PVE_SCSIHW)) hw = "virtio-scsi-pci";
    lines.set("scsihw", hw);
  }

  const models = Object.entries(PVE_NIC_MODELS);
  let n = 0;
  for (const nic of facts.nics) {
    const model = models.find(([, qemu]) => qemu === nic.type)?.[0];
    if (model === undefined || !MAC_RE.test(nic.mac)) {
      notes.push(
        `NIC ${printable(nic.id)}: ${printable(nic.type)} with MAC ${
          printable(nic.mac)
        } cannot be described, left out`,
      );
      continue;
    }
    const key = `net${n++}`;
    lines.set(key, `${model}=${nic.mac.toUpperCase()},bridge=vmbr0`);
    if (nic.bootIndex !== null) boot.push({ index: nic.bootIndex, key });
  }
  boot.sort((a, b) => a.index - b.index);
  const order = boot.map((b) => b.key);
  if (order.length === 0 && maps.length > 0) {
    order.push(maps.find((m) => m.virtdev !== "efidisk0")?.virtdev ?? "");
  }
  if (order.length > 0 && order[0] !== "") {
    lines.set("boot", `order=${order.join(";")}`);
  }

  const text =
    [...lines.keys()].sort().map((k) => `${k}: ${lines.get(k)}\n`).join("") +
    maps.map((m) =>
      `#qmdump#map:${m.virtdev}:${m.device}:${options.storage ?? ""}:raw:\n`
    ).join("");
  return { text, maps, notes };
}

export type { BlockFact, NicFact, VmFacts };
