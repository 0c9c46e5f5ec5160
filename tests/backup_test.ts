import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { MAIN, oneLine, run, vmabak } from "./helpers/run.ts";
import { backupVm } from "../lib/backup/backup.ts";
import {
  assertArchiveEquals,
  assertVmClean,
  MiB,
  twoDisks,
  watchStderr,
} from "./helpers/backup_checks.ts";
import { QmpClient } from "../lib/qmp/client.ts";

const HAVE = await haveQemu();
function spawnVmabak(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
}

Deno.test({
  name:
    "backup of two disks while the guest writes equals the disks at backup start",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      const truth = await vm.snapshotDisks("start");
      const child = spawnVmabak([
        "backup",
        "--mode",
        "push",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/b.vma`,
        "--speed",
        "8M",
      ]);
      const err = watchStderr(child.stderr);
      await err.started;
      // Writes into clusters not copied yet: copy-before-write must save the old data first.
      await vm.guestWrite(0, 0x55, 36 * MiB, MiB);
      await vm.guestWrite(0, 0x56, 40 * MiB, 4096);
      await vm.guestWrite(1, 0x66, 22 * MiB, 64 * 1024);
      await vm.guestWrite(1, 0x67, 10 * MiB + 4096, 8192);
      const out = await child.status;
      await child.stdout.cancel();
      const stderr = await err.text;
      assert.equal(out.code, 0, stderr);
      assert.match(stderr, /backup: done/);
      const now = await vm.snapshotDisks("after");
      assert.notEqual(
        (await run("cmp", ["-s", truth[0]!, now[0]!])).code,
        0,
        "the guest's writes changed disk 0",
      );
      assert.notEqual(
        (await run("cmp", ["-s", truth[1]!, now[1]!])).code,
        0,
        "the guest's writes changed disk 1",
      );
      assert.equal((await vmabak(["verify", `${vm.dir}/b.vma`])).code, 0);
      await assertArchiveEquals(`${vm.dir}/b.vma`, truth, [
        "drive-virtio0",
        "drive-virtio1",
      ]);
      const x = await vmabak(["extract", `${vm.dir}/b.vma`, `${vm.dir}/out`]);
      assert.equal(x.code, 0, x.stderr);
      const desc = JSON.parse(
        await Deno.readTextFile(`${vm.dir}/out/vmabak.json`),
      );
      assert.equal(desc.disks.length, 2);
      assert.equal(desc.disks[1].format, "qcow2");
      assert.equal(desc.memoryBytes, 64 * MiB);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup -o - writes to a pipe that vmabak verify - reads; --drive picks disks",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [
        { format: "raw", size: 8 * MiB + 512, fill: ["write -P 1 0 1M"] },
        { format: "raw", size: 4 * MiB },
      ],
    });
    try {
      const v = `${Deno.execPath()} run -A ${MAIN}`;
      const r = await run("bash", [
        "-o",
        "pipefail",
        "-c",
        `${v} backup --mode push --qmp ${vm.qmpPath} -o - | ${v} verify -v -`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /valid and complete/);
      assert.match(r.stderr, /drive-virtio0: 8389120 bytes/);
      assert.match(r.stderr, /drive-virtio1: 4194304 bytes/);
      const one = await run("bash", [
        "-o",
        "pipefail",
        "-c",
        `${v} backup --mode push --qmp ${vm.qmpPath} --drive vd1 -o - | ${v} verify -v -`,
      ]);
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stderr, /^device 1 drive-virtio0: 4194304 bytes/m);
      assert.doesNotMatch(one.stderr, /8389120/);
      const none = await vmabak([
        "backup",
        "--mode",
        "push",
        "--qmp",
        vm.qmpPath,
        "--drive",
        "nope",
        "-o",
        `${vm.dir}/x.vma`,
      ]);
      assert.equal(none.code, 1);
      assert.match(oneLine(none.stderr), /no such disk/);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name: "backup keeps its NBD socket in a private 0700 directory",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 4 * MiB }],
    });
    try {
      let mode = -1;
      let socket = false;
      const chunks: Uint8Array[] = [];
      await backupVm({
        mode: "push",
        qmpPath: vm.qmpPath,
        sink: { write: (c) => Promise.resolve(void chunks.push(c.slice())) },
        onStarted: ({ privateDir }) => {
          mode = Deno.statSync(privateDir).mode! & 0o777;
          socket = Deno.statSync(`${privateDir}/nbd.sock`).isSocket === true;
        },
      });
      assert.equal(mode, 0o700);
      assert.ok(socket);
    } finally {
      await vm.destroy();
    }
  },
});

/** Starts a slow backup to a file, interrupts it after 1.5 s, returns its one error line. */
async function interruptedBackup(
  vm: TestVm,
  interrupt: (child: Deno.ChildProcess) => void,
): Promise<string> {
  const child = spawnVmabak([
    "backup",
    "--mode",
    "push",
    "--qmp",
    vm.qmpPath,
    "-o",
    `${vm.dir}/b.vma`,
    "--speed",
    "2M",
  ]);
  await new Promise((r) => setTimeout(r, 1500));
  interrupt(child);
  const out = await child.output();
  assert.equal(out.code, 1);
  assert.deepEqual(
    [...Deno.readDirSync(vm.dir)].filter((e) => e.name.startsWith("b.vma")),
    [],
  );
  return oneLine(
    new TextDecoder().decode(out.stderr).replace(/^backup: started.*\n/m, ""),
  );
}

Deno.test({
  name:
    "SIGINT mid-backup: exit 1, one line, no archive, jobs and nodes gone, VM running",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      assert.match(
        await interruptedBackup(vm, (child) => child.kill("SIGINT")),
        /interrupted by SIGINT/,
      );
      await assertVmClean(vm);
      // The guest can still write where the backup did not reach.
      await vm.guestWrite(0, 0x77, 39 * MiB, 4096);
      assert.equal(await vm.status(), "running");
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name: "QEMU killed mid-backup: exit 1 with a clear line, no archive",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      assert.match(await interruptedBackup(vm, () => vm.kill()), /QEMU/);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name: "output pipe closed mid-backup: exit 1, VM clean and running",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({ disks: twoDisks() });
    try {
      const v = `${Deno.execPath()} run -A ${MAIN}`;
      const r = await run("bash", [
        "-c",
        `${v} backup --mode push --qmp ${vm.qmpPath} -o - --speed 4M 2>${vm.dir}/err | head -c 100000 >/dev/null; echo \${PIPESTATUS[0]}`,
      ]);
      assert.equal(r.text.trim(), "1");
      const err = (await Deno.readTextFile(`${vm.dir}/err`)).replace(
        /^backup: started.*\n/m,
        "",
      );
      assert.match(oneLine(err), /pipe/i);
      await assertVmClean(vm);
      const qmp = await QmpClient.connect(vm.qmpPath); // vmabak let go of the QMP socket
      await qmp.close();
    } finally {
      await vm.destroy();
    }
  },
});
