// deno-lint-ignore-file no-console
/**
 * The live half of bench_incremental.ts: a running QEMU with one raw disk
 * (mixed data, a quarter zero). Each run: a full backup, the guest rewrites
 * 5% of the clusters at random (through its virtio device), `backup --since
 * FULL`, then `backup --since INC` after no writes: the fixed start-up cost,
 * measured in the same run. The goal (issue 12): the incremental takes at
 * most 10% of the full's time plus that fixed cost, i.e.
 * (incremental - idle incremental) / full <= 0.10. Prints times (best of
 * `runs`), sizes, the guest's pause per backup, and that ratio.
 * BENCH_INC_ARGS adds options to every backup (e.g. --no-trim, to measure).
 */
import { TestVm } from "../tests/helpers/qemu_vm.ts";
import {
  MAIN,
  type Measure,
  measureWithStderr,
  table,
  writeMixedImage,
} from "./bench_util.ts";

const CLUSTER = 65536;
const GOAL = 0.10;

interface Timed extends Measure {
  /** The guest's pause vmabak reported, in ms. */
  pausedMs: number;
}

/** Runs one backup under /usr/bin/time -v: wall seconds, peak RSS, the pause it printed. */
async function timed(script: string, cwd: string): Promise<Timed> {
  const { stderr, ...m } = await measureWithStderr(script, cwd);
  return {
    ...m,
    pausedMs: Number(/guest paused ([\d.]+) ms/.exec(stderr)?.[1] ?? NaN),
  };
}

function bestOf(ms: Timed[]): Timed {
  return ms.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

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
    const extra = Deno.env.get("BENCH_INC_ARGS") ?? "";
    const vmabak = `${Deno.execPath()} run -A ${MAIN}`;
    const backup = `${vmabak} backup --qmp ${vm.qmpPath} ${extra}`;
    const clusters = Math.ceil(size / CLUSTER);
    const want = Math.round(clusters * share);
    const full: Timed[] = [];
    const inc: Timed[] = [];
    const idle: Timed[] = [];
    const ratios: number[] = [];
    let fullBytes = 0;
    let incBytes = 0;
    let idleBytes = 0;
    let writeSeconds = 0;
    for (let i = 0; i < runs; i++) {
      for (const f of ["full", "inc", "idle"]) {
        await Deno.remove(`${vm.dir}/${f}.vma`).catch(() => {});
      }
      // Each run starts a chain of its own: no bitmap of an earlier run.
      await timed(
        `${vmabak} cleanup --qmp ${vm.qmpPath} --all-bitmaps`,
        vm.dir,
      );
      const f = await timed(`${backup} -o full.vma`, vm.dir);
      const picked = new Set<number>();
      while (picked.size < want) {
        picked.add(Math.floor(Math.random() * clusters));
      }
      const t0 = performance.now();
      for (const c of picked) {
        await vm.guestWrite(0, (c % 250) + 1, c * CLUSTER, CLUSTER);
      }
      writeSeconds = (performance.now() - t0) / 1000;
      const n = await timed(`${backup} --since full.vma -o inc.vma`, vm.dir);
      const z = await timed(`${backup} --since inc.vma -o idle.vma`, vm.dir);
      full.push(f);
      inc.push(n);
      idle.push(z);
      ratios.push((n.seconds - z.seconds) / f.seconds);
      fullBytes = (await Deno.stat(`${vm.dir}/full.vma`)).size;
      incBytes = (await Deno.stat(`${vm.dir}/inc.vma`)).size;
      idleBytes = (await Deno.stat(`${vm.dir}/idle.vma`)).size;
    }
    const bf = bestOf(full);
    const changed = want * CLUSTER;
    const row = (name: string, all: Timed[], bytes: number) => {
      const m = bestOf(all);
      return [
        name,
        `${m.seconds.toFixed(2)} s`,
        all.map((x) => x.seconds.toFixed(2)).join(" "),
        `${(m.seconds / bf.seconds).toFixed(3)}x`,
        `${(bytes / 1024 ** 2).toFixed(1)} MiB`,
        `${(bytes / fullBytes).toFixed(3)}x`,
        `${median(all.map((x) => x.pausedMs)).toFixed(1)} ms`,
        `${(m.maxRssKiB / 1024).toFixed(0)} MiB`,
      ];
    };
    console.log(
      `\n== live incremental backup, ${
        size / 1024 ** 3
      } GiB raw disk, ${want} random clusters (${share * 100}%, ${
        (changed / 1024 ** 2).toFixed(0)
      } MiB) rewritten by the guest (best of ${runs}${
        extra ? `, options ${extra}` : ""
      }) ==`,
    );
    console.log(table([
      [
        "backup",
        "time",
        "runs",
        "vs full",
        "archive",
        "vs full",
        "guest pause (median)",
        "peak RSS",
      ],
      row("full (--mode pull)", full, fullBytes),
      row("--since FULL after the rewrite", inc, incBytes),
      row("--since INC after no writes (fixed cost)", idle, idleBytes),
    ]));
    const bestRatio = (bestOf(inc).seconds - bestOf(idle).seconds) /
      bf.seconds;
    console.log(
      `(incremental - fixed cost) / full = ${
        (bestRatio * 100).toFixed(1)
      }% from the best times, ${
        ratios.map((r) => `${(r * 100).toFixed(1)}%`).join(", ")
      } per run; goal <= ${GOAL * 100}%: ${
        bestRatio <= GOAL ? "met" : "NOT met"
      }`,
    );
    console.log(
      `incremental archive / changed data: ${
        (incBytes / changed).toFixed(3)
      }; the guest's ${want} writes took ${writeSeconds.toFixed(1)} s`,
    );
  } finally {
    await vm.destroy();
  }
}
