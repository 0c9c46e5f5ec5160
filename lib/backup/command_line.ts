/**
 * The QEMU command line that brings a restored VM back, from its
 * `vmabak.json`. Everything from the archive is checked by
 * `checkVmDescription` first (ids, machine type, device type from a known
 * list); every value reaching a QEMU option goes through `qemuOptValue` and
 * every word of the script through `shellQuote`, so no archive content can
 * add a QEMU option or a shell command.
 */
import { checkVmDescription, NOT_RECREATED_TYPES } from "./description.ts";
import type { VmDescription } from "./inventory.ts";
import {
  checkQemuId,
  printable,
  QEMU_ID,
  qemuOptValue,
  shellQuote,
} from "../text/escape.ts";

export { shellQuote };

/** The node name the restored VM gives disk `i` (its own, or `diskI` for QEMU's anonymous `#block…` nodes). */
export function restoredNode(
  d: { node: string },
  i: number,
): string {
  return d.node.startsWith("#") ? `disk${i}` : checkQemuId(d.node, "node name");
}

/**
 * File name `extract` gives a disk (kept in step with lib/vma/extract.ts), or
 * `restore --live` its qcow2 overlay.
 */
function diskFile(name: string, overlay = false): string {
  return `disk-${name}.${overlay ? "qcow2" : "raw"}`;
}

/**
 * Arguments for qemu-system-x86_64: the same machine type, memory, CPUs and
 * disk devices (type, id, PCI address, node names) as at backup time, disks
 * from the restored raw files, a QMP socket in `dir`, and with a state
 * stream `-incoming "exec:cat vmstate.bin"`. Devices other than the disks
 * are not recorded: add them as in the original VM, since QEMU only loads a
 * state into the same set of devices. Disks named in `overlays` are opened
 * as `disk-NAME.qcow2` (restore --live) instead of raw files.
 */
export function resumeArgs(
  description: VmDescription,
  dir: string,
  withState: boolean,
  overlays: ReadonlySet<string> = new Set(),
): string[][] {
  const desc = checkVmDescription(description);
  const opt = (v: string) => qemuOptValue(v, "target directory");
  const args: string[][] = [
    [
      "-machine",
      `${qemuOptValue(desc.machine || "q35", "machine type")},accel=${
        desc.kvm ? "kvm" : "tcg"
      }`,
    ],
    ["-m", `${Math.ceil(desc.memoryBytes / (1024 * 1024))}M`],
    ["-smp", String(desc.cpus)],
    ["-nodefaults"],
    ["-display", "none"],
    ["-qmp", `unix:${opt(`${dir}/qmp.sock`)},server=on,wait=off`],
  ];
  desc.disks.forEach((d, i) => {
    if (NOT_RECREATED_TYPES.includes(d.deviceType)) return;
    const node = restoredNode(d, i);
    const overlay = overlays.has(d.name);
    args.push([
      "-blockdev",
      `driver=file,filename=${
        opt(`${dir}/${diskFile(d.name, overlay)}`)
      },node-name=vmabak-file${i}`,
    ]);
    args.push([
      "-blockdev",
      `driver=${
        overlay ? "qcow2" : "raw"
      },file=vmabak-file${i},node-name=${node}`,
    ]);
    const dev = [
      qemuOptValue(d.deviceType || "virtio-blk-pci", "device type"),
      `drive=${node}`,
    ];
    // Devices QEMU named itself (`device[3]`) get no id, as in the original.
    if (QEMU_ID.test(d.deviceId)) dev.push(`id=${d.deviceId}`);
    if (d.pciAddr) dev.push(`addr=${qemuOptValue(d.pciAddr, "PCI address")}`);
    if (d.bootIndex !== null) dev.push(`bootindex=${d.bootIndex}`);
    args.push(["-device", dev.join(",")]);
  });
  if (withState) {
    // QEMU runs an exec: migration URI with /bin/sh -c: quote the path for it.
    args.push(["-incoming", `exec:cat ${shellQuote(`${dir}/vmstate.bin`)}`]);
  }
  return args;
}

export function resumeScript(
  description: VmDescription,
  dir: string,
  withState: boolean,
  overlays: ReadonlySet<string> = new Set(),
): string {
  const desc = checkVmDescription(description);
  const lines = ["qemu-system-x86_64"];
  for (const group of resumeArgs(desc, dir, withState, overlays)) {
    lines.push(`  ${group.map(shellQuote).join(" ")}`);
  }
  return [
    "#!/bin/sh",
    `# Written by vmabak restore: starts the VM "${
      printable(desc.name ?? "")
    }" backed up with QEMU ${printable(desc.qemu)}.`,
    withState
      ? "# It loads the saved RAM and device state and comes up paused (the instant of the backup);\n" +
        `# resume it with: vmabak resume --qmp ${printable(`${dir}/qmp.sock`)}`
      : "# No RAM state was saved: the VM boots from its disks.",
    "# Only the disks are recreated; add the VM's other devices as in the original.",
    ...desc.disks.filter((d) => NOT_RECREATED_TYPES.includes(d.deviceType))
      .map((d) =>
        `# Not recreated: ${printable(d.deviceType)} ${
          printable(d.deviceId)
        }, restored as ${printable(`${dir}/${diskFile(d.name)}`)}.`
      ),
    "exec " + lines.join(" \\\n") + ' "$@"',
    "",
  ].join("\n");
}
