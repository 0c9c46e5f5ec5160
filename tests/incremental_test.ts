/**
 * Live incremental backups against real QEMU (guest writes through the
 * virtio device): chains restore each instant byte for byte on raw and
 * qcow2 disks, merge equals a full backup and Proxmox's vma accepts it,
 * failed incrementals lose nothing, persistent bitmaps survive a clean
 * restart of QEMU, raw ones are refused afterwards (or --or-full).
 */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { havePveVma, oneLine, PVE_VMA, run, vmabak } from "./helpers/run.ts";
import {
  assertArchiveEquals,
  assertChainEquals,
  assertVmClean,
  MiB,
  spawnSlowBackup,
} from "./helpers/backup_checks.ts";

const HAVE = await haveQemu();
const HAVE_PVE = await havePveVma();
const KiB = 1024;

function disks() {
  return [
    {
      format: "raw" as const,
      size: 12 * MiB + 512,
      fill: ["write -P 0x11 0 2M", "write -P 0x12 9M 1M"],
    },
    {
      format: "qcow2" as const,
      size: 8 * MiB,
      fill: ["write -P 0x21 0 1M"],
    },
  ];
}

/**
 * The disks now: `stop` flushes QEMU's caches (qcow2 metadata included) so
 * that `qemu-img convert -U` reads what the guest sees.
 */
async function truthNow(vm: TestVm, suffix: string): Promise<string[]> {
  await vm.monitor.execute("stop");
  try {
    return await vm.snapshotDisks(suffix);
  } finally {
    await vm.monitor.execute("cont");
  }
}

async function backup(vm: TestVm, out: string, ...extra: string[]) {
  return await vmabak(["backup", "--qmp", vm.qmpPath, "-o", out, ...extra]);
}

async function mustBackup(vm: TestVm, out: string, ...extra: string[]) {
  const r = await backup(vm, out, ...extra);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

async function info(archive: string) {
  const r = await vmabak(["list", "--json", archive]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.text) as {
    uuid: string;
    incremental: { index: number; base: string; full: string } | null;
    devices: { name: string; changedClusters?: number }[];
  };
}

async function changed(archive: string): Promise<number[]> {
  return (await info(archive)).devices.map((d) => d.changedClusters ?? -1);
}

/** vmabak's bitmaps as "node name", sorted. */
async function bitmaps(vm: TestVm): Promise<string[]> {
  const nodes = await vm.monitor.execute<
    { "node-name": string; "dirty-bitmaps"?: { name?: string }[] }[]
  >("query-named-block-nodes");
  const out = new Set<string>();
  for (const n of nodes) {
    for (const b of n["dirty-bitmaps"] ?? []) {
      if (b.name?.startsWith("vmabak-")) out.add(`${n["node-name"]} ${b.name}`);
    }
  }
  return [...out].sort();
}

function tracking(vm: TestVm, uuid: string, disks = vm.disks.length) {
  return vm.disks.slice(0, disks).map((d) => `${d.node} vmabak-${uuid}`)
    .sort();
}

Deno.test({
  name:
    "a full and three incrementals restore each instant of a raw and a qcow2 disk; merge equals a full backup and Proxmox's vma accepts it",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: disks() });
    const names = ["drive-virtio0", "drive-virtio1"];
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      const truth = [await truthNow(vm, "0")];
      await mustBackup(vm, a("full.vma"));
      const u0 = (await info(a("full.vma"))).uuid;
      assert.deepEqual(await bitmaps(vm), tracking(vm, u0));

      await vm.guestWrite(0, 0x31, 1 * MiB, 64 * KiB); // cluster 16
      await vm.guestWrite(0, 0x32, 5 * MiB + 4096, 8192); // cluster 80
      await vm.guestWrite(1, 0x41, 2 * MiB, 128 * KiB); // clusters 32, 33
      truth.push(await truthNow(vm, "1"));
      await mustBackup(vm, a("inc1.vma"), "--since", a("full.vma"));
      const i1 = await info(a("inc1.vma"));
      assert.deepEqual(i1.incremental, { index: 1, base: u0, full: u0 });
      assert.deepEqual(await changed(a("inc1.vma")), [2, 2]);
      assert.deepEqual(await bitmaps(vm), tracking(vm, i1.uuid));

      await vm.guestWrite(0, 0x33, 1 * MiB, 4096); // cluster 16 again
      await vm.guestWrite(0, 0x34, 10 * MiB, MiB); // clusters 160..175
      await vm.guestWrite(1, 0x42, 7 * MiB, 64 * KiB); // cluster 112
      truth.push(await truthNow(vm, "2"));
      await mustBackup(vm, a("inc2.vma"), "--since", a("inc1.vma"));
      assert.deepEqual(await changed(a("inc2.vma")), [17, 1]);

      // No writes: an incremental that holds no cluster.
      truth.push(truth[2]!);
      await mustBackup(vm, a("inc3.vma"), "--since", a("inc2.vma"));
      assert.deepEqual(await changed(a("inc3.vma")), [0, 0]);
      assert.equal((await info(a("inc3.vma"))).incremental?.index, 3);

      const chain = ["full.vma", "inc1.vma", "inc2.vma", "inc3.vma"].map(a);
      for (let n = 1; n <= 3; n++) {
        const v = await vmabak(["verify", chain[n]!]);
        assert.equal(v.code, 0, v.stderr);
        await assertChainEquals(chain.slice(0, n + 1), truth[n]!, names);
      }
      await assertArchiveEquals(a("full.vma"), truth[0]!, names);

      const m = await vmabak(["merge", ...chain, "-o", a("m.vma")]);
      assert.equal(m.code, 0, m.stderr);
      await assertArchiveEquals(a("m.vma"), truth[3]!, names);
      // A full backup at the same instant holds the same disks.
      await mustBackup(vm, a("full2.vma"), "--no-track");
      for (const x of ["m.vma", "full2.vma"]) {
        assert.equal((await vmabak(["extract", a(x), a(`${x}.d`)])).code, 0);
      }
      for (const n of names) {
        const r = await run("cmp", [
          a(`m.vma.d/disk-${n}.raw`),
          a(`full2.vma.d/disk-${n}.raw`),
        ]);
        assert.equal(r.code, 0, r.text);
      }
      if (HAVE_PVE) {
        const v = await run(PVE_VMA, ["verify", a("m.vma")]);
        assert.equal(v.code, 0, v.stderr);
        const x = await run(PVE_VMA, ["extract", a("m.vma"), a("pve")]);
        assert.equal(x.code, 0, x.stderr);
        for (const [i, n] of names.entries()) {
          const r = await run("cmp", [truth[3]![i]!, a(`pve/disk-${n}.raw`)]);
          assert.equal(r.code, 0, r.text);
        }
      }
      // --no-track left no bitmap; inc3's carries on.
      const i3 = await info(a("inc3.vma"));
      assert.deepEqual(await bitmaps(vm), tracking(vm, i3.uuid));
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "a failed incremental (SIGTERM, and SIGKILL then cleanup) loses no change: the next one carries all since the last good archive",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 24 * MiB }, {
        format: "qcow2",
        size: 8 * MiB,
      }],
    });
    const names = ["drive-virtio0", "drive-virtio1"];
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      await mustBackup(vm, a("full.vma"));
      const u0 = (await info(a("full.vma"))).uuid;

      // SIGTERM while the incremental trickles out at 1 MB/s.
      await vm.guestWrite(0, 0x51, 0, 8 * MiB); // clusters 0..127
      const term = spawnSlowBackup(
        ["backup", "--qmp", vm.qmpPath, "--since", a("full.vma")],
        1_000_000,
        "-",
      );
      await new Promise((r) => setTimeout(r, 2500));
      term.child.kill("SIGTERM");
      const t = await term.done;
      assert.equal(t.code, 1, t.stderr);
      assert.deepEqual(await bitmaps(vm), tracking(vm, u0));
      await vm.guestWrite(1, 0x52, MiB, 64 * KiB); // cluster 16
      const truth1 = await truthNow(vm, "1");
      await mustBackup(vm, a("inc1.vma"), "--since", a("full.vma"));
      assert.deepEqual(await changed(a("inc1.vma")), [128, 1]);
      await assertChainEquals([a("full.vma"), a("inc1.vma")], truth1, names);
      const u1 = (await info(a("inc1.vma"))).uuid;

      // SIGKILL: the run's frozen and new bitmaps stay until a cleanup.
      await vm.guestWrite(0, 0x53, 16 * MiB, 8 * MiB); // clusters 256..383
      const kill = spawnSlowBackup(
        ["backup", "--qmp", vm.qmpPath, "--since", a("inc1.vma")],
        1_000_000,
        "-",
      );
      await new Promise((r) => setTimeout(r, 2500));
      kill.child.kill("SIGKILL");
      await kill.done;
      assert.ok((await bitmaps(vm)).length > 2, "the killed run left bitmaps");
      const c = await vmabak(["cleanup", "--qmp", vm.qmpPath]);
      assert.equal(c.code, 0, c.stderr);
      assert.deepEqual(await bitmaps(vm), tracking(vm, u1));
      await vm.guestWrite(1, 0x54, 2 * MiB, 4096); // cluster 32
      const truth2 = await truthNow(vm, "2");
      await mustBackup(vm, a("inc2.vma"), "--since", a("inc1.vma"));
      assert.deepEqual(await changed(a("inc2.vma")), [128, 1]);
      await assertChainEquals(
        [a("full.vma"), a("inc1.vma"), a("inc2.vma")],
        truth2,
        names,
      );
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "QEMU restarted cleanly: a qcow2 disk's persistent bitmap carries on (after a crash it is refused); a raw disk's is gone, refused unless --or-full",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "qcow2", size: 8 * MiB, fill: ["write -P 1 0 1M"] }],
    });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      await mustBackup(vm, a("full.vma"));
      await vm.guestWrite(0, 0x61, 3 * MiB, 64 * KiB);
      await vm.restart();
      await vm.guestWrite(0, 0x62, 5 * MiB, 64 * KiB);
      const truth = await truthNow(vm, "1");
      await mustBackup(vm, a("inc1.vma"), "--since", a("full.vma"));
      assert.deepEqual(await changed(a("inc1.vma")), [2]);
      await assertChainEquals([a("full.vma"), a("inc1.vma")], truth, [
        "drive-virtio0",
      ]);
      // Stored by a clean restart, then QEMU killed: the bitmap it had
      // loaded is inconsistent, and refused.
      await vm.restart();
      vm.kill();
      await vm.restart();
      const crashed = await backup(vm, a("inc2.vma"), "--since", a("inc1.vma"));
      assert.equal(crashed.code, 1);
      assert.match(
        oneLine(crashed.stderr),
        /since .*inc1\.vma: bitmap vmabak-\S+ of disk drive-virtio0 is inconsistent.*take a full backup/,
      );
      await mustBackup(
        vm,
        a("inc2.vma"),
        "--since",
        a("inc1.vma"),
        "--or-full",
      );
      assert.equal((await info(a("inc2.vma"))).incremental, null);
    } finally {
      await vm.destroy();
    }

    const raw = await TestVm.start({
      disks: [{ format: "raw", size: 8 * MiB, fill: ["write -P 2 0 1M"] }],
    });
    try {
      const a = (n: string) => `${raw.dir}/${n}`;
      await mustBackup(raw, a("full.vma"));
      await raw.guestWrite(0, 0x71, 3 * MiB, 64 * KiB);
      await raw.restart();
      const r = await backup(raw, a("inc1.vma"), "--since", a("full.vma"));
      assert.equal(r.code, 1);
      assert.match(
        oneLine(r.stderr),
        /Cannot back up incrementally since .*full\.vma: disk drive-virtio0 has no bitmap vmabak-.*take a full backup.*--or-full/,
      );
      assert.ok(
        ![...Deno.readDirSync(raw.dir)].some((e) => e.name.startsWith("inc1")),
      );
      const truth = await truthNow(raw, "1");
      const f = await mustBackup(
        raw,
        a("inc1.vma"),
        "--since",
        a("full.vma"),
        "--or-full",
      );
      assert.match(f.stderr, /full backup instead/);
      assert.equal((await info(a("inc1.vma"))).incremental, null);
      await assertArchiveEquals(a("inc1.vma"), truth, ["drive-virtio0"]);
      const u = (await info(a("inc1.vma"))).uuid;
      assert.deepEqual(await bitmaps(raw), tracking(raw, u));
    } finally {
      await raw.destroy();
    }
  },
});

Deno.test({
  name:
    "guest writes during an incremental (to changed clusters not read yet and to clean ones) stay out of it and go into the next",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 32 * MiB, fill: ["write -P 3 0 32M"] }],
    });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      await mustBackup(vm, a("full.vma"));
      await vm.guestWrite(0, 0x81, 0, 8 * MiB); // clusters 0..127
      const truth1 = await truthNow(vm, "1");
      const b = spawnSlowBackup(
        ["backup", "--qmp", vm.qmpPath, "--since", a("full.vma")],
        2_000_000,
        a("inc1.vma"),
      );
      await b.started;
      await vm.guestWrite(0, 0x82, 8 * MiB - 64 * KiB, 64 * KiB); // changed, read last
      await vm.guestWrite(0, 0x83, 20 * MiB, 64 * KiB); // clean, trimmed
      const r = await b.done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await changed(a("inc1.vma")), [128]);
      await assertChainEquals([a("full.vma"), a("inc1.vma")], truth1, [
        "drive-virtio0",
      ]);
      const truth2 = await truthNow(vm, "2");
      await mustBackup(vm, a("inc2.vma"), "--since", a("inc1.vma"));
      assert.deepEqual(await changed(a("inc2.vma")), [2]);
      await assertChainEquals(
        [a("full.vma"), a("inc1.vma"), a("inc2.vma")],
        truth2,
        ["drive-virtio0"],
      );
      // --speed paces the changed data too: 4 MiB at 2 MiB/s take >= 1.5 s.
      await vm.guestWrite(0, 0x84, 12 * MiB, 4 * MiB);
      const t0 = performance.now();
      await mustBackup(
        vm,
        a("inc3.vma"),
        "--since",
        a("inc2.vma"),
        "--speed",
        "2M",
      );
      assert.ok(performance.now() - t0 >= 1500, "--speed slowed the read");
      assert.deepEqual(await changed(a("inc3.vma")), [64]);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "an incremental with --vmstate: merge carries its RAM state, the chain's extract and the merged archive's agree",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 8 * MiB, fill: ["write -P 5 0 1M"] }],
    });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      await mustBackup(vm, a("full.vma"));
      await vm.guestWrite(0, 0x91, 2 * MiB, 64 * KiB);
      await mustBackup(
        vm,
        a("inc1.vma"),
        "--since",
        a("full.vma"),
        "--vmstate",
      );
      assert.deepEqual(await changed(a("inc1.vma")), [1, -1]);
      const m = await vmabak([
        "merge",
        a("full.vma"),
        a("inc1.vma"),
        "-o",
        a("m.vma"),
      ]);
      assert.equal(m.code, 0, m.stderr);
      const x1 = await vmabak([
        "extract",
        a("inc1.vma"),
        "--base",
        a("full.vma"),
        a("c"),
      ]);
      assert.equal(x1.code, 0, x1.stderr);
      const x2 = await vmabak(["extract", a("m.vma"), a("m")]);
      assert.equal(x2.code, 0, x2.stderr);
      for (const f of ["vmstate.bin", "disk-drive-virtio0.raw"]) {
        const r = await run("cmp", [a(`c/${f}`), a(`m/${f}`)]);
        assert.equal(r.code, 0, `${f}: ${r.text}`);
      }
      assert.ok((await Deno.stat(a("m/vmstate.bin"))).size > 64 * KiB);
      if (HAVE_PVE) {
        const v = await run(PVE_VMA, ["verify", a("m.vma")]);
        assert.equal(v.code, 0, v.stderr);
      }
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "a push-mode full leaves tracking bitmaps too, added in the jobs' own transaction without stopping the guest (two disks); --since it works, --mode push --since is refused",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: disks() });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      const events: string[] = [];
      const off = vm.monitor.onEvent((e) => {
        if (e.event === "STOP" || e.event === "RESUME") events.push(e.event);
      });
      const f = await mustBackup(vm, a("full.vma"), "--mode", "push");
      // Let QEMU's events of the run reach the test's monitor.
      await vm.monitor.execute("query-status");
      off();
      assert.deepEqual(events, [], "the guest was stopped");
      assert.doesNotMatch(f.stderr, /guest paused/);
      const u0 = (await info(a("full.vma"))).uuid;
      assert.deepEqual(await bitmaps(vm), tracking(vm, u0));
      await vm.guestWrite(0, 0xa1, 6 * MiB, 64 * KiB);
      await vm.guestWrite(1, 0xa2, 1 * MiB, 128 * KiB);
      const truth = await truthNow(vm, "1");
      const p = await backup(
        vm,
        a("x.vma"),
        "--mode",
        "push",
        "--since",
        a("full.vma"),
      );
      assert.equal(p.code, 1);
      assert.match(oneLine(p.stderr), /--mode push.*--mode pull/);
      await mustBackup(vm, a("inc1.vma"), "--since", a("full.vma"));
      assert.deepEqual(await changed(a("inc1.vma")), [1, 2]);
      await assertChainEquals([a("full.vma"), a("inc1.vma")], truth, [
        "drive-virtio0",
        "drive-virtio1",
      ]);
      // A new full starts another chain; the old one's bitmap is named.
      const f2 = await mustBackup(vm, a("full2.vma"));
      assert.match(f2.stderr, /track changes since 1 other archive.*cleanup/);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "a disk resized since PREV is refused with one line; --or-full takes a full",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 8 * MiB }],
    });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      await mustBackup(vm, a("full.vma"));
      await vm.monitor.execute("block_resize", {
        "node-name": vm.disks[0]!.node,
        size: 16 * MiB,
      });
      const r = await backup(vm, a("inc1.vma"), "--since", a("full.vma"));
      assert.equal(r.code, 1);
      assert.match(
        oneLine(r.stderr),
        /disk drive-virtio0 has 16777216 bytes now, 8388608 then \(resized\); take a full backup/,
      );
      await mustBackup(
        vm,
        a("inc1.vma"),
        "--since",
        a("full.vma"),
        "--or-full",
      );
      const i = await info(a("inc1.vma"));
      assert.equal(i.incremental, null);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "--since - reads PREV's header from standard input (a zstd one too); a base without bitmaps is refused naming standard input",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: disks() });
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      const names = ["drive-virtio0", "drive-virtio1"];
      await mustBackup(vm, a("full.vma.zst"));
      await vm.guestWrite(0, 0xb1, 3 * MiB, 64 * KiB);
      await vm.guestWrite(1, 0xb2, 5 * MiB, 64 * KiB);
      const truth = await truthNow(vm, "1");
      const r = await vmabak(
        ["backup", "--qmp", vm.qmpPath, "--since", "-", "-o", a("inc1.vma")],
        { stdin: await Deno.readFile(a("full.vma.zst")) },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /incremental since the archive on standard input/);
      assert.deepEqual(await changed(a("inc1.vma")), [1, 1]);
      await assertChainEquals([a("full.vma.zst"), a("inc1.vma")], truth, names);

      // An archive whose disks carry no bitmap of it: refused, nothing written.
      await mustBackup(vm, a("untracked.vma"), "--no-track");
      const before = await bitmaps(vm);
      const bad = await vmabak(
        ["backup", "--qmp", vm.qmpPath, "--since", "-", "-o", a("x.vma")],
        { stdin: await Deno.readFile(a("untracked.vma")) },
      );
      assert.equal(bad.code, 1);
      assert.match(
        oneLine(bad.stderr),
        /^vmabak backup: Cannot back up incrementally since the archive on standard input: disk drive-virtio0 has no bitmap .*take a full backup/,
      );
      await assert.rejects(Deno.stat(a("x.vma")));
      assert.deepEqual(await bitmaps(vm), before);
      // Not an archive: one line, exit 1.
      const junk = await vmabak(
        ["backup", "--qmp", vm.qmpPath, "--since", "-", "-o", a("y.vma")],
        { stdin: new TextEncoder().encode("not an archive\n") },
      );
      assert.equal(junk.code, 1);
      assert.equal(junk.stderr.trim().split("\n").length, 1, junk.stderr);
      assert.match(junk.stderr, /^vmabak backup: Cannot /);
      await assert.rejects(Deno.stat(a("y.vma")));
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});
