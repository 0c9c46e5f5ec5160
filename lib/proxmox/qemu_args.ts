/**
 * The QEMU command line of a VM plan (plan.ts), and resume.sh around it.
 * Every value comes from the plan, already checked against its format; paths
 * and device names still pass `qemuOptValue` (commas doubled, control
 * characters refused) and every word is quoted for sh.
 */
import { qemuOptValue, shellQuote } from "../text/escape.ts";
import { deviceFileName } from "../vma/extract.ts";
import { PVE_SCSIHW } from "./format.ts";
import type { PlanDrive, VmPlan } from "./plan_types.ts";

/** OVMF images: the code of each efitype and the VARS template. */
export interface Firmware {
  code: string;
  vars: string;
}

/** Where Debian (and Proxmox) keep OVMF, first found wins. */
const OVMF_DIRS = ["/usr/share/OVMF", "/usr/share/pve-edk2-firmware"];

/** The OVMF files for an efitype on this machine (Debian's paths when none is found). */
export function findOvmf(efitype: "2m" | "4m"): Firmware {
  const suffix = efitype === "4m" ? "_4M" : "";
  for (const dir of OVMF_DIRS) {
    const code = `${dir}/OVMF_CODE${suffix}.fd`;
    try {
      Deno.statSync(code);
      return { code, vars: `${dir}/OVMF_VARS${suffix}.fd` };
    } catch { /* next */ }
  }
  return {
    code: `${OVMF_DIRS[0]}/OVMF_CODE${suffix}.fd`,
    vars: `${OVMF_DIRS[0]}/OVMF_VARS${suffix}.fd`,
  };
}

/** q35 has no PIIX IDE: Proxmox puts ide0..3 on AHCI ports 0, 2, 1, 3. */
const Q35_IDE_PORT = [0, 2, 1, 3];

/**
 * QEMU's arguments for a plan; drives whose archive device is in `overlays`
 * are opened as `disk-NAME.qcow2` (restore --live) instead of raw files.
 */
export function proxmoxArgs(
  plan: VmPlan,
  dir: string,
  firmware: Firmware | null,
  overlays: ReadonlySet<string> = new Set(),
): string[][] {
  dir = qemuOptValue(dir, "target directory");
  const machine = [plan.machine, `accel=${plan.kvm ? "kvm:tcg" : "tcg"}`];
  const args: string[][] = [
    ["-machine", machine.join(",")],
    ["-cpu", [plan.cpu.model, ...plan.cpu.flags].join(",")],
    ["-m", `${plan.memoryMiB}M`],
    [
      "-smp",
      `${
        plan.sockets * plan.cores
      },sockets=${plan.sockets},cores=${plan.cores},threads=1`,
    ],
  ];
  if (plan.name !== null) {
    args.push(["-name", qemuOptValue(plan.name, "name")]);
  }
  if (plan.uuid !== null) args.push(["-smbios", `type=1,uuid=${plan.uuid}`]);
  args.push(
    ["-nodefaults"],
    ["-display", "none"],
    ["-qmp", `unix:${dir}/qmp.sock,server=on,wait=off`],
  );
  if (plan.vga !== null) args.push(["-vga", plan.vga]);
  const rtc = [
    ...(plan.localtime ? ["base=localtime"] : []),
    ...(plan.windows ? ["driftfix=slew"] : []),
  ];
  if (rtc.length > 0) args.push(["-rtc", rtc.join(",")]);
  if (plan.vmgenid !== null) {
    args.push(["-device", `vmgenid,guid=${plan.vmgenid}`]);
  }
  if (plan.efi !== null && firmware !== null) {
    args.push([
      "-drive",
      `if=pflash,unit=0,format=raw,readonly=on,file=${
        qemuOptValue(firmware.code, "OVMF path")
      }`,
    ]);
    args.push([
      "-drive",
      plan.efi.device === null
        ? `if=pflash,unit=1,format=raw,snapshot=on,file=${
          qemuOptValue(firmware.vars, "OVMF path")
        }`
        : `if=pflash,unit=1,format=raw,size=${plan.efi.varsSize},file=${
          diskPath(dir, plan.efi.device)
        }`,
    ]);
  }
  const controllers = new Set<string>();
  for (const d of plan.drives) {
    args.push(...driveArgs(plan, d, dir, controllers, overlays));
  }
  for (const n of plan.nics) {
    args.push(["-netdev", `user,id=${n.key}`]);
    const dev = [n.device, `netdev=${n.key}`, `id=${n.key}`];
    if (n.mac !== null) dev.push(`mac=${n.mac}`);
    if (n.bootIndex !== null) dev.push(`bootindex=${n.bootIndex}`);
    args.push(["-device", dev.join(",")]);
  }
  if (plan.agent) {
    args.push(
      ["-chardev", `socket,id=qga0,path=${dir}/qga.sock,server=on,wait=off`],
      ["-device", "virtio-serial,id=qga-serial0"],
      ["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
    );
  }
  for (const n of plan.serials) {
    args.push(
      [
        "-chardev",
        `socket,id=serial${n},path=${dir}/serial${n}.sock,server=on,wait=off`,
      ],
      ["-device", `isa-serial,chardev=serial${n}`],
    );
  }
  return args;
}

function diskPath(dir: string, device: string, overlay = false): string {
  const name = deviceFileName(device, overlay ? "qcow2" : "raw");
  return `${dir}/${qemuOptValue(name, "device name")}`;
}

/** The node name the restored VM gives the drive of config key `key` (`drive-scsi0`). */
export function pveDriveNode(key: string): string {
  return `drive-${key}`;
}

function driveArgs(
  plan: VmPlan,
  d: PlanDrive,
  dir: string,
  controllers: Set<string>,
  overlays: ReadonlySet<string>,
): string[][] {
  const args: string[][] = [];
  const node = pveDriveNode(d.key);
  if (d.device !== null) {
    const ro = d.readOnly ? ",read-only=on" : "";
    const overlay = overlays.has(d.device);
    args.push([
      "-blockdev",
      `driver=file,filename=${
        diskPath(dir, d.device, overlay)
      },node-name=file-${d.key}${ro}` +
      (d.discard ? ",discard=unmap" : ""),
    ]);
    args.push([
      "-blockdev",
      `driver=${
        overlay ? "qcow2" : "raw"
      },file=file-${d.key},node-name=${node}${ro}` +
      (d.discard ? ",discard=unmap" : ""),
    ]);
  }
  const cd = d.media === "cdrom";
  const dev: string[] = [];
  const controller = (id: string, spec: string[]) => {
    if (controllers.has(id)) return;
    controllers.add(id);
    args.push(["-device", spec.join(",")]);
  };
  if (d.bus === "virtio") {
    dev.push("virtio-blk-pci");
    if (d.iothread) {
      args.push(["-object", `iothread,id=iothread-${d.key}`]);
      dev.push(`iothread=iothread-${d.key}`);
    }
  } else if (d.bus === "scsi") {
    dev.push(cd ? "scsi-cd" : "scsi-hd");
    if (plan.scsihw === "virtio-scsi-single") {
      const id = `virtioscsi${d.index}`;
      if (d.iothread) args.push(["-object", `iothread,id=iothread-${id}`]);
      controller(id, [
        "virtio-scsi-pci",
        `id=${id}`,
        ...(d.iothread ? [`iothread=iothread-${id}`] : []),
      ]);
      dev.push(`bus=${id}.0`, "channel=0", "scsi-id=0", `lun=${d.index}`);
    } else {
      const maxdev = plan.scsihw.startsWith("lsi") ? 7 : 256;
      const id = `scsihw${Math.floor(d.index / maxdev)}`;
      controller(id, [PVE_SCSIHW[plan.scsihw], `id=${id}`]);
      dev.push(
        `bus=${id}.0`,
        ...(maxdev === 7
          ? [`scsi-id=${d.index % maxdev}`]
          : ["channel=0", "scsi-id=0", `lun=${d.index}`]),
      );
    }
    if (d.ssd && !cd) dev.push("rotation_rate=1");
  } else if (d.bus === "ide") {
    dev.push(cd ? "ide-cd" : "ide-hd");
    if (plan.machine === "q35") {
      dev.push(`bus=ide.${Q35_IDE_PORT[d.index]}`, "unit=0");
    } else {dev.push(
        `bus=ide.${Math.floor(d.index / 2)}`,
        `unit=${d.index % 2}`,
      );}
    if (d.ssd && !cd) dev.push("rotation_rate=1");
  } else {
    controller("ahci0", ["ahci", "id=ahci0"]);
    dev.push(cd ? "ide-cd" : "ide-hd", `bus=ahci0.${d.index}`);
    if (d.ssd && !cd) dev.push("rotation_rate=1");
  }
  if (d.device !== null) dev.push(`drive=${node}`);
  dev.push(`id=${d.key}`);
  if (d.serial !== null) dev.push(`serial=${d.serial}`);
  if (d.bootIndex !== null) dev.push(`bootindex=${d.bootIndex}`);
  args.push(["-device", dev.join(",")]);
  return args;
}

/** resume.sh: the command line, with what was not mapped in a comment at the top. */
export function proxmoxScript(
  plan: VmPlan,
  dir: string,
  firmware: Firmware | null,
  overlays: ReadonlySet<string> = new Set(),
): string {
  const lines = ["qemu-system-x86_64"];
  for (const group of proxmoxArgs(plan, dir, firmware, overlays)) {
    lines.push(`  ${group.map(shellQuote).join(" ")}`);
  }
  return [
    "#!/bin/sh",
    `# Written by vmabak restore from the Proxmox config qemu-server.conf${
      plan.name !== null ? ` of VM ${plan.name}` : ""
    }.`,
    "# The VM boots from its disks. NICs use QEMU's user-mode network with their",
    "# configured MACs. No display: add options, e.g. resume.sh -vnc 127.0.0.1:0",
    ...(plan.unmapped.length === 0
      ? ["# Every key of the config is mapped."]
      : [
        "# Not mapped from the config:",
        ...plan.unmapped.map((u) => `#   ${u}`),
      ]),
    "exec " + lines.join(" \\\n") + ' "$@"',
    "",
  ].join("\n");
}
