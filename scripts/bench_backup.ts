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
import { best, MAIN, mbps, table, writeMixedImage } from "./bench_util.ts";

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
  const qemuOwn = async (sync: boolean): Promise<number> => {
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
    if (sync) await new Deno.Command("sync", { args: ["-f", target] }).output();
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
  let ownSync = Infinity;
  for (let i = 0; i < RUNS; i++) own = Math.min(own, await qemuOwn(false));
  for (let i = 0; i < RUNS; i++) {
    ownSync = Math.min(ownSync, await qemuOwn(true));
  }
  const convert = await best(
    RUNS,
    `qemu-img convert -U -f raw -O raw ${disk.path} conv.raw && rm conv.raw`,
    vm.dir,
    warm,
  );
  const vmabak = `${Deno.execPath()} run -A ${MAIN} backup --qmp ${vm.qmpPath}`;
  const toFile = await best(
    RUNS,
    `rm -f b.vma; ${vmabak} -o b.vma`,
    vm.dir,
    warm,
  );
  const toNull = await best(RUNS, `${vmabak} -o - > /dev/null`, vm.dir, warm);
  const toPipe = await best(
    RUNS,
    `${vmabak} -o - | cat > /dev/null`,
    vm.dir,
    warm,
  );
  const archive = (await Deno.stat(`${vm.dir}/b.vma`)).size;
  const row = (name: string, seconds: number, rssKiB?: number) => [
    name,
    `${seconds.toFixed(2)} s`,
    mbps(SIZE, seconds),
    rssKiB === undefined ? "-" : `${(rssKiB / 1024).toFixed(0)} MiB`,
    `${(seconds / own).toFixed(2)}x`,
  ];
  console.log(
    `\n== live backup of a ${
      SIZE / 1024 ** 3
    } GiB raw disk, a quarter zero, VM running (best of ${RUNS}) ==`,
  );
  console.log(table([
    ["method", "time", "rate", "peak RSS", "vs QEMU's own copy"],
    row("QEMU blockdev-backup -> local raw file", own),
    row("QEMU blockdev-backup -> local raw file, + sync", ownSync),
    row("qemu-img convert -O raw", convert.seconds, convert.maxRssKiB),
    row(
      "vmabak backup -o FILE (fsync at the end)",
      toFile.seconds,
      toFile.maxRssKiB,
    ),
    row("vmabak backup -o - > /dev/null", toNull.seconds, toNull.maxRssKiB),
    row("vmabak backup -o - | cat", toPipe.seconds, toPipe.maxRssKiB),
  ]));
  console.log(
    `archive: ${(archive / 1024 ** 2).toFixed(0)} MiB of ${
      (SIZE / 1024 ** 2).toFixed(0)
    } MiB (zero blocks not stored)`,
  );
} finally {
  await vm.destroy();
}
