// deno-lint-ignore-file no-console
/**
 * The live half of bench_incremental.ts: a running QEMU with one raw disk
 * (mixed data, a quarter zero); a full backup, then the guest rewrites 5% of
 * the clusters at random (through its virtio device), then `backup --since`.
 * Each measured `runs` times (the incremental after a fresh full each time);
 * prints times, sizes and ratios.
 */
import { TestVm } from "../tests/helpers/qemu_vm.ts";
import {
  MAIN,
  type Measure,
  measure,
  table,
  writeMixedImage,
} from "./bench_util.ts";

const CLUSTER = 65536;

export async function benchLiveIncremental(
  size: number,
  share: number,
  runs: number,
): Promise<void> {
  const vm = await TestVm.start({
    disks: [{
      format: "raw",
      size,
      prepare: (p) => writeMixedImage(p, size, 0.25, 5),
    }],
    memoryMiB: 64,
  });
  try {
    const vmabak =
      `${Deno.execPath()} run -A ${MAIN} backup --qmp ${vm.qmpPath}`;
    const clusters = Math.ceil(size / CLUSTER);
    const want = Math.round(clusters * share);
    let full: Measure | undefined;
    let inc: Measure | undefined;
    let fullBytes = 0;
    let incBytes = 0;
    let writeSeconds = 0;
    for (let i = 0; i < runs; i++) {
      await Deno.remove(`${vm.dir}/full.vma`).catch(() => {});
      await Deno.remove(`${vm.dir}/inc.vma`).catch(() => {});
      const f = await measure(`${vmabak} -o full.vma`, vm.dir);
      const picked = new Set<number>();
      while (picked.size < want) {
        picked.add(Math.floor(Math.random() * clusters));
      }
      const t0 = performance.now();
      for (const c of picked) {
        await vm.guestWrite(0, (c % 250) + 1, c * CLUSTER, CLUSTER);
      }
      writeSeconds = (performance.now() - t0) / 1000;
      const n = await measure(
        `${vmabak} --since full.vma -o inc.vma`,
        vm.dir,
      );
      if (full === undefined || f.seconds < full.seconds) full = f;
      if (inc === undefined || n.seconds < inc.seconds) inc = n;
      fullBytes = (await Deno.stat(`${vm.dir}/full.vma`)).size;
      incBytes = (await Deno.stat(`${vm.dir}/inc.vma`)).size;
    }
    // The fixed start-up cost: an incremental after no writes.
    await Deno.remove(`${vm.dir}/full.vma`).catch(() => {});
    await new Deno.Command("mv", {
      args: [`${vm.dir}/inc.vma`, `${vm.dir}/full.vma`],
    }).output();
    const idle = await measure(
      `${vmabak} --since full.vma -o idle.vma`,
      vm.dir,
    );
    const idleBytes = (await Deno.stat(`${vm.dir}/idle.vma`)).size;
    const changed = want * CLUSTER;
    const row = (name: string, m: Measure, bytes: number) => [
      name,
      `${m.seconds.toFixed(2)} s`,
      `${(m.seconds / full!.seconds).toFixed(3)}x`,
      `${(bytes / 1024 ** 2).toFixed(1)} MiB`,
      `${(bytes / fullBytes).toFixed(3)}x`,
      `${(m.maxRssKiB / 1024).toFixed(0)} MiB`,
    ];
    console.log(
      `\n== live incremental backup, ${
        size / 1024 ** 3
      } GiB raw disk, ${want} random clusters (${share * 100}%, ${
        (changed / 1024 ** 2).toFixed(0)
      } MiB) rewritten by the guest (best of ${runs}) ==`,
    );
    console.log(table([
      ["backup", "time", "vs full", "archive", "vs full", "peak RSS"],
      row("full (--mode pull)", full!, fullBytes),
      row("--since FULL after the rewrite", inc!, incBytes),
      row("--since after no writes (start-up cost)", idle, idleBytes),
    ]));
    console.log(
      `incremental archive / changed data: ${
        (incBytes / changed).toFixed(3)
      }; the guest's ${want} writes took ${writeSeconds.toFixed(1)} s`,
    );
  } finally {
    await vm.destroy();
  }
}
