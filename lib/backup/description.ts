/**
 * The one door for an archive's `vmabak.json`: untrusted bytes in, a typed,
 * checked `VmDescription` out, or a `DescriptionError` naming the first
 * field that is wrong. Renderers (resume.sh, QEMU command lines) only ever
 * see what this returns. Unknown fields are ignored, so later versions can
 * add fields; a field this version knows must have its type and range.
 */
import type { VmDescription, VmDisk } from "./inventory.ts";
import { parseIncrementalRecord } from "../chain/incremental.ts";
import { printable, QEMU_ID } from "../text/escape.ts";

/** `vmabak.json` is missing a field, or a field has a wrong type, range or character. */
export class DescriptionError extends Error {
  override name = "DescriptionError";
  constructor(readonly field: string, readonly reason: string) {
    super(`Cannot use the VM description: ${field} ${reason}`);
  }
}

/** Guest device types whose `drive` property takes a disk: the ones a restore may create. */
export const DISK_DEVICE_TYPES: readonly string[] = [
  "virtio-blk-pci",
  "virtio-blk-pci-transitional",
  "virtio-blk-pci-non-transitional",
  "virtio-blk-device",
  "virtio-blk-ccw",
  "scsi-hd",
  "scsi-block",
  "ide-hd",
  "nvme",
  "usb-storage",
  "floppy",
  // Firmware flash (OVMF variables): restored as a file, not recreated.
  "cfi.pflash01",
];

/** Device types `resume.sh` does not recreate (the file is restored; attach it as in the original). */
export const NOT_RECREATED_TYPES: readonly string[] = ["cfi.pflash01"];

/** Machine types as QEMU names them (`pc-q35-7.2`, `q35`, `pc`, `microvm`). */
const MACHINE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** QOM's names for devices given no id: `device[3]`. */
const ANONYMOUS_DEVICE = /^device\[\d{1,6}\]$/;
/** QEMU's automatic node names: `#block123`. */
const AUTO_NODE = /^#[A-Za-z0-9_]{1,64}$/;
const PCI_ADDR = /^0x[0-9a-f]{1,2}\.0x[0-7]$/;
const VERSION = /^[0-9A-Za-z.+~_-]{1,64}$/;
const FORMAT = /^[a-z0-9_-]{1,32}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

const MAX_MEMORY = 2 ** 46; // 64 TiB
const MAX_CPUS = 4096;
const MAX_DISKS = 255;

/** Parses and checks `vmabak.json`; throws a `DescriptionError`. */
export function parseVmDescription(bytes: Uint8Array): VmDescription {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new DescriptionError("vmabak.json", "is not valid UTF-8 JSON");
  }
  return checkVmDescription(json);
}

/** Checks an already parsed description (a value of unknown shape). */
export function checkVmDescription(value: unknown): VmDescription {
  const o = object(value, "vmabak.json");
  const disks = o.disks;
  if (!Array.isArray(disks)) fail("disks", "is not a list");
  if (disks.length > MAX_DISKS) fail("disks", `has more than ${MAX_DISKS}`);
  const desc: VmDescription = {
    vmabak: text(o.vmabak, "vmabak", VERSION),
    qemu: text(o.qemu, "qemu", VERSION),
    name: o.name === null || o.name === undefined
      ? null
      : plain(o.name, "name", 255),
    machine: o.machine === "" ? "" : text(o.machine, "machine", MACHINE),
    kvm: bool(o.kvm, "kvm"),
    memoryBytes: int(o.memoryBytes, "memoryBytes", 1024 * 1024, MAX_MEMORY),
    cpus: int(o.cpus, "cpus", 1, MAX_CPUS),
    disks: disks.map((d, i) => checkDisk(d, `disks[${i}]`)),
    vmstate: bool(o.vmstate, "vmstate"),
    ...(o.incremental === undefined
      ? {}
      : { incremental: incremental(o.incremental) }),
  };
  unique(desc.disks.map((d) => d.name), "disks[].name");
  unique(desc.disks.map((d) => d.node), "disks[].node");
  unique(
    desc.disks.map((d) => d.deviceId).filter((id) => QEMU_ID.test(id)),
    "disks[].deviceId",
  );
  return desc;
}

function checkDisk(value: unknown, at: string): VmDisk {
  const d = object(value, at);
  const node = plain(d.node, `${at}.node`, 127);
  if (!QEMU_ID.test(node) && !AUTO_NODE.test(node)) {
    fail(`${at}.node`, "is not a QEMU node name");
  }
  const deviceId = plain(d.deviceId, `${at}.deviceId`, 127);
  if (
    deviceId !== "" && !QEMU_ID.test(deviceId) &&
    !ANONYMOUS_DEVICE.test(deviceId)
  ) {
    fail(`${at}.deviceId`, "is not a QEMU device id");
  }
  const deviceType = plain(d.deviceType, `${at}.deviceType`, 64);
  if (deviceType !== "" && !DISK_DEVICE_TYPES.includes(deviceType)) {
    fail(
      `${at}.deviceType`,
      `"${printable(deviceType)}" is not a known disk device type (${
        DISK_DEVICE_TYPES.join(", ")
      })`,
    );
  }
  const name = plain(d.name, `${at}.name`, 200);
  if (name === "" || name === "." || name === ".." || /[\/\\]/.test(name)) {
    fail(`${at}.name`, "cannot be a file name");
  }
  return {
    name,
    node,
    qdev: plain(d.qdev, `${at}.qdev`, 1024),
    deviceId,
    deviceType,
    pciAddr: d.pciAddr === null
      ? null
      : text(d.pciAddr, `${at}.pciAddr`, PCI_ADDR),
    bootIndex: d.bootIndex === null
      ? null
      : int(d.bootIndex, `${at}.bootIndex`, 0, 2 ** 31 - 1),
    format: text(d.format, `${at}.format`, FORMAT),
    file: plain(d.file, `${at}.file`, 4096),
    size: int(d.size, `${at}.size`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function incremental(value: unknown) {
  try {
    return parseIncrementalRecord(value);
  } catch (error) {
    fail(
      "incremental",
      (error as Error).message.replace(
        /^Cannot read the incremental record: /,
        "",
      ),
    );
  }
}

function fail(field: string, reason: string): never {
  throw new DescriptionError(field, reason);
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(at, "is not an object");
  }
  return value as Record<string, unknown>;
}

/** A string without control characters, at most `max` long. */
function plain(value: unknown, at: string, max: number): string {
  if (typeof value !== "string") fail(at, "is not a string");
  if (value.length > max) fail(at, `is longer than ${max} characters`);
  if (CONTROL.test(value)) fail(at, "holds a control character");
  return value;
}

function text(value: unknown, at: string, pattern: RegExp): string {
  if (typeof value !== "string") fail(at, "is not a string");
  if (!pattern.test(value)) {
    fail(at, `"${printable(value, 80)}" has characters or a form not allowed`);
  }
  return value;
}

function bool(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") fail(at, "is not true or false");
  return value;
}

function int(value: unknown, at: string, min: number, max: number): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < min ||
    value > max
  ) {
    fail(at, `is not an integer from ${min} to ${max}`);
  }
  return value;
}

function unique(values: string[], at: string): void {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) fail(at, `"${printable(v, 80)}" appears twice`);
    seen.add(v);
  }
}
