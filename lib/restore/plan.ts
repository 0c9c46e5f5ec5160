/**
 * What `restore` makes of an archive's header: the checked VM description
 * (`vmabak.json`) or Proxmox plan (`qemu-server.conf`), or nothing to boot.
 * Everything is checked here, before anything is written; `restore` and
 * `restore --live` share it, and render their QEMU command lines from it.
 */
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import {
  restoredNode,
  resumeArgs,
  resumeScript,
} from "../backup/command_line.ts";
import {
  NOT_RECREATED_TYPES,
  parseVmDescription,
} from "../backup/description.ts";
import type { VmDescription } from "../backup/inventory.ts";
import { parsePveConfig } from "../proxmox/config.ts";
import { PVE_CONFIG_NAME } from "../proxmox/format.ts";
import { planVm } from "../proxmox/plan.ts";
import type { VmPlan } from "../proxmox/plan_types.ts";
import {
  findOvmf,
  proxmoxArgs,
  proxmoxScript,
  pveDriveNode,
} from "../proxmox/qemu_args.ts";
import { printable, qemuOptValue } from "../text/escape.ts";
import { planExtract } from "../vma/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";

export type RestorePlan =
  | { kind: "vmabak"; desc: VmDescription; withState: boolean }
  | { kind: "proxmox"; plan: VmPlan }
  | { kind: "none" };

/** The file name restore gives the script it writes. */
export const RESUME_SCRIPT = "resume.sh";

/**
 * Checks an archive's header for a restore into `dir` and returns what to
 * boot; throws a one-line error for anything it cannot use safely.
 */
export function planRestore(header: VmaHeader, dir: string): RestorePlan {
  const { configs, devices } = header;
  const withState = devices.some((d) => d.name === VMA_VMSTATE_NAME);
  planExtract(header);
  const config = configs.find((c) => c.name === VM_CONFIG_NAME);
  const pveConfig = configs.find((c) => c.name === PVE_CONFIG_NAME);
  if (
    (config !== undefined || pveConfig !== undefined) &&
    configs.some((c) => c.name === RESUME_SCRIPT)
  ) {
    throw new Error(
      `Cannot restore: the archive holds a config named ${RESUME_SCRIPT}, the file restore writes`,
    );
  }
  if (config !== undefined) {
    qemuOptValue(dir, "target directory");
    const desc = parseVmDescription(config.data);
    const names = new Set(devices.map((d) => d.name));
    for (const d of desc.disks) {
      if (!names.has(d.name)) {
        throw new Error(
          `Cannot use the VM description: disk "${
            printable(d.name, 80)
          }" is not in the archive`,
        );
      }
    }
    resumeScript(desc, dir, withState); // renders, or refuses, now
    return { kind: "vmabak", desc, withState };
  }
  if (pveConfig !== undefined) {
    const plan = planVm(parsePveConfig(pveConfig.data), {
      devices: devices.filter((d) => d.name !== VMA_VMSTATE_NAME),
      configs: configs.map((c) => c.name),
    });
    if (withState) {
      plan.unmapped.push("vmstate: RAM state not loaded (cold boot)");
    }
    qemuOptValue(dir, "target directory");
    return { kind: "proxmox", plan };
  }
  return { kind: "none" };
}

/** What a Proxmox config asks for and the restored VM does not get, one printable line each. */
export function unmappedNotes(plan: RestorePlan): string[] {
  if (plan.kind !== "proxmox") return [];
  return plan.plan.unmapped.map((u) =>
    `not mapped from ${PVE_CONFIG_NAME}: ${printable(u)}`
  );
}

/** A disk a live restore attaches through a qcow2 overlay, and its QEMU node. */
export interface OverlayDisk {
  /** The archive device, `drive-scsi0`. */
  device: string;
  /** The node the command line gives it (the one to `block-stream`). */
  node: string;
}

/**
 * The disks a live restore attaches through qcow2 overlays: the VM's
 * writable disks (QEMU streams only into a writable node), with the node
 * names `restoreArgs` gives them. Firmware flash, read-only drives and
 * devices the VM does not use are copied whole before it starts.
 */
export function overlayDisks(plan: RestorePlan): OverlayDisk[] {
  if (plan.kind === "vmabak") {
    return plan.desc.disks.flatMap((d, i) =>
      NOT_RECREATED_TYPES.includes(d.deviceType)
        ? []
        : [{ device: d.name, node: restoredNode(d, i) }]
    );
  }
  if (plan.kind === "proxmox") {
    return plan.plan.drives.flatMap((d) =>
      d.device === null || d.readOnly
        ? []
        : [{ device: d.device, node: pveDriveNode(d.key) }]
    );
  }
  return [];
}

/**
 * QEMU's arguments for a plan (`-qmp unix:DIR/qmp.sock`): disks from raw
 * files in `dir`, or from `disk-NAME.qcow2` for the devices in `overlays`.
 */
export function restoreArgs(
  plan: RestorePlan,
  dir: string,
  overlays: ReadonlySet<string> = new Set(),
): string[][] {
  if (plan.kind === "vmabak") {
    return resumeArgs(plan.desc, dir, plan.withState, overlays);
  }
  if (plan.kind === "proxmox") {
    return proxmoxArgs(plan.plan, dir, firmwareOf(plan.plan), overlays);
  }
  throw new Error("Cannot start the VM: the archive describes none");
}

/** `resume.sh` for a plan, or null when the archive describes no VM. */
export function restoreScript(
  plan: RestorePlan,
  dir: string,
  overlays: ReadonlySet<string> = new Set(),
): string | null {
  if (plan.kind === "vmabak") {
    return resumeScript(plan.desc, dir, plan.withState, overlays);
  }
  if (plan.kind === "proxmox") {
    return proxmoxScript(plan.plan, dir, firmwareOf(plan.plan), overlays);
  }
  return null;
}

function firmwareOf(plan: VmPlan) {
  return plan.efi === null ? null : findOvmf(plan.efi.efitype);
}
