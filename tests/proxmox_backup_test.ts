/**
 * Backups that Proxmox imports: the generated qemu-server.conf of real QEMU
 * VMs, line by line; vzdump naming, notes and log; the archive through
 * Proxmox's own `vma verify` and `vma extract` (plain and zstd).
 */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { MiB, twoDisks, watchStderr } from "./helpers/backup_checks.ts";
import {
  havePveVma,
  MAIN,
  oneLine,
  PVE_VMA,
  run,
  sh,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";
import { checkPveArchive } from "../lib/proxmox/check.ts";
import { VZDUMP_NAME_RE } from "../lib/proxmox/vzdump_name.ts";
import { VmaReader } from "../lib/vma/reader.ts";
import { openArchiveInput } from "../lib/io/input.ts";

const HAVE = await haveQemu();
const HAVE_VMA = await havePveVma();
const UUID = "5a1e0c3d-2b4f-4e6a-8c7d-9e0f1a2b3c4d";

async function header(path: string) {
  const reader = await VmaReader.open(
    await openArchiveInput(path, new ReadableStream()),
  );
  await reader.close();
  return reader.header;
}

/** Proxmox's `vma extract` of an archive (via `zstd -d` for .zst) equals the truth files. */
async function assertProxmoxExtracts(
  archive: string,
  out: string,
  truth: Record<string, string>,
): Promise<void> {
  const r = archive.endsWith(".zst")
    ? await sh(`zstd -q -d -c ${archive} | ${PVE_VMA} extract -v - ${out}`)
    : await sh(
      `${PVE_VMA} verify -v ${archive} && ${PVE_VMA} extract -v ${archive} ${out}`,
    );
  assert.equal(r.code, 0, r.stderr + r.text);
  for (const [dev, file] of Object.entries(truth)) {
    const cmp = await run("cmp", [file, `${out}/disk-${dev}.raw`]);
    assert.equal(cmp.code, 0, `${dev}: ${cmp.text}${cmp.stderr}`);
  }
}

Deno.test({
  name:
    "backup -o DIR/ --vmid --storage --notes (SeaBIOS, i440fx, virtio-blk, one NIC): vzdump names, config line by line, Proxmox's vma extracts it",
  ignore: !HAVE || !HAVE_VMA,
  async fn() {
    const vm = await TestVm.start({
      disks: [
        { format: "raw", size: 4 * MiB, fill: ["write -P 0x41 0 1M"] },
        { format: "qcow2", size: 8 * MiB, fill: ["write -P 0x42 4M 2M"] },
      ],
      extraArgs: [
        "-machine",
        "pc",
        "-name",
        "vm-a",
        "-uuid",
        UUID,
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:ab:cd:01,bootindex=5",
      ],
    });
    try {
      const truth = await vm.snapshotDisks("t");
      const out = `${vm.dir}/dump`;
      await Deno.mkdir(out);
      const r = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${out}/`,
        "--vmid",
        "120",
        "--storage",
        "local-lvm",
        "--notes",
        "web server\nsecond line",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
      assert.equal(files.length, 3, files.join(" "));
      const [log, archive, notes] = files as [string, string, string];
      const m = VZDUMP_NAME_RE.exec(archive);
      assert.ok(m, archive);
      assert.equal(m[2], "120", archive);
      assert.equal(log, `${m[1]}.log`, "log name");
      assert.equal(notes, `${archive}.notes`, "notes name");
      assert.equal(
        await Deno.readTextFile(`${out}/${notes}`),
        "web server\nsecond line",
      );
      assert.match(
        await Deno.readTextFile(`${out}/${log}`),
        /^INFO: backup: done, /m,
      );
      const conf = await vmabak(["config", `${out}/${archive}`]);
      assert.equal(
        conf.text,
        [
          "boot: order=virtio0;net0",
          "cores: 1",
          "cpu: qemu64",
          "machine: pc-i440fx-7.2",
          "memory: 64",
          "name: vm-a",
          "net0: virtio=52:54:00:AB:CD:01,bridge=vmbr0",
          `smbios1: uuid=${UUID}`,
          "sockets: 1",
          "virtio0: local-lvm:vm-120-disk-0,size=4M",
          "virtio1: local-lvm:vm-120-disk-1,size=8M",
          "#qmdump#map:virtio0:drive-virtio0:local-lvm:raw:",
          "#qmdump#map:virtio1:drive-virtio1:local-lvm:raw:",
          "",
        ].join("\n"),
      );
      const h = await header(`${out}/${archive}`);
      assert.deepEqual(h.configs.map((c) => c.name), [
        "vmabak.json",
        "qemu-server.conf",
      ]);
      checkPveArchive(h.configs[1]!.data, h.devices);
      await assertProxmoxExtracts(`${out}/${archive}`, `${vm.dir}/x1`, {
        "drive-virtio0": truth[0]!,
        "drive-virtio1": truth[1]!,
      });
      // The same VM as .vma.zst: Proxmox's pipeline (zstd -d | vma extract -).
      const z = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "--zstd",
        "-o",
        `${vm.dir}/zdump/`,
        "--vmid",
        "121",
      ]).catch((e) => e);
      assert.equal(z.code, 1, "the directory must exist");
      await Deno.mkdir(`${vm.dir}/zdump`);
      const z2 = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "--zstd",
        "-o",
        `${vm.dir}/zdump/`,
        "--vmid",
        "121",
      ]);
      assert.equal(z2.code, 0, z2.stderr);
      const zname = [...Deno.readDirSync(`${vm.dir}/zdump`)].map((e) => e.name)
        .find((n) => n.endsWith(".vma.zst"))!;
      assert.match(zname, VZDUMP_NAME_RE);
      await assertProxmoxExtracts(`${vm.dir}/zdump/${zname}`, `${vm.dir}/x2`, {
        "drive-virtio0": truth[0]!,
        "drive-virtio1": truth[1]!,
      });
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup of a q35 OVMF VM (efidisk, virtio-scsi per disk, AHCI, IDE port, CD-ROM, two NICs): config line by line; Proxmox's vma extracts it",
  ignore: !HAVE || !HAVE_VMA,
  async fn() {
    await withTempDir(async (dir) => {
      const setup = await sh(
        `set -e; cd ${dir}; cp /usr/share/OVMF/OVMF_VARS_4M.fd vars.fd
         for f in s0 s1 sa hd; do truncate -s 2M $f.raw; done
         printf 'scsi0' | dd of=s0.raw bs=1 seek=4096 conv=notrunc status=none
         printf 'sata' | dd of=sa.raw bs=1 seek=70000 conv=notrunc status=none`,
      );
      assert.equal(setup.code, 0, setup.stderr);
      const dev = (id: string, file: string, device: string) => [
        "-blockdev",
        `driver=file,filename=${dir}/${file}.raw,node-name=f-${id}`,
        "-blockdev",
        `driver=raw,file=f-${id},node-name=${id}`,
        "-device",
        device,
      ];
      const vm = await TestVm.start({
        disks: [],
        paused: true,
        extraArgs: [
          "-smp",
          "4,sockets=2,cores=1,threads=2",
          "-drive",
          "if=pflash,unit=0,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
          "-drive",
          `if=pflash,unit=1,format=raw,file=${dir}/vars.fd`,
          "-device",
          "virtio-scsi-pci,id=vs0",
          "-device",
          "virtio-scsi-pci,id=vs1",
          ...dev("ns0", "s0", "scsi-hd,drive=ns0,bus=vs0.0,id=sd0,bootindex=1"),
          ...dev("ns1", "s1", "scsi-hd,drive=ns1,bus=vs1.0,id=sd1"),
          "-device",
          "ahci,id=ahci0",
          ...dev("nsa", "sa", "ide-hd,drive=nsa,bus=ahci0.0,id=sata0"),
          ...dev("nhd", "hd", "ide-hd,drive=nhd,bus=ide.2,id=hd0"),
          "-device",
          "ide-cd,bus=ide.1,id=cd0",
          "-netdev",
          "user,id=n0",
          "-device",
          "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0a",
          "-netdev",
          "user,id=n1",
          "-device",
          "e1000,netdev=n1,mac=52:54:00:00:00:0b,bootindex=2",
        ],
      });
      try {
        const archive = `${dir}/ovmf.vma`;
        const r = await vmabak(["backup", "--qmp", vm.qmpPath, "-o", archive]);
        assert.equal(r.code, 0, r.stderr);
        const conf = await vmabak(["config", archive]);
        assert.equal(
          conf.text,
          [
            "bios: ovmf",
            "boot: order=scsi0;net1",
            "cores: 2",
            "cpu: qemu64",
            "efidisk0: local:vm-100-disk-0,efitype=4m,size=528K",
            "ide1: local:vm-100-disk-4,size=2M",
            "ide2: none,media=cdrom",
            "machine: pc-q35-7.2",
            "memory: 64",
            "net0: virtio=52:54:00:00:00:0A,bridge=vmbr0",
            "net1: e1000=52:54:00:00:00:0B,bridge=vmbr0",
            "sata0: local:vm-100-disk-3,size=2M",
            "scsi0: local:vm-100-disk-1,size=2M",
            "scsi1: local:vm-100-disk-2,size=2M",
            "scsihw: virtio-scsi-single",
            "sockets: 2",
            "#qmdump#map:efidisk0:drive-efidisk0::raw:",
            "#qmdump#map:scsi0:drive-scsi0::raw:",
            "#qmdump#map:scsi1:drive-scsi1::raw:",
            "#qmdump#map:sata0:drive-sata0::raw:",
            "#qmdump#map:ide1:drive-ide1::raw:",
            "",
          ].join("\n"),
        );
        await assertProxmoxExtracts(archive, `${dir}/x`, {
          "drive-efidisk0": `${dir}/vars.fd`,
          "drive-scsi0": `${dir}/s0.raw`,
          "drive-scsi1": `${dir}/s1.raw`,
          "drive-sata0": `${dir}/sa.raw`,
          "drive-ide1": `${dir}/hd.raw`,
        });
      } finally {
        await vm.destroy();
      }
    });
  },
});

Deno.test({
  name:
    "backup -c qemu-server.conf: the user's config is stored as given, or refused when its map lines do not match the disks",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 4 * MiB }],
    });
    try {
      const conf = `${vm.dir}/qemu-server.conf`;
      await Deno.writeTextFile(
        conf,
        "memory: 64\nscsi0: local:vm-7-disk-0\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n",
      );
      const bad = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-c",
        conf,
        "-o",
        `${vm.dir}/bad.vma`,
      ]);
      assert.equal(bad.code, 1);
      assert.equal(
        oneLine(bad.stderr),
        'vmabak backup: Cannot use qemu-server.conf: device drive0 has no map line (Proxmox: "found no device mapping information")',
      );
      await assert.rejects(Deno.stat(`${vm.dir}/bad.vma`));
      await assert.rejects(Deno.stat(`${vm.dir}/bad.vma.partial`));
      const good =
        "memory: 64\nscsi0: local:vm-7-disk-0\n#qmdump#map:scsi0:drive0:local:raw:\n";
      await Deno.writeTextFile(conf, good);
      const ok = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-c",
        conf,
        "--vmstate",
        "-o",
        `${vm.dir}/ok.vma`,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stderr, /Proxmox's restore ignores the RAM state/);
      const h = await header(`${vm.dir}/ok.vma`);
      assert.deepEqual(h.configs.map((c) => c.name), [
        "vmabak.json",
        "qemu-server.conf",
      ]);
      assert.equal(new TextDecoder().decode(h.configs[1]!.data), good);
      assert.deepEqual(h.devices.map((d) => d.name), ["drive0", "vmstate"]);
      // A user config mapping drive-<virtdev> gets devices named so.
      const pveStyle =
        "memory: 64\nvirtio0: local:vm-7-disk-0\n#qmdump#map:virtio0:drive-virtio0:local:raw:\n";
      await Deno.writeTextFile(conf, pveStyle);
      const ok2 = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-c",
        conf,
        "-o",
        `${vm.dir}/ok2.vma`,
      ]);
      assert.equal(ok2.code, 0, ok2.stderr);
      const h2 = await header(`${vm.dir}/ok2.vma`);
      assert.deepEqual(h2.devices.map((d) => d.name), ["drive-virtio0"]);
      checkPveArchive(h2.configs[1]!.data, h2.devices);
      const usage = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/`,
      ]);
      assert.equal(usage.code, 2);
      assert.match(oneLine(usage.stderr), /give --vmid N/);
      const storage = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "--storage",
        "Bad Id",
        "-o",
        `${vm.dir}/s.vma`,
      ]);
      assert.equal(storage.code, 2);
    } finally {
      await vm.destroy();
    }
  },
});

for (
  const [mode, ext] of [["pull", ".vma"], ["push", ".vma.zst"]] as const
) {
  Deno.test({
    name:
      `live backup (--mode ${mode}, ${ext}) while the guest writes: Proxmox's vma verify and extract give the disks at backup start`,
    ignore: !HAVE || !HAVE_VMA,
    async fn() {
      const vm = await TestVm.start({ disks: twoDisks() });
      try {
        const truth = await vm.snapshotDisks("start");
        const archive = `${vm.dir}/live${ext}`;
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            MAIN,
            "backup",
            "--mode",
            mode,
            "--qmp",
            vm.qmpPath,
            "--speed",
            "8M",
            "-o",
            archive,
          ],
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const err = watchStderr(child.stderr);
        await err.started;
        // Into clusters not copied yet: the old data must reach the archive.
        await vm.guestWrite(0, 0x55, 36 * MiB, MiB);
        await vm.guestWrite(1, 0x66, 22 * MiB, 64 * 1024);
        const status = await child.status;
        const stderr = await err.text;
        assert.equal(status.code, 0, stderr);
        const now = await vm.snapshotDisks("after");
        assert.notEqual(
          (await run("cmp", ["-s", truth[0]!, now[0]!])).code,
          0,
          "the guest's writes changed disk 0",
        );
        await assertProxmoxExtracts(archive, `${vm.dir}/x`, {
          "drive-virtio0": truth[0]!,
          "drive-virtio1": truth[1]!,
        });
        const v = ext === ".vma"
          ? await run(PVE_VMA, ["verify", "-v", archive])
          : await sh(`zstd -q -d -c ${archive} | ${PVE_VMA} verify -v -`);
        assert.equal(v.code, 0, v.stderr);
      } finally {
        await vm.destroy();
      }
    },
  });
}

Deno.test({
  name:
    "live backup of a VM with virtio-blk and virtio-scsi disks: Proxmox's vma list shows drive-virtio0 and drive-scsi0, the map lines name them, vmabak.json keeps their QEMU nodes",
  ignore: !HAVE || !HAVE_VMA,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "qcow2", size: 4 * MiB, fill: ["write -P 0x5a 0 1M"] }],
      extraArgs: [
        "-device",
        "virtio-scsi-pci,id=vs0",
        "-blockdev",
        "driver=null-co,size=2097152,read-zeroes=on,node-name=nscsi",
        "-device",
        "scsi-hd,drive=nscsi,bus=vs0.0,id=sd0",
      ],
    });
    try {
      const archive = `${vm.dir}/live.vma`;
      const r = await vmabak(["backup", "--qmp", vm.qmpPath, "-o", archive]);
      assert.equal(r.code, 0, r.stderr);
      const list = await run(PVE_VMA, ["list", archive]);
      assert.equal(list.code, 0, list.stderr);
      const devs = list.text.split("\n").filter((l) => l.startsWith("DEV:"));
      assert.deepEqual(devs, [
        `DEV: dev_id=1 size: ${4 * MiB} devname: drive-virtio0`,
        "DEV: dev_id=2 size: 2097152 devname: drive-scsi0",
      ]);
      const conf = await run(PVE_VMA, ["config", archive]);
      assert.equal(conf.code, 0, conf.stderr);
      const maps = conf.text.split("\n").filter((l) => l.startsWith("#qmdump"));
      assert.deepEqual(maps, [
        "#qmdump#map:virtio0:drive-virtio0::raw:",
        "#qmdump#map:scsi0:drive-scsi0::raw:",
      ]);
      const h = await header(archive);
      checkPveArchive(h.configs[1]!.data, h.devices);
      const json = JSON.parse(new TextDecoder().decode(h.configs[0]!.data));
      assert.deepEqual(
        json.disks.map((
          d: { name: string; node: string; deviceId: string },
        ) => [d.name, d.node, d.deviceId]),
        [["drive-virtio0", "drive0", "vd0"], ["drive-scsi0", "nscsi", "sd0"]],
      );
      const truth = await vm.snapshotDisks("t");
      const x = await sh(
        `${PVE_VMA} extract ${archive} ${vm.dir}/x && cmp ${
          truth[0]
        } ${vm.dir}/x/disk-drive-virtio0.raw && cmp -n 2097152 /dev/zero ${vm.dir}/x/disk-drive-scsi0.raw`,
      );
      assert.equal(x.code, 0, x.stderr + x.text);
    } finally {
      await vm.destroy();
    }
  },
});
