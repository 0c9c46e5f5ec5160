/** Drives, the EFI disk, NICs and boot order of a Proxmox config (see plan.ts). */
import {
  parsePropertyString,
  type PveConfig,
  type PveEntry,
} from "./config.ts";
import {
  MAC_RE,
  PVE_DRIVE_KEYS,
  PVE_EFI_VARS_SIZE,
  PVE_MAX_NETS,
  PVE_NIC_MODELS,
  type PveNicModel,
} from "./format.ts";
import { checkInt, invalid } from "./values.ts";
import type {
  ArchiveFacts,
  DriveBus,
  PlanDrive,
  PlanNic,
  Unmapped,
  VmPlan,
} from "./plan_types.ts";

const BUSES: DriveBus[] = ["ide", "sata", "scsi", "virtio"];
/** Options that describe the storage or the backup, not the guest's hardware. */
const STORAGE_OPTIONS = new Set([
  "file",
  "size",
  "format",
  "backup",
  "replicate",
]);
const SERIAL_RE = /^[A-Za-z0-9_.-]{1,20}$/;

/** The archive device a map line gives `virtdev`; a map naming no device is an error. */
function mappedDevice(
  config: PveConfig,
  archive: ArchiveFacts,
  virtdev: string,
): string | null {
  const map = config.maps.find((m) => m.virtdev === virtdev);
  if (map === undefined) return null;
  if (!archive.devices.some((d) => d.name === map.devname)) {
    throw invalid(
      { key: virtdev, value: "", line: map.line },
      "map line names a device the archive does not contain",
    );
  }
  return map.devname;
}

export function planDrives(
  config: PveConfig,
  archive: ArchiveFacts,
  machine: "pc" | "q35",
  used: Set<string>,
  unmapped: Unmapped,
): PlanDrive[] {
  const drives: PlanDrive[] = [];
  for (const bus of BUSES) {
    for (let index = 0; index < PVE_DRIVE_KEYS[bus]; index++) {
      const key = `${bus}${index}`;
      const entry = config.entries.get(key);
      if (entry === undefined) continue;
      used.add(key);
      const d = planDrive(entry, bus, index, config, archive, unmapped);
      if (d !== null) drives.push(d);
    }
  }
  if (machine === "q35" && drives.some((d) => d.bus === "ide" && d.index > 3)) {
    throw invalid(config.entries.get("ide4")!, "is beyond q35's IDE ports");
  }
  for (const m of config.maps) {
    const known = config.entries.has(m.virtdev);
    if (!known) unmapped.add(`map ${m.virtdev}`, "no drive line uses it");
  }
  for (const dev of archive.devices) {
    if (dev.name === "vmstate") continue;
    if (!config.maps.some((m) => m.devname === dev.name)) {
      unmapped.add(dev.name, "no map line: extracted, not attached");
    }
  }
  return drives;
}

function planDrive(
  entry: PveEntry,
  bus: DriveBus,
  index: number,
  config: PveConfig,
  archive: ArchiveFacts,
  unmapped: Unmapped,
): PlanDrive | null {
  const opts = parsePropertyString(entry, "file");
  const media = opts.get("media") ?? "disk";
  if (media !== "disk" && media !== "cdrom") {
    throw invalid(entry, "has a media other than disk or cdrom");
  }
  const device = mappedDevice(config, archive, entry.key);
  const file = opts.get("file") ?? "";
  if (device === null) {
    if (media === "disk") {
      unmapped.add(entry.key, "its data is not in the archive");
      return null;
    }
    if (file !== "none" && file !== "cdrom") {
      unmapped.add(entry.key, `${file} (the drive is empty)`);
    }
  }
  const flag = (name: string) =>
    opts.has(name) && checkInt(entry, opts.get(name)!, 0, 1) === 1;
  const discard = opts.get("discard") ?? "ignore";
  if (discard !== "on" && discard !== "ignore") {
    throw invalid(entry, "has a discard other than on or ignore");
  }
  const serial = opts.get("serial") ?? null;
  if (serial !== null && !SERIAL_RE.test(serial)) {
    unmapped.add(entry.key, "serial (not shown: characters QEMU cannot take)");
  }
  const mapped = new Set([
    ...STORAGE_OPTIONS,
    "media",
    "iothread",
    "ro",
    "ssd",
    "discard",
    "serial",
  ]);
  for (const [k, v] of opts) {
    if (!mapped.has(k)) unmapped.add(entry.key, `${k}=${v}`);
  }
  return {
    key: entry.key,
    bus,
    index,
    media,
    device,
    bootIndex: null,
    iothread: flag("iothread") && (bus === "virtio" || bus === "scsi"),
    readOnly: flag("ro") || media === "cdrom",
    ssd: flag("ssd"),
    discard: discard === "on",
    serial: serial !== null && SERIAL_RE.test(serial) ? serial : null,
  };
}

export function planEfi(
  config: PveConfig,
  archive: ArchiveFacts,
  bios: "seabios" | "ovmf",
  used: Set<string>,
  unmapped: Unmapped,
): VmPlan["efi"] {
  const entry = config.entries.get("efidisk0");
  if (bios === "seabios") return null; // an efidisk0 of a SeaBIOS VM: listed as unmapped
  if (entry === undefined) {
    unmapped.add("bios", "ovmf without efidisk0: EFI variables are not kept");
    return { device: null, varsSize: PVE_EFI_VARS_SIZE["4m"], efitype: "4m" };
  }
  used.add("efidisk0");
  const opts = parsePropertyString(entry, "file");
  const efitype = opts.get("efitype") ?? "2m";
  if (efitype !== "2m" && efitype !== "4m") {
    throw invalid(entry, "has an efitype other than 2m or 4m");
  }
  const varsSize = PVE_EFI_VARS_SIZE[efitype];
  const device = mappedDevice(config, archive, "efidisk0");
  if (device === null) {
    unmapped.add("efidisk0", "not in the archive: EFI variables are not kept");
  } else if (archive.devices.find((d) => d.name === device)!.size < varsSize) {
    throw invalid(entry, `is smaller than the ${efitype} OVMF variables`);
  }
  for (const [k, v] of opts) {
    if (!STORAGE_OPTIONS.has(k) && k !== "efitype") {
      unmapped.add("efidisk0", `${k}=${v}`);
    }
  }
  return { device, varsSize, efitype };
}

export function planNics(
  config: PveConfig,
  used: Set<string>,
  unmapped: Unmapped,
): PlanNic[] {
  const nics: PlanNic[] = [];
  for (let index = 0; index < PVE_MAX_NETS; index++) {
    const key = `net${index}`;
    const entry = config.entries.get(key);
    if (entry === undefined) continue;
    used.add(key);
    const opts = parsePropertyString(entry, null);
    let model: PveNicModel | undefined;
    let mac: string | null = null;
    for (const [k, v] of opts) {
      if (Object.hasOwn(PVE_NIC_MODELS, k)) {
        model = k as PveNicModel;
        mac = v === "" ? null : v;
        opts.delete(k);
        break;
      }
    }
    if (model === undefined && opts.has("model")) {
      const m = opts.get("model")!;
      if (!Object.hasOwn(PVE_NIC_MODELS, m)) {
        throw invalid(entry, "has an unknown NIC model");
      }
      model = m as PveNicModel;
      mac = opts.get("macaddr") ?? null;
      opts.delete("model");
      opts.delete("macaddr");
    }
    if (model === undefined) throw invalid(entry, "names no NIC model");
    if (mac !== null && !MAC_RE.test(mac)) {
      throw invalid(entry, "has an invalid or multicast MAC");
    }
    for (const [k, v] of opts) {
      unmapped.add(key, `${k}=${v} (user-mode network instead)`);
    }
    nics.push({
      key,
      index,
      device: PVE_NIC_MODELS[model],
      mac,
      bootIndex: null,
    });
  }
  return nics;
}

/** `boot: order=scsi0;net0`, or the legacy `boot: cdn` with `bootdisk:` (also the default). */
export function planBoot(
  boot: PveEntry | undefined,
  bootdisk: PveEntry | undefined,
  drives: PlanDrive[],
  nics: PlanNic[],
  unmapped: Unmapped,
): void {
  const opts = boot === undefined
    ? new Map([["legacy", "cdn"]])
    : parsePropertyString(boot, "legacy");
  const order: string[] = [];
  const list = opts.get("order");
  if (list !== undefined) {
    for (const key of list.split(";")) {
      if (!/^[a-z]+\d+$/.test(key)) {
        throw invalid(boot!, "has an invalid boot device");
      }
      order.push(key);
    }
  } else {
    const legacy = opts.get("legacy") ?? "cdn";
    if (!/^[acdn]{1,4}$/.test(legacy)) {
      throw invalid(boot!, "has an invalid boot order");
    }
    for (const c of legacy) {
      if (c === "c" && bootdisk !== undefined) order.push(bootdisk.value);
      if (c === "d") {
        order.push(
          ...drives.filter((d) => d.media === "cdrom").map((d) => d.key),
        );
      }
      if (c === "n") order.push(...nics.map((n) => n.key));
    }
  }
  for (const [k, v] of opts) {
    if (k !== "order" && k !== "legacy") unmapped.add("boot", `${k}=${v}`);
  }
  let next = 100;
  for (const key of order) {
    const dev = drives.find((d) => d.key === key) ??
      nics.find((n) => n.key === key);
    if (dev === undefined) unmapped.add("boot", `${key} (no such device)`);
    else if (dev.bootIndex === null) dev.bootIndex = next++;
  }
}
