/**
 * Device names across a chain: an incremental keeps the names of its base,
 * also when the base was written with QEMU names (before drive-<virtdev>,
 * or with a user config mapping them), and its stored qemu-server.conf maps
 * those names so that Proxmox's restore still finds every device.
 */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { assertChainEquals, MiB } from "./helpers/backup_checks.ts";
import {
  assertSameRaw,
  havePveVma,
  oneLine,
  PVE_VMA,
  qemuImg,
  run,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";
import { checkPveArchive } from "../lib/proxmox/check.ts";
import { VmaReader } from "../lib/vma/reader.ts";
import { openArchiveInput } from "../lib/io/input.ts";

const HAVE = await haveQemu();
const HAVE_PVE = await havePveVma();

async function header(path: string) {
  const reader = await VmaReader.open(
    await openArchiveInput(path, new ReadableStream()),
  );
  await reader.close();
  return reader.header;
}

async function truthNow(vm: TestVm, suffix: string): Promise<string[]> {
  await vm.monitor.execute("stop");
  try {
    return await vm.snapshotDisks(suffix);
  } finally {
    await vm.monitor.execute("cont");
  }
}

async function mustBackup(vm: TestVm, out: string, ...extra: string[]) {
  const r = await vmabak(["backup", "--qmp", vm.qmpPath, "-o", out, ...extra]);
  assert.equal(r.code, 0, r.stderr);
}

/** Device names and map lines' device names of an archive; checks Proxmox's rules. */
async function names(archive: string) {
  const h = await header(archive);
  const conf = h.configs.find((c) => c.name === "qemu-server.conf")!;
  checkPveArchive(conf.data, h.devices);
  const maps = new TextDecoder().decode(conf.data).split("\n")
    .filter((l) => l.startsWith("#qmdump#map:")).map((l) => l.split(":")[2]);
  return { devices: h.devices.map((d) => d.name), maps };
}

Deno.test({
  name:
    "an incremental keeps its base's device names: QEMU names after a base that had them, drive-<virtdev> after one that had those",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [
        { format: "qcow2", size: 4 * MiB, fill: ["write -P 0x21 0 1M"] },
        { format: "qcow2", size: 2 * MiB },
      ],
    });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      // A base with QEMU names: a user config mapping them.
      const conf = a("qemu-server.conf");
      await Deno.writeTextFile(
        conf,
        "virtio0: local:vm-1-disk-0\nvirtio1: local:vm-1-disk-1\n#qmdump#map:virtio0:drive0::raw:\n#qmdump#map:virtio1:drive1::raw:\n",
      );
      await mustBackup(vm, a("old.vma"), "-c", conf);
      assert.deepEqual(await names(a("old.vma")), {
        devices: ["drive0", "drive1"],
        maps: ["drive0", "drive1"],
      });
      await vm.guestWrite(0, 0x22, 2 * MiB, 64 * 1024);
      await vm.guestWrite(1, 0x23, 0, 64 * 1024);
      const t1 = await truthNow(vm, "1");
      // Generated config, names of the base.
      await mustBackup(vm, a("old1.vma"), "--since", a("old.vma"));
      assert.deepEqual(await names(a("old1.vma")), {
        devices: ["drive0", "drive1"],
        maps: ["drive0", "drive1"],
      });
      await assertChainEquals([a("old.vma"), a("old1.vma")], t1, [
        "drive0",
        "drive1",
      ]);

      // A new chain: drive-<virtdev>, kept by its incrementals.
      await mustBackup(vm, a("new.vma"));
      const fresh = {
        devices: ["drive-virtio0", "drive-virtio1"],
        maps: ["drive-virtio0", "drive-virtio1"],
      };
      assert.deepEqual(await names(a("new.vma")), fresh);
      await vm.guestWrite(0, 0x24, 3 * MiB, 64 * 1024);
      const t2 = await truthNow(vm, "2");
      await mustBackup(vm, a("new1.vma"), "--since", a("new.vma"));
      assert.deepEqual(await names(a("new1.vma")), fresh);
      await assertChainEquals([a("new.vma"), a("new1.vma")], t2, fresh.devices);
    } finally {
      await vm.destroy();
    }
  },
});

/** `vma list`'s device names, in dev_id order. */
async function pveList(archive: string): Promise<string[]> {
  const r = await run(PVE_VMA, ["list", archive]);
  assert.equal(r.code, 0, r.stderr);
  return [...r.text.matchAll(/^DEV: dev_id=\d+ size: \d+ devname: (\S+)$/gm)]
    .map((m) => m[1]!);
}

Deno.test({
  name:
    "backup --drive takes the archive's device names (drive-scsi0, drive-virtio1) beside QEMU names; an unknown one is refused listing every disk's names",
  ignore: !HAVE || !HAVE_PVE,
  async fn() {
    await withTempDir(async (dir) => {
      const scsi = `${dir}/scsi.raw`;
      await qemuImg(["create", "-q", "-f", "raw", scsi, String(2 * MiB)]);
      const w = await run("qemu-io", [
        "-f",
        "raw",
        "-c",
        "write -P 0x33 0 1M",
        scsi,
      ]);
      assert.equal(w.code, 0, w.stderr);
      const vm = await TestVm.start({
        disks: [
          { format: "raw", size: 4 * MiB, fill: ["write -P 0x31 0 1M"] },
          { format: "raw", size: 3 * MiB, fill: ["write -P 0x32 1M 1M"] },
        ],
        extraArgs: [
          "-device",
          "virtio-scsi-pci,id=scsihw0",
          "-blockdev",
          `driver=file,filename=${scsi},node-name=sfile`,
          "-blockdev",
          "driver=raw,file=sfile,node-name=sdisk",
          "-device",
          "scsi-hd,bus=scsihw0.0,drive=sdisk,id=sd0",
        ],
      });
      try {
        const a = (n: string) => `${vm.dir}/${n}`;
        // The names a backup of the whole VM gives, as Proxmox's vma lists them.
        await mustBackup(vm, a("all.vma"));
        assert.deepEqual(
          (await pveList(a("all.vma"))).sort(),
          ["drive-scsi0", "drive-virtio0", "drive-virtio1"],
        );
        // Two of them by those names: keys are numbered among the chosen disks.
        await mustBackup(
          vm,
          a("two.vma"),
          "--drive",
          "drive-scsi0",
          "--drive",
          "drive-virtio1",
        );
        assert.deepEqual(await pveList(a("two.vma")), [
          "drive-scsi0",
          "drive-virtio0",
        ]);
        const x = await run(PVE_VMA, ["extract", a("two.vma"), a("x")]);
        assert.equal(x.code, 0, x.stderr);
        const truth = await vm.snapshotDisks("t");
        await assertSameRaw(a("x/disk-drive-scsi0.raw"), scsi, "scsi0");
        await assertSameRaw(a("x/disk-drive-virtio0.raw"), truth[1]!, "vd1");
        // A QEMU name and an archive name of the same disk: refused.
        const twice = await vmabak([
          "backup",
          "--qmp",
          vm.qmpPath,
          "--drive",
          "vd0",
          "--drive",
          "drive-virtio0",
          "-o",
          a("twice.vma"),
        ]);
        assert.equal(twice.code, 1, twice.stderr);
        assert.match(oneLine(twice.stderr), /already chosen/);
        const bad = await vmabak([
          "backup",
          "--qmp",
          vm.qmpPath,
          "--drive",
          "drive-sata0\x1b[2J",
          "-o",
          a("bad.vma"),
        ]);
        assert.equal(bad.code, 1, bad.stderr);
        assert.equal(
          oneLine(bad.stderr),
          'vmabak backup: Cannot back up drive "drive-sata0\\x1b[2J": the VM has no such disk (valid names: drive-virtio0|drive0|vd0, drive-virtio1|drive1|vd1, drive-scsi0|sdisk|sd0)',
        );
        await assert.rejects(Deno.stat(a("bad.vma")));
      } finally {
        await vm.destroy();
      }
    });
  },
});
