// deno-lint-ignore-file no-console -- tests print what they measured
/** `vmabak backup` in pull mode (the default), against real QEMU 7.2. */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { oneLine, vmabak } from "./helpers/run.ts";
import { CAN_MOUNT, mountTmpfs } from "./helpers/tmpfs.ts";
import { QmpClient } from "../lib/qmp/client.ts";
import { socketInUse } from "../lib/qmp/socket_busy.ts";
import { sleep } from "./helpers/sleep.ts";
import {
  allocated,
  assertArchiveEquals,
  assertVmClean,
  MiB,
  type SlowBackup,
  slowBackupUnderWay,
  twoDisks,
  vmabakFiles,
} from "./helpers/backup_checks.ts";

const HAVE = await haveQemu();

/**
 * Waits (10 s at most) until QEMU has let go of the last client of the QMP
 * socket `path`. QEMU notices a client's hang-up only when its main loop
 * runs; on a starved host that can take over half a second, and until then
 * the socket looks held by another client to whoever connects next.
 */
async function untilReleased(path: string): Promise<void> {
  for (let i = 0; i < 200 && await socketInUse(path); i++) await sleep(50);
}

/** A new empty fleecing directory in the VM's directory. */
async function newFleecingDir(vm: TestVm): Promise<string> {
  const fl = `${vm.dir}/fleece`;
  await Deno.mkdir(fl);
  return fl;
}

/** A pull backup of `vm` through `fleecingDir`, drained at `rate` bytes/s into `out`, its reader under way. */
function pullUnderWay(
  vm: TestVm,
  fleecingDir: string,
  rate: number,
  out: string,
  settleMs?: number,
): Promise<SlowBackup> {
  return slowBackupUnderWay(
    ["backup", "--qmp", vm.qmpPath, "--fleecing-dir", fleecingDir],
    rate,
    out,
    settleMs,
  );
}

Deno.test({
  name:
    "pull backup of two disks equals them at backup start while the guest writes before and behind the reader",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      const fl = await newFleecingDir(vm);
      const truth = await vm.snapshotDisks("start");
      const b = await pullUnderWay(vm, fl, 2 * MiB, `${vm.dir}/b.vma`);
      assert.equal(vmabakFiles(fl).length, 2, "one fleecing image per disk");
      await vm.guestWrite(0, 0x55, 0, MiB); // read already
      await vm.guestWrite(0, 0x56, 30 * MiB + 4096, 8192); // not read yet
      await vm.guestWrite(0, 0x57, 40 * MiB, 4096); // the hole at the end
      await vm.guestWrite(1, 0x66, 20 * MiB, 64 * 1024);
      await vm.guestWrite(1, 0x67, 10 * MiB + 4096, 8192);
      const r = await b.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /backup: done.*guest paused \d+\.\d ms/);
      await assertArchiveEquals(`${vm.dir}/b.vma`, truth, [
        "drive-virtio0",
        "drive-virtio1",
      ]);
      const now = await vm.snapshotDisks("after");
      assert.notEqual(
        (await Deno.readFile(now[0]!))[0],
        (await Deno.readFile(truth[0]!))[0],
        "the guest's writes changed disk 0",
      );
      assert.deepEqual(vmabakFiles(fl), [], "fleecing images removed");
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "pull backup trims what it stored: rewriting a range already read does not grow the fleecing image",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 64 * MiB, fill: ["write -P 0x5a 0 64M"] }],
    });
    try {
      const fl = await newFleecingDir(vm);
      const truth = await vm.snapshotDisks("start");
      // 3 s: > 24 MiB stored at 8 MiB/s.
      const b = await pullUnderWay(vm, fl, 8 * MiB, `${vm.dir}/b.vma`, 3000);
      const image = `${fl}/${vmabakFiles(fl)[0]}`;
      const before = allocated(image);
      for (let off = 0; off < 16 * MiB; off += MiB) {
        await vm.guestWrite(0, 0x77, off, MiB);
      }
      const after = allocated(image);
      // The same rewrite ahead of the reader would copy 16 MiB into the image.
      await vm.guestWrite(0, 0x78, 60 * MiB, 2 * MiB);
      const ahead = allocated(image);
      const r = await b.done;
      assert.equal(r.code, 0, r.stderr);
      console.log(
        `fleecing image: ${before} B before, ${after} B after rewriting 16 MiB already read, ${ahead} B after 2 MiB not read yet`,
      );
      assert.ok(after - before < MiB, `grew by ${after - before} bytes`);
      assert.ok(
        ahead - after >= 2 * MiB,
        "writes ahead of the reader are kept",
      );
      await assertArchiveEquals(`${vm.dir}/b.vma`, truth, ["drive-virtio0"]);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

/** Milliseconds of each guest write (through the device, 64 KiB, fresh clusters). */
async function writeLatencies(
  vm: TestVm,
  from: number,
  count: number,
): Promise<number[]> {
  const out = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await vm.guestWrite(0, 0x40 + i, from + i * 1024 * 1024, 64 * 1024);
    out.push(performance.now() - t);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

Deno.test({
  name:
    "pull backup never makes the guest wait on a slow consumer (writes ahead of the reader)",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 96 * MiB, fill: ["write -P 0x5a 0 96M"] }],
    });
    try {
      const idle = await writeLatencies(vm, 64 * MiB, 8);
      const b = await pullUnderWay(vm, vm.dir, 2 * MiB, "-");
      const during = await writeLatencies(vm, 72 * MiB, 8);
      b.child.kill("SIGTERM");
      const r = await b.done;
      assert.equal(r.code, 1, r.stderr);
      console.log(
        `guest 64 KiB write, median: idle ${
          median(idle).toFixed(2)
        } ms, during a pull backup drained at 2 MiB/s ${
          median(during).toFixed(2)
        } ms`,
      );
      assert.ok(
        median(during) < 10 * median(idle) + 50,
        `during ${during.map((x) => x.toFixed(1))} vs idle ${
          idle.map((x) => x.toFixed(1))
        }`,
      );
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "SIGKILL mid pull backup: the guest writes on; cleanup and the next backup remove the leftovers",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      const fl = await newFleecingDir(vm);
      const args = ["backup", "--qmp", vm.qmpPath, "--fleecing-dir", fl];
      const killed = async () => {
        const b = await pullUnderWay(vm, fl, MiB, "-");
        b.child.kill("SIGKILL");
        await b.done;
        await vm.guestWrite(0, 0x99, 36 * MiB, MiB); // still succeeds
        assert.equal(
          vmabakFiles(fl).length,
          2,
          "the killed run left its images",
        );
      };
      await killed();
      const c = await vmabak([
        "cleanup",
        "--qmp",
        vm.qmpPath,
        "--fleecing-dir",
        fl,
      ]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(
        c.text,
        /removed device \/machine\/peripheral\/vd0\/virtio-backend back on node drive0/,
      );
      assert.match(c.text, /removed file .*fleece0\.qcow2/);
      assert.match(c.text, /removed export /);
      assert.deepEqual(vmabakFiles(fl), []);
      await assertVmClean(vm);

      await killed();
      const truth = await vm.snapshotDisks("second");
      const r = await vmabak([...args, "-o", `${vm.dir}/b.vma`]);
      assert.equal(r.code, 0, r.stderr);
      await assertArchiveEquals(`${vm.dir}/b.vma`, truth, [
        "drive-virtio0",
        "drive-virtio1",
      ]);
      assert.deepEqual(vmabakFiles(fl), []);
      await assertVmClean(vm);

      const none = await vmabak([
        "cleanup",
        "--qmp",
        vm.qmpPath,
        "--fleecing-dir",
        fl,
      ]);
      assert.equal(none.code, 0, none.stderr);
      // Nothing removed; only the last backup's tracking bitmaps are listed.
      assert.doesNotMatch(none.text, /^removed/m);
      assert.equal(none.text.trimEnd().split("\n").length, 2);
      assert.match(
        none.text,
        /^bitmap drive0 vmabak-[0-9a-f-]{36}: 0 clusters/m,
      );
      assert.match(none.stderr, /nothing left by vmabak/);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "a fleecing directory that fills up: guest writes succeed, exit 1 naming it, no archive, no leftovers",
  ignore: !HAVE || !CAN_MOUNT,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 64 * MiB, fill: ["write -P 0x5a 0 64M"] }],
    });
    const small = await mountTmpfs(`${vm.dir}/small`, "3M");
    const fl = small.path;
    try {
      const b = await pullUnderWay(vm, fl, 4 * MiB, `${vm.dir}/b.vma`);
      // 8 MiB ahead of the reader, into a directory of 3 MiB.
      for (let off = 48 * MiB; off < 56 * MiB; off += MiB) {
        await vm.guestWrite(0, 0x31, off, MiB); // throws if the guest's write fails
      }
      const r = await b.done;
      const stderr = r.stderr.replace(/^backup: started.*\n/m, "");
      assert.equal(r.code, 1, stderr);
      const line = oneLine(stderr);
      console.log(line);
      assert.match(line, new RegExp(`fleecing image in ${fl}`));
      assert.match(line, /full|too slow/);
      assert.match(line, /--fleecing-dir/);
      // What reached the consumer is no archive.
      assert.notEqual((await vmabak(["verify", `${vm.dir}/b.vma`])).code, 0);
      assert.deepEqual(vmabakFiles(fl), []);
      await assertVmClean(vm);
    } finally {
      await small.unmount();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "a second vmabak on the VM's other monitor is refused while the first runs",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      const b = await pullUnderWay(vm, vm.dir, MiB, "-");
      // The test's own monitor is the VM's second QMP socket: lend it.
      const monitor = `${vm.dir}/monitor.sock`;
      await vm.monitor.close();
      await untilReleased(monitor);
      const second = await vmabak([
        "backup",
        "--qmp",
        monitor,
        "--fleecing-dir",
        vm.dir,
        "-o",
        `${vm.dir}/second.vma`,
      ]);
      await untilReleased(monitor);
      const cleanup = await vmabak([
        "cleanup",
        "--qmp",
        monitor,
        "--fleecing-dir",
        vm.dir,
      ]);
      await untilReleased(monitor);
      vm.monitor = await QmpClient.connect(monitor);
      assert.equal(second.code, 1);
      assert.match(
        oneLine(second.stderr),
        new RegExp(
          `another vmabak \\(pid ${b.child.pid}\\) is working on this VM`,
        ),
      );
      assert.equal(cleanup.code, 1);
      assert.match(oneLine(cleanup.stderr), /another vmabak/);
      b.child.kill("SIGTERM");
      assert.equal((await b.done).code, 1);
      await assertVmClean(vm);
      assert.deepEqual(vmabakFiles(vm.dir), []);
    } finally {
      await vm.destroy();
    }
  },
});
