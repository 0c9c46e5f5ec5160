/**
 * Interprets a parsed Proxmox config into a typed plan of the VM's QEMU
 * hardware: every value is checked against its format here, so renderers
 * only ever see validated values. What cannot be mapped is listed in
 * `unmapped`, never dropped silently.
 */
import {
  parsePropertyString,
  type PveConfig,
  type PveEntry,
} from "./config.ts";
import { ProxmoxConfigError } from "./errors.ts";
import { checkInt, intValue, invalid } from "./values.ts";
import {
  DNS_NAME_RE,
  PVE_CONFIG_NAME,
  PVE_CPU_FLAG_RE,
  PVE_CPU_LEVELS,
  PVE_CPU_MODELS,
  PVE_MACHINE_RE,
  PVE_OSTYPES,
  PVE_SCSIHW,
  PVE_VGA,
  type PveScsiHw,
  UUID_RE,
} from "./format.ts";
import { planBoot, planDrives, planEfi, planNics } from "./plan_devices.ts";
import { type ArchiveFacts, Unmapped, type VmPlan } from "./plan_types.ts";

export type { ArchiveFacts, VmPlan } from "./plan_types.ts";

/** Keys whose value changes nothing QEMU sees when it is the one given. */
const NO_EFFECT: Record<string, RegExp> = {
  numa: /^0$/,
  acpi: /^1$/,
  tablet: /^0$/,
  localtime: /^0$/,
  kvm: /^1$/,
};

/** Keys whose values are not printed (cloud-init credentials). */
const SECRET_KEYS = new Set(["cipassword", "sshkeys"]);

/** Builds the plan of the VM from its config and what the archive holds. */
export function planVm(config: PveConfig, archive: ArchiveFacts): VmPlan {
  const unmapped = new Unmapped();
  const used = new Set<string>();
  const take = (key: string): PveEntry | undefined => {
    const e = config.entries.get(key);
    if (e !== undefined) used.add(key);
    return e;
  };
  const machine = planMachine(take("machine"), unmapped);
  const kvmEntry = take("kvm");
  const kvm = kvmEntry === undefined || intValue(kvmEntry, 0, 1) === 1;
  const memoryMiB = planMemory(take("memory"), unmapped);
  const sockets = optInt(take("sockets"), 1, 1, 512);
  const cores = optInt(take("cores"), 1, 1, 512);
  if (sockets * cores > 1024) {
    throw new ProxmoxConfigError(
      `Cannot use qemu-server.conf: ${sockets} sockets of ${cores} cores is more than 1024 CPUs`,
      { key: "cores" },
    );
  }
  const cpu = planCpu(take("cpu"), unmapped);
  const nameEntry = take("name");
  let name: string | null = null;
  if (nameEntry !== undefined) {
    if (DNS_NAME_RE.test(nameEntry.value)) name = nameEntry.value;
    else unmapped.add("name", "not a DNS name");
  }
  const bios = planBios(take("bios"));
  const scsihw = planScsiHw(take("scsihw"));
  const drives = planDrives(config, archive, machine, used, unmapped);
  const efi = planEfi(config, archive, bios, used, unmapped);
  const nics = planNics(config, used, unmapped);
  planBoot(take("boot"), take("bootdisk"), drives, nics, unmapped);
  const uuid = planSmbios(take("smbios1"), unmapped);
  const vmgenid = planVmgenid(take("vmgenid"));
  const vga = planVga(take("vga"), unmapped);
  const agent = planAgent(take("agent"), unmapped);
  const windows = planOstype(take("ostype"), unmapped);
  // qemu-server: Windows guests keep their clock in local time unless told.
  const localtimeEntry = take("localtime");
  const localtime = localtimeEntry === undefined
    ? windows
    : localtimeEntry.value === "1";
  for (const [key, re] of Object.entries(NO_EFFECT)) {
    const e = config.entries.get(key);
    if (e !== undefined && re.test(e.value)) used.add(key);
  }
  const serials: number[] = [];
  for (const e of config.entries.values()) {
    const m = /^serial([0-3])$/.exec(e.key);
    if (m && e.value === "socket") {
      serials.push(Number(m[1]));
      used.add(e.key);
    }
  }
  for (const e of config.entries.values()) {
    if (used.has(e.key)) continue;
    unmapped.add(
      e.key,
      SECRET_KEYS.has(e.key) ? "cloud-init secret, not shown" : e.value,
    );
  }
  for (const s of config.sections) unmapped.add(`[${s}]`, "section ignored");
  for (const c of archive.configs) {
    if (c !== PVE_CONFIG_NAME) unmapped.add(c, "extracted, not applied");
  }
  return {
    name,
    machine,
    kvm,
    memoryMiB,
    sockets,
    cores,
    cpu,
    bios,
    efi,
    scsihw,
    drives,
    nics,
    uuid,
    vmgenid,
    vga,
    agent,
    localtime,
    windows,
    serials,
    unmapped: unmapped.items,
  };
}

/** Whether `ostype` names a Windows (its RTC then drifts like qemu-server sets it). */
function planOstype(
  entry: PveEntry | undefined,
  unmapped: Unmapped,
): boolean {
  if (entry === undefined) return false;
  if (!Object.hasOwn(PVE_OSTYPES, entry.value)) {
    unmapped.add("ostype", entry.value);
    return false;
  }
  return /^(w|win)/.test(entry.value);
}

function optInt(
  entry: PveEntry | undefined,
  dflt: number,
  min: number,
  max: number,
): number {
  return entry === undefined ? dflt : intValue(entry, min, max);
}

/** Versioned machine types boot as their family on the local QEMU. */
function planMachine(
  entry: PveEntry | undefined,
  unmapped: Unmapped,
): "pc" | "q35" {
  if (entry === undefined) return "pc";
  const opts = parsePropertyString(entry, "type");
  const type = opts.get("type") ?? "pc";
  if (!PVE_MACHINE_RE.test(type)) throw invalid(entry, "is not a machine type");
  if (type.startsWith("virt")) {
    throw invalid(entry, "names an ARM machine; vmabak restores x86-64 VMs");
  }
  if (type !== "q35" && type !== "pc") {
    unmapped.add("machine", `${type} (the local QEMU's newest instead)`);
  }
  for (const [k, v] of opts) {
    if (k !== "type") unmapped.add("machine", `${k}=${v}`);
  }
  return type.includes("q35") ? "q35" : "pc";
}

function planMemory(entry: PveEntry | undefined, unmapped: Unmapped): number {
  if (entry === undefined) return 512;
  const opts = parsePropertyString(entry, "current");
  const current = opts.get("current");
  if (current === undefined) throw invalid(entry, "gives no size in MiB");
  for (const [k, v] of opts) {
    if (k !== "current") unmapped.add("memory", `${k}=${v}`);
  }
  return checkInt(entry, current, 16, 4 * 1024 * 1024);
}

function planCpu(
  entry: PveEntry | undefined,
  unmapped: Unmapped,
): VmPlan["cpu"] {
  if (entry === undefined) return { model: "kvm64", flags: [] };
  const opts = parsePropertyString(entry, "cputype");
  const type = opts.get("cputype") ?? "kvm64";
  let cpu: VmPlan["cpu"];
  if (type in PVE_CPU_LEVELS) {
    cpu = { model: "qemu64", flags: [...PVE_CPU_LEVELS[type]!] };
  } else if (type === "host") {
    cpu = { model: "max", flags: [] }; // the host's CPU on KVM, every feature on TCG
  } else if (PVE_CPU_MODELS.includes(type)) {
    cpu = { model: type, flags: [] };
  } else {
    unmapped.add("cpu", `${type} (kvm64 instead)`);
    cpu = { model: "kvm64", flags: [] };
  }
  const flags = opts.get("flags");
  if (flags !== undefined) {
    for (const f of flags.split(";")) {
      if (!PVE_CPU_FLAG_RE.test(f)) {
        throw invalid(entry, "has an invalid CPU flag");
      }
      cpu.flags.push(f);
    }
  }
  for (const [k, v] of opts) {
    if (k !== "cputype" && k !== "flags") unmapped.add("cpu", `${k}=${v}`);
  }
  return cpu;
}

function planBios(entry: PveEntry | undefined): "seabios" | "ovmf" {
  if (entry === undefined) return "seabios";
  if (entry.value === "seabios" || entry.value === "ovmf") return entry.value;
  throw invalid(entry, "must be seabios or ovmf");
}

function planScsiHw(entry: PveEntry | undefined): PveScsiHw {
  if (entry === undefined) return "lsi";
  if (Object.hasOwn(PVE_SCSIHW, entry.value)) return entry.value as PveScsiHw;
  throw invalid(entry, `must be one of ${Object.keys(PVE_SCSIHW).join(", ")}`);
}

function planSmbios(
  entry: PveEntry | undefined,
  unmapped: Unmapped,
): string | null {
  if (entry === undefined) return null;
  const opts = parsePropertyString(entry, null);
  const uuid = opts.get("uuid");
  if (uuid !== undefined && !UUID_RE.test(uuid)) {
    throw invalid(entry, "has an invalid uuid");
  }
  for (const [k, v] of opts) {
    if (k !== "uuid") unmapped.add("smbios1", `${k}=${v}`);
  }
  return uuid ?? null;
}

function planVmgenid(entry: PveEntry | undefined): string | null {
  if (entry === undefined || entry.value === "0") return null;
  if (entry.value === "1") return "auto";
  if (!UUID_RE.test(entry.value)) throw invalid(entry, "is not a UUID");
  return entry.value;
}

function planVga(
  entry: PveEntry | undefined,
  unmapped: Unmapped,
): string | null {
  if (entry === undefined) return "std";
  const opts = parsePropertyString(entry, "type");
  const type = opts.get("type") ?? "std";
  for (const [k, v] of opts) if (k !== "type") unmapped.add("vga", `${k}=${v}`);
  if (Object.hasOwn(PVE_VGA, type)) {
    return PVE_VGA[type as keyof typeof PVE_VGA];
  }
  unmapped.add("vga", `${type} (std instead)`);
  return "std";
}

function planAgent(entry: PveEntry | undefined, unmapped: Unmapped): boolean {
  if (entry === undefined) return false;
  const opts = parsePropertyString(entry, "enabled");
  const enabled = checkInt(entry, opts.get("enabled") ?? "0", 0, 1) === 1;
  for (const [k, v] of opts) {
    if (k !== "enabled") unmapped.add("agent", `${k}=${v}`);
  }
  return enabled;
}
