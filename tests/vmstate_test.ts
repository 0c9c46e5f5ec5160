import assert from "node:assert/strict";
import { haveQemu, migrationCapsOn, TestVm } from "./helpers/qemu_vm.ts";
import {
  bootCounterSector,
  COUNTER_RAM_ADDRESS,
  diskCounter,
} from "./helpers/boot_sector.ts";
import { assertSameRaw, sh, spawnVmabak, vmabak } from "./helpers/run.ts";
import { MiB, watchStderr } from "./helpers/backup_checks.ts";
import { startRestored } from "./helpers/restored_vm.ts";
import { QmpClient } from "../lib/qmp/client.ts";
import { VmaReader } from "../lib/vma/reader.ts";

const HAVE = await haveQemu();

async function ramCounter(qmp: QmpClient): Promise<number> {
  const out = await qmp.execute<string>("human-monitor-command", {
    "command-line": `xp /1wx ${COUNTER_RAM_ADDRESS}`,
  });
  return parseInt(out.split(":")[1]!.trim(), 16);
}

/** A VM running the counter guest: RAM and disk each hold a counter. */
async function counterVm(): Promise<TestVm> {
  const vm = await TestVm.start({
    disks: [
      { format: "raw", size: 8 * MiB },
      {
        format: "qcow2",
        size: 16 * MiB + 4096,
        fill: ["write -P 0x21 0 4M", "write -P 0x22 12M 4M"],
      },
    ],
    memoryMiB: 128,
    bootSector: bootCounterSector(),
  });
  for (let i = 0; i < 100 && (await ramCounter(vm.monitor)) < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return vm;
}

/** Starts resume.sh, lets `vmabak resume` continue it; returns the QMP client and the RAM counter at load. */
async function resumeRestored(dir: string) {
  const { qmp, stop } = await startRestored(dir);
  for (let i = 0; i < 200; i++) {
    if (
      (await qmp.execute<{ status: string }>("query-status")).status !==
        "inmigrate"
    ) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(
    (await qmp.execute<{ status: string }>("query-status")).status,
    "paused",
  );
  const ramAtLoad = await ramCounter(qmp);
  return { stop, qmp, ramAtLoad };
}

for (const mode of ["pull", "push"]) {
  Deno.test({
    name:
      `backup --mode ${mode} --vmstate: RAM and disk of one instant; the restored VM resumes and runs on`,
    ignore: !HAVE,
    async fn() {
      const vm = await counterVm();
      let restored: Awaited<ReturnType<typeof resumeRestored>> | undefined;
      try {
        const capsBefore = await migrationCapsOn(vm.monitor);
        // Disk 1 changes only through the guest writes below: its truth is known.
        const truth1 = (await vm.snapshotDisks("start"))[1]!;
        const child = spawnVmabak([
          "backup",
          "--mode",
          mode,
          "--fleecing-dir",
          vm.dir,
          "--qmp",
          vm.qmpPath,
          "-o",
          `${vm.dir}/vm.vma`,
          "--vmstate",
          "--speed",
          "8M",
        ], { stderr: "piped" });
        const err = watchStderr(child.stderr);
        await err.started; // the instant is fixed: this write comes after it
        await vm.guestWrite(1, 0x77, 15 * MiB, MiB);
        const out = await child.status;
        const b = { code: out.code, stderr: await err.text };
        assert.equal(b.code, 0, b.stderr);
        assert.match(b.stderr, /VM state .*guest paused \d+(\.\d+)? ms/);
        // The source VM: running, capabilities as before, nothing of vmabak's left.
        assert.equal(await vm.status(), "running");
        assert.deepEqual(await migrationCapsOn(vm.monitor), capsBefore);
        assert.deepEqual(await vm.monitor.execute("query-block-jobs"), []);
        const before = await ramCounter(vm.monitor);
        await new Promise((r) => setTimeout(r, 200));
        assert.ok(
          (await ramCounter(vm.monitor)) > before,
          "the source guest still runs",
        );

        const v = await vmabak(["verify", `${vm.dir}/vm.vma`]);
        assert.equal(v.code, 0, v.stderr);
        // vmstate clusters are in order (the reader enforces it) and the stream is not empty.
        const reader = await VmaReader.open(
          (await Deno.open(`${vm.dir}/vm.vma`)).readable,
        );
        let stateClusters = 0;
        for await (const ev of reader.clusters()) {
          if (ev.device.name === "vmstate") stateClusters++;
        }
        assert.ok(stateClusters > 0);

        const r = await vmabak([
          "restore",
          `${vm.dir}/vm.vma`,
          `${vm.dir}/restored`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.text, /-incoming/);
        await assertSameRaw(
          truth1,
          `${vm.dir}/restored/disk-drive-virtio1.raw`,
          "disk 1 equals its state at backup start",
        );
        const disk = await Deno.readFile(
          `${vm.dir}/restored/disk-drive-virtio0.raw`,
        );
        const diskAtBackup = diskCounter(disk);
        restored = await resumeRestored(`${vm.dir}/restored`);
        const delta = restored.ramAtLoad - diskAtBackup;
        assert.ok(
          diskAtBackup > 0 && (delta === 0 || delta === 1),
          `RAM ${restored.ramAtLoad} vs disk ${diskAtBackup}`,
        );
        await restored.qmp.close(); // QEMU serves one QMP client at a time
        const res = await vmabak([
          "resume",
          "--qmp",
          `${vm.dir}/restored/qmp.sock`,
        ]);
        assert.equal(res.code, 0, res.stderr);
        restored.qmp = await QmpClient.connect(`${vm.dir}/restored/qmp.sock`);
        assert.equal(
          (await restored.qmp.execute<{ status: string }>("query-status"))
            .status,
          "running",
        );
        // The guest runs on: its RAM counter passes the loaded value (polled
        // for up to 10 s: a loaded 2-core host can be slow to schedule it).
        let ranOn = false;
        for (let i = 0; i < 100 && !ranOn; i++) {
          ranOn = (await ramCounter(restored.qmp)) > restored.ramAtLoad;
          if (!ranOn) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(ranOn, "the restored guest runs on");
      } finally {
        if (restored) {
          await restored.qmp.close();
          await restored.stop();
        }
        await vm.destroy();
      }
    },
  });
}

Deno.test({
  name: "backup --vmstate -o - | restore - works through a pipe",
  ignore: !HAVE,
  async fn() {
    const vm = await counterVm();
    try {
      const r = await sh(
        `$VMABAK backup --mode push --vmstate --qmp ${vm.qmpPath} -o - | $VMABAK restore - ${vm.dir}/out`,
      );
      assert.equal(r.code, 0, r.stderr);
      const state = await Deno.stat(`${vm.dir}/out/vmstate.bin`);
      assert.ok(state.size > 100_000);
      assert.ok((await Deno.stat(`${vm.dir}/out/resume.sh`)).mode! & 0o100);
      assert.equal(await vm.status(), "running");
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --vmstate fails before touching the VM when background snapshots are refused",
  ignore: !HAVE,
  async fn() {
    const vm = await counterVm();
    try {
      // postcopy-ram cannot be combined with background-snapshot: QEMU refuses.
      await vm.monitor.execute("migrate-set-capabilities", {
        capabilities: [{ capability: "postcopy-ram", state: true }],
      });
      const b = await vmabak([
        "backup",
        "--mode",
        "push",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/vm.vma`,
        "--vmstate",
      ]);
      assert.equal(b.code, 1);
      assert.match(
        b.stderr.trim(),
        /^vmabak backup: Cannot save the VM state: .*back up without --vmstate$/,
      );
      assert.equal(await vm.status(), "running");
      assert.deepEqual(await migrationCapsOn(vm.monitor), ["postcopy-ram"]);
      assert.deepEqual(
        [...Deno.readDirSync(vm.dir)].filter((e) =>
          e.name.startsWith("vm.vma")
        ),
        [],
      );
    } finally {
      await vm.destroy();
    }
  },
});
