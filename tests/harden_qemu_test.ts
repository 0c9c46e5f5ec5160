// deno-lint-ignore-file no-console -- tests print what they measured
/** Issue 9, items 5 and 6 against real QEMU: concurrent backups to one archive, a busy QMP socket. */
import assert from "node:assert/strict";
import { oneLine, run, vmabak, withTempDir } from "./helpers/run.ts";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { CAN_MOUNT, mountTmpfs } from "./helpers/tmpfs.ts";
import { QmpClient } from "../lib/qmp/client.ts";

const QEMU = await haveQemu();

Deno.test({
  name:
    "backup of a VM whose QMP socket another client holds says at once that it is in use, and exits 1",
  ignore: !QEMU,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 4 << 20 }],
    });
    const holder = await QmpClient.connect(vm.qmpPath);
    try {
      for (const attempt of [1, 2, 3]) {
        const t0 = performance.now();
        const r = await vmabak([
          "backup",
          "--qmp",
          vm.qmpPath,
          "-o",
          `${vm.dir}/x${attempt}.vma`,
        ]);
        const seconds = (performance.now() - t0) / 1000;
        assert.equal(r.code, 1, r.stderr);
        assert.match(
          oneLine(r.stderr),
          /^vmabak backup: Cannot connect to QMP socket .*qmp\.sock: it is in use by another client \(QEMU serves one client per QMP socket\)$/,
        );
        // Generous bound: the old code waited 10 s for a greeting.
        assert.ok(
          seconds < 6,
          `attempt ${attempt} took ${seconds.toFixed(1)} s`,
        );
        console.log(`busy QMP socket refused in ${seconds.toFixed(2)} s`);
      }
      const t0 = performance.now();
      const resume = await vmabak([
        "resume",
        "--qmp",
        vm.qmpPath,
        "--timeout",
        "60",
      ]);
      assert.equal(resume.code, 1);
      assert.match(oneLine(resume.stderr), /it is in use by another client/);
      assert.ok((performance.now() - t0) / 1000 < 6, "resume did not retry");
      assert.equal(
        (await holder.execute<{ status: string }>("query-status")).status,
        "running",
        "the holding client is undisturbed",
      );
      await holder.close();
      const ok = await vmabak([
        "backup",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/free.vma`,
      ]);
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await holder.close().catch(() => {});
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "two backups to the same -o: the loser fails clearly, the winner's archive stays intact",
  ignore: !QEMU,
  async fn() {
    const vms = await Promise.all([0x11, 0x22].map((p) =>
      TestVm.start({
        disks: [{
          format: "raw",
          size: 8 << 20,
          fill: [`write -P ${p} 0 8M`],
        }],
      })
    ));
    try {
      await withTempDir(async (dir) => {
        const out = `${dir}/same.vma`;
        const results = await Promise.all(vms.map((vm) =>
          vmabak([
            "backup",
            "--qmp",
            vm.qmpPath,
            "-o",
            out,
            "--speed",
            "4M",
          ])
        ));
        const codes = results.map((r) => r.code).sort();
        assert.deepEqual(
          codes,
          [0, 1],
          results.map((r) => r.stderr).join("\n"),
        );
        const winner = results.findIndex((r) => r.code === 0);
        const loser = results[1 - winner]!;
        assert.match(
          oneLine(
            loser.stderr.split("\n").filter((l) => !l.startsWith("backup:"))
              .join("\n"),
          ),
          /^vmabak backup: Cannot write archive .*same\.vma: it appeared while this run was writing \(another run wrote it\); that file is kept, this run's output is discarded$/,
        );
        const v = await vmabak(["verify", out]);
        assert.equal(v.code, 0, v.stderr);
        const x = await vmabak(["extract", out, `${dir}/x`]);
        assert.equal(x.code, 0, x.stderr);
        const disk = await Deno.readFile(`${dir}/x/disk-drive-virtio0.raw`);
        const pattern = [0x11, 0x22][winner]!;
        assert.ok(disk.every((b) => b === pattern), "the winner's disk");
        const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
        assert.deepEqual(left, ["same.vma", "x"], "no temporary file left");
        const r = await run("ls", ["-l", out]);
        assert.match(r.text, /^-rw-------/);
      });
    } finally {
      await Promise.all(vms.map((vm) => vm.destroy()));
    }
  },
});

Deno.test({
  name:
    "backup --vmstate into a full fleecing directory names the VM state spool that ran out of space",
  ignore: !QEMU || !CAN_MOUNT,
  async fn() {
    const vm = await TestVm.start({
      disks: [{ format: "raw", size: 4 << 20 }],
    });
    const small = await mountTmpfs(`${vm.dir}/small`, "400k");
    const mnt = small.path;
    try {
      const r = await vmabak([
        "backup",
        "--vmstate",
        "--mode",
        "push",
        "--fleecing-dir",
        mnt,
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/x.vma`,
      ]);
      assert.equal(r.code, 1);
      assert.match(
        oneLine(
          r.stderr.split("\n").filter((l) => !l.startsWith("backup:")).join(
            "\n",
          ),
        ),
        /^vmabak backup: Cannot save the VM state: no space left on the device in .*\/small \(writing vmabak-[^/]*vmstate\.bin\); free space there or choose another directory with --fleecing-dir$/,
      );
      assert.deepEqual([...Deno.readDirSync(mnt)], [], "the spool is removed");
      await assert.rejects(Deno.lstat(`${vm.dir}/x.vma`));
      assert.equal(await vm.status(), "running");
    } finally {
      await small.unmount();
      await vm.destroy();
    }
  },
});
