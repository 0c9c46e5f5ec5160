/**
 * Proxmox VE's `qemu-server.conf`: the patterns its restore code matches
 * (qemu-server QemuServer.pm, pve-common), key ranges and value formats, in
 * one table. See ../shared/docs/proxmox-restore.md.
 */

/** The config blob's name in a VMA archive. */
export const PVE_CONFIG_NAME = "qemu-server.conf";

/** One `key: value` line of the main section (QemuServer.pm parse_vm_config). */
export const PVE_LINE_RE = /^([a-z][a-z_]*\d*):\s*(.+?)\s*$/;
/** A device map line written by vzdump (QemuServer.pm:6612). */
export const PVE_MAP_RE = /^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$/;
/** A disk line restore remaps: virtdev, then a value without whitespace. */
export const PVE_DISK_LINE_RE =
  /^((ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$/;
/** A `[snapshot]` or `[PENDING]` section header: the main section ends there. */
export const PVE_SECTION_RE = /^\[([^\]]*)\]\s*$/;

/** Drive buses and how many of each a VM may have. */
export const PVE_DRIVE_KEYS = {
  ide: 4,
  sata: 6,
  scsi: 31,
  virtio: 16,
  efidisk: 1,
  tpmstate: 1,
} as const;
export type PveDriveBus = keyof typeof PVE_DRIVE_KEYS;

/** NICs: net0..net31. */
export const PVE_MAX_NETS = 32;

/** `machine:` types (PVE's pattern) and the QEMU family each boots as. */
export const PVE_MACHINE_RE =
  /^(pc|pc(-i440fx)?-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?|q35|pc-q35-\d+(\.\d+)+(\+pve\d+)?(\.pxe)?|virt(?:-\d+(\.\d+)+)?(\+pve\d+)?)$/;

/** `scsihw:` values and the QEMU controller device of each. */
export const PVE_SCSIHW = {
  "lsi": "lsi53c895a",
  "lsi53c810": "lsi53c810",
  "virtio-scsi-pci": "virtio-scsi-pci",
  "virtio-scsi-single": "virtio-scsi-pci",
  "megasas": "megasas",
  "pvscsi": "pvscsi",
} as const;
export type PveScsiHw = keyof typeof PVE_SCSIHW;

/** NIC models of `netN:` and their QEMU devices. */
export const PVE_NIC_MODELS = {
  "virtio": "virtio-net-pci",
  "e1000": "e1000",
  "e1000e": "e1000e",
  "rtl8139": "rtl8139",
  "vmxnet3": "vmxnet3",
  "i82551": "i82551",
  "i82557b": "i82557b",
  "i82559er": "i82559er",
  "ne2k_pci": "ne2k_pci",
  "pcnet": "pcnet",
} as const;
export type PveNicModel = keyof typeof PVE_NIC_MODELS;

/** `vga:` types and QEMU's `-vga` value. */
export const PVE_VGA = {
  "std": "std",
  "cirrus": "cirrus",
  "vmware": "vmware",
  "qxl": "qxl",
  "virtio": "virtio",
  "none": "none",
} as const;

/**
 * Proxmox's x86-64 ABI levels (pve-manager CPUConfig.pm): qemu64 plus flags.
 * Every other model name in PVE_CPU_MODELS is one QEMU has itself.
 */
const X86_64_V2 = [
  "+cx16",
  "+lahf_lm",
  "+popcnt",
  "+pni",
  "+sse4.1",
  "+sse4.2",
  "+ssse3",
];
const X86_64_V2_AES = ["+aes", ...X86_64_V2];
const X86_64_V3 = [
  ...X86_64_V2_AES,
  "+avx",
  "+avx2",
  "+bmi1",
  "+bmi2",
  "+f16c",
  "+fma",
  "+abm",
  "+movbe",
  "+xsave",
];
const X86_64_V4 = [
  ...X86_64_V3,
  "+avx512f",
  "+avx512bw",
  "+avx512cd",
  "+avx512dq",
  "+avx512vl",
];
export const PVE_CPU_LEVELS: Record<string, string[]> = {
  "x86-64-v2": X86_64_V2,
  "x86-64-v2-AES": X86_64_V2_AES,
  "x86-64-v3": X86_64_V3,
  "x86-64-v4": X86_64_V4,
};

/** CPU models Proxmox offers that QEMU 7.2 knows by the same name. */
export const PVE_CPU_MODELS: readonly string[] = [
  "486",
  "athlon",
  "Broadwell",
  "Broadwell-IBRS",
  "Broadwell-noTSX",
  "Broadwell-noTSX-IBRS",
  "Cascadelake-Server",
  "Cascadelake-Server-noTSX",
  "Conroe",
  "Cooperlake",
  "core2duo",
  "coreduo",
  "EPYC",
  "EPYC-IBPB",
  "EPYC-Milan",
  "EPYC-Rome",
  "Haswell",
  "Haswell-IBRS",
  "Haswell-noTSX",
  "Haswell-noTSX-IBRS",
  "host",
  "Icelake-Client",
  "Icelake-Client-noTSX",
  "Icelake-Server",
  "Icelake-Server-noTSX",
  "IvyBridge",
  "IvyBridge-IBRS",
  "kvm32",
  "kvm64",
  "max",
  "Nehalem",
  "Nehalem-IBRS",
  "Opteron_G1",
  "Opteron_G2",
  "Opteron_G3",
  "Opteron_G4",
  "Opteron_G5",
  "Penryn",
  "pentium",
  "pentium2",
  "pentium3",
  "phenom",
  "qemu32",
  "qemu64",
  "SandyBridge",
  "SandyBridge-IBRS",
  "SapphireRapids",
  "Skylake-Client",
  "Skylake-Client-IBRS",
  "Skylake-Client-noTSX-IBRS",
  "Skylake-Server",
  "Skylake-Server-IBRS",
  "Skylake-Server-noTSX-IBRS",
  "Westmere",
  "Westmere-IBRS",
];

/** A CPU flag of `cpu: ...,flags=+a;-b`. */
export const PVE_CPU_FLAG_RE = /^[+-][a-zA-Z0-9._-]{1,40}$/;
/** A unicast MAC address (bit 0 of the first byte clear). */
export const MAC_RE = /^[0-9A-Fa-f][02468aceACE](:[0-9A-Fa-f]{2}){5}$/;
export const UUID_RE =
  /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** A DNS name, as Proxmox requires of `name:`. */
export const DNS_NAME_RE =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/** Property-string keys (`opt=value`). */
export const PVE_OPTION_KEY_RE = /^[a-z][a-z0-9_-]{0,40}$/;
/** Size of the OVMF VARS image of each `efitype`. */
export const PVE_EFI_VARS_SIZE = { "2m": 131072, "4m": 540672 } as const;

/** `ostype:` values (qemu-server's schema) and what each stands for. */
export const PVE_OSTYPES = {
  other: "unspecified OS",
  wxp: "Microsoft Windows XP",
  w2k: "Microsoft Windows 2000",
  w2k3: "Microsoft Windows 2003",
  w2k8: "Microsoft Windows 2008",
  wvista: "Microsoft Windows Vista",
  win7: "Microsoft Windows 7",
  win8: "Microsoft Windows 8/2012/2012r2",
  win10: "Microsoft Windows 10/2016/2019",
  win11: "Microsoft Windows 11/2022/2025",
  l24: "Linux 2.4 Kernel",
  l26: "Linux 2.6 - 6.X Kernel",
  solaris: "Solaris/OpenSolaris/OpenIndiania kernel",
} as const;
export type PveOstype = keyof typeof PVE_OSTYPES;
