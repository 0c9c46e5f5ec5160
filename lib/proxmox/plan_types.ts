/** The typed plan of a VM that a Proxmox config describes (see plan.ts). */
import { printable as escapePrintable } from "../text/escape.ts";
import type { PveScsiHw } from "./format.ts";

/** What the archive holds besides the config. */
export interface ArchiveFacts {
  devices: { name: string; size: number }[];
  /** Names of every config blob. */
  configs: string[];
}

export type DriveBus = "ide" | "sata" | "scsi" | "virtio";

export interface PlanDrive {
  /** The Proxmox key, `scsi0`. */
  key: string;
  bus: DriveBus;
  index: number;
  media: "disk" | "cdrom";
  /** The archive device with the drive's data; null for an empty CD-ROM. */
  device: string | null;
  bootIndex: number | null;
  iothread: boolean;
  readOnly: boolean;
  ssd: boolean;
  discard: boolean;
  serial: string | null;
}

export interface PlanNic {
  key: string;
  index: number;
  /** QEMU device type, `virtio-net-pci`. */
  device: string;
  mac: string | null;
  bootIndex: number | null;
}

export interface VmPlan {
  /** `-name`: a DNS name, or null. */
  name: string | null;
  machine: "pc" | "q35";
  kvm: boolean;
  memoryMiB: number;
  sockets: number;
  cores: number;
  cpu: { model: string; flags: string[] };
  bios: "seabios" | "ovmf";
  /** With OVMF: the archive device of `efidisk0` (null: none) and the VARS size. */
  efi: { device: string | null; varsSize: number; efitype: "2m" | "4m" } | null;
  scsihw: PveScsiHw;
  drives: PlanDrive[];
  nics: PlanNic[];
  /** smbios1 uuid. */
  uuid: string | null;
  /** A UUID, `auto`, or null. */
  vmgenid: string | null;
  /** `-vga` value, or null. */
  vga: string | null;
  agent: boolean;
  localtime: boolean;
  /** `ostype` is a Windows: the RTC catches up lost ticks (`driftfix=slew`), as qemu-server sets it. */
  windows: boolean;
  /** Indexes of `serialN: socket`. */
  serials: number[];
  /** What the plan leaves out: `key: detail`, printable (sanitised). */
  unmapped: string[];
}

/** Collects what cannot be mapped, printable whatever the config holds. */
export class Unmapped {
  readonly items: string[] = [];

  add(key: string, detail: string): void {
    this.items.push(`${printable(key)}: ${printable(detail)}`);
  }
}

/** A config value as it may be shown in a shell comment or a terminal: one line, cut at 80. */
export function printable(text: string): string {
  return escapePrintable(text, 77);
}
