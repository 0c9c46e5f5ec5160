/** The QEMU command line that brings a restored VM back, from its `vmabak.json`. */
import type { VmDescription } from "./inventory.ts";

/** File name `extract` gives a disk (kept in step with lib/vma/extract.ts). */
function diskFile(name: string): string {
  return `disk-${name}.raw`;
}

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\/.,:=+-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Arguments for qemu-system-x86_64: the same machine type, memory, CPUs and
 * disk devices (type, id, PCI address, node names) as at backup time, disks
 * from the restored raw files, a QMP socket in `dir`, and with a state
 * stream `-incoming "exec:cat vmstate.bin"`. Devices other than the disks
 * are not recorded: add them as in the original VM, since QEMU only loads a
 * state into the same set of devices.
 */
export function resumeArgs(
  desc: VmDescription,
  dir: string,
  withState: boolean,
): string[][] {
  const args: string[][] = [
    ["-machine", `${desc.machine || "q35"},accel=${desc.kvm ? "kvm" : "tcg"}`],
    ["-m", `${Math.round(desc.memoryBytes / (1024 * 1024))}M`],
    ["-smp", String(desc.cpus)],
    ["-nodefaults"],
    ["-display", "none"],
    ["-qmp", `unix:${dir}/qmp.sock,server=on,wait=off`],
  ];
  desc.disks.forEach((d, i) => {
    const node = d.node.startsWith("#") ? `disk${i}` : d.node;
    args.push([
      "-blockdev",
      `driver=file,filename=${dir}/${
        diskFile(d.name)
      },node-name=vmabak-file${i}`,
    ]);
    args.push([
      "-blockdev",
      `driver=raw,file=vmabak-file${i},node-name=${node}`,
    ]);
    const dev = [d.deviceType || "virtio-blk-pci", `drive=${node}`];
    if (d.deviceId) dev.push(`id=${d.deviceId}`);
    if (d.pciAddr) dev.push(`addr=${d.pciAddr}`);
    if (d.bootIndex !== null) dev.push(`bootindex=${d.bootIndex}`);
    args.push(["-device", dev.join(",")]);
  });
  if (withState) {
    args.push(["-incoming", `exec:cat ${shellQuote(`${dir}/vmstate.bin`)}`]);
  }
  return args;
}

export function resumeScript(
  desc: VmDescription,
  dir: string,
  withState: boolean,
): string {
  const lines = ["qemu-system-x86_64"];
  for (const group of resumeArgs(desc, dir, withState)) {
    lines.push(`  ${group.map(shellQuote).join(" ")}`);
  }
  return [
    "#!/bin/sh",
    `# Written by vmabak restore: starts the VM "${
      desc.name ?? ""
    }" backed up with QEMU ${desc.qemu}.`,
    withState
      ? "# It loads the saved RAM and device state and comes up paused (the instant of the backup);\n" +
        `# resume it with: vmabak resume --qmp ${dir}/qmp.sock`
      : "# No RAM state was saved: the VM boots from its disks.",
    "# Only the disks are recreated; add the VM's other devices as in the original.",
    "exec " + lines.join(" \\\n") + ' "$@"',
    "",
  ].join("\n");
}
