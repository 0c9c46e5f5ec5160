import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { haveTool, run, sh, vmabak } from "./helpers/run.ts";

const HAVE = await haveQemu() && await haveTool("zstd");
const MiB = 1024 * 1024;

Deno.test({
  name:
    "backup -o x.vma.zst and --zstd -o - write zstd that vmabak and the zstd tool read",
  ignore: !HAVE,
  async fn() {
    const vm = await TestVm.start({
      disks: [{
        format: "raw",
        size: 12 * MiB + 512,
        fill: ["write -P 0x11 0 3M", "write -P 0x22 9M 1M"],
      }],
    });
    try {
      const truth = await vm.snapshotDisks("start");
      const b = await vmabak([
        "backup",
        "--mode",
        "push",
        "--qmp",
        vm.qmpPath,
        "-o",
        `${vm.dir}/b.vma.zst`,
      ]);
      assert.equal(b.code, 0, b.stderr);
      const t = await run("zstd", ["-t", "-q", `${vm.dir}/b.vma.zst`]);
      assert.equal(t.code, 0, t.stderr);
      const x = await vmabak([
        "extract",
        `${vm.dir}/b.vma.zst`,
        `${vm.dir}/out`,
      ]);
      assert.equal(x.code, 0, x.stderr);
      const cmp = await run("cmp", [
        truth[0]!,
        `${vm.dir}/out/disk-drive-virtio0.raw`,
      ]);
      assert.equal(cmp.code, 0, cmp.text + cmp.stderr);
      const pipe = await sh(
        `$VMABAK backup --mode push --qmp ${vm.qmpPath} --zstd=1 -o - | zstd -dc | $VMABAK verify -v -`,
      );
      assert.equal(pipe.code, 0, pipe.stderr);
      assert.match(pipe.stderr, /valid and complete/);
    } finally {
      await vm.destroy();
    }
  },
});
