// deno-lint-ignore-file no-console
/**
 * Live backup speed: vmabak backs up a raw disk (mixed data, a quarter zero;
 * 2 GiB by default, BENCH_BACKUP_BYTES to change) of a running QEMU, and in
 * the same run QEMU's own blockdev-backup copies the same disk into a local
 * raw file node, and qemu-img convert copies the image file. Prints wall
 * times, ratios, and vmabak's peak memory.
 */
import { TestVm } from "../tests/helpers/qemu_vm.ts";
import { QmpClient } from "../lib/qmp/client.ts";
import {
  best,
  MAIN,
  mbps,
  measure,
  table,
  writeMixedImage,
} from "./bench_util.ts";

const SIZE = Number(Deno.env.get("BENCH_BACKUP_BYTES") ?? 2 * 1024 ** 3);
const RUNS = 3;

const vm = await TestVm.start({
  disks: [{
    format: "raw",
    size: SIZE,
    prepare: (p) => writeMixedImage(p, SIZE, 0.25, 7),
  }],
  memoryMiB: 64,
});
try {
  const disk = vm.disks[0]!;
  const warm = () =>
    new Deno.Command("cat", { args: [disk.path], stdout: "null" }).output()
      .then(() => {});

  /** QEMU's own copy: blockdev-backup into a local raw file node. */
  const qemuOwn = async (): Promise<number> => {
    await vm.monitor.close();
    const qmp = await QmpClient.connect(vm.qmpPath);
    const target = `${vm.dir}/own.raw`;
    await Deno.remove(target).catch(() => {});
    await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "raw", target, String(SIZE)],
    }).output();
    await warm();
    const start = performance.now();
    await qmp.execute("blockdev-add", {
      driver: "file",
      filename: target,
      "node-name": "bench-own",
    });
    await qmp.execute("blockdev-backup", {
      "job-id": "bench-own",
      device: disk.node,
      target: "bench-own",
      sync: "full",
    });
    const ev = await qmp.waitEvent((e) =>
      e.event === "BLOCK_JOB_COMPLETED" && e.data.device === "bench-own"
    );
    const seconds = (performance.now() - start) / 1000;
    if (ev.data.error) {
      throw new Error(`QEMU's own backup failed: ${ev.data.error}`);
    }
    await qmp.execute("blockdev-del", { "node-name": "bench-own" });
    await qmp.close();
    await Deno.remove(target);
    vm.monitor = await QmpClient.connect(`${vm.dir}/monitor.sock`);
    return seconds;
  };

  let own = Infinity;
  for (let i = 0; i < RUNS; i++) own = Math.min(own, await qemuOwn());
  const convert = await best(
    RUNS,
    `qemu-img convert -U -f raw -O raw ${disk.path} conv.raw && rm conv.raw`,
    vm.dir,
    warm,
  );
  const vmabak = await best(
    RUNS,
    `rm -f b.vma; ${Deno.execPath()} run -A ${MAIN} backup --qmp ${vm.qmpPath} -o b.vma`,
    vm.dir,
    warm,
  );
  const toPipe = await measure(
    `${Deno.execPath()} run -A ${MAIN} backup --qmp ${vm.qmpPath} -o - | cat > /dev/null`,
    vm.dir,
  );
  const archive = (await Deno.stat(`${vm.dir}/b.vma`)).size;
  console.log(
    `\n== live backup of a ${
      SIZE / 1024 ** 3
    } GiB raw disk, a quarter zero, VM running (best of ${RUNS}) ==`,
  );
  console.log(table([
    ["method", "time", "rate", "peak RSS", "vs QEMU's own copy"],
    [
      "QEMU blockdev-backup -> local raw file",
      `${own.toFixed(2)} s`,
      mbps(SIZE, own),
      "-",
      "1.00x",
    ],
    [
      "qemu-img convert -O raw",
      `${convert.seconds.toFixed(2)} s`,
      mbps(SIZE, convert.seconds),
      `${(convert.maxRssKiB / 1024).toFixed(0)} MiB`,
      `${(convert.seconds / own).toFixed(2)}x`,
    ],
    [
      "vmabak backup -o FILE",
      `${vmabak.seconds.toFixed(2)} s`,
      mbps(SIZE, vmabak.seconds),
      `${(vmabak.maxRssKiB / 1024).toFixed(0)} MiB`,
      `${(vmabak.seconds / own).toFixed(2)}x`,
    ],
    [
      "vmabak backup -o - | cat",
      `${toPipe.seconds.toFixed(2)} s`,
      mbps(SIZE, toPipe.seconds),
      "-",
      `${(toPipe.seconds / own).toFixed(2)}x`,
    ],
  ]));
  console.log(
    `archive: ${(archive / 1024 ** 2).toFixed(0)} MiB of ${
      (SIZE / 1024 ** 2).toFixed(0)
    } MiB (zero blocks not stored)`,
  );
} finally {
  await vm.destroy();
}
