// deno-lint-ignore-file no-console
/**
 * Incremental archives: `merge` of a full and three incrementals (each 5% of
 * the clusters rewritten at random) against `extract` of the full alone, and
 * chain `extract` of the last incremental with its bases; a 2 GiB raw disk
 * by default (BENCH_INC_BYTES to change). The incrementals are written
 * offline through vmabak's library (tests/helpers/incremental.ts).
 * With QEMU present, also live: `backup --mode pull --since` after 5% of the
 * clusters were rewritten by the guest, against a full backup of the disk.
 * BENCH_INC_LIVE_ONLY=1 runs only the live part.
 */
import { writeIncremental } from "../tests/helpers/incremental.ts";
import { best, MAIN, mbps, table, writeMixedImage } from "./bench_util.ts";
import { benchLiveIncremental } from "./_bench_incremental_live.ts";

const SIZE = Number(Deno.env.get("BENCH_INC_BYTES") ?? 2 * 1024 ** 3);
const CLUSTER = 65536;
const SHARE = 0.05;
const RUNS = Number(Deno.env.get("BENCH_INC_RUNS") ?? 2);

/** Rewrites `share` of the image's clusters, at random, with random data; returns them sorted. */
export async function rewriteRandomClusters(
  path: string,
  size: number,
  share: number,
): Promise<number[]> {
  const clusters = Math.ceil(size / CLUSTER);
  const picked = new Set<number>();
  const want = Math.round(clusters * share);
  while (picked.size < want) {
    picked.add(Math.floor(Math.random() * clusters));
  }
  const sorted = [...picked].sort((a, b) => a - b);
  const file = await Deno.open(path, { write: true });
  const buf = new Uint8Array(CLUSTER);
  try {
    for (const c of sorted) {
      crypto.getRandomValues(buf.subarray(0, 65536));
      await file.seek(c * CLUSTER, Deno.SeekMode.Start);
      const n = Math.min(CLUSTER, size - c * CLUSTER);
      let done = 0;
      while (done < n) done += await file.write(buf.subarray(done, n));
    }
  } finally {
    file.close();
  }
  return sorted;
}

if (Deno.env.get("BENCH_INC_LIVE_ONLY") !== "1") await benchOffline();
await benchLiveIncremental(SIZE, SHARE, RUNS);

async function benchOffline(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vmabak-bench-inc-" });
  try {
    await writeMixedImage(`${dir}/base.raw`, SIZE, 0.25, 11);
    const vmabak = `${Deno.execPath()} run -A ${MAIN}`;
    const c = await new Deno.Command("bash", {
      args: [
        "-c",
        `${vmabak} create full.vma drive0=base.raw && cp --sparse=always base.raw now.raw`,
      ],
      cwd: dir,
    }).output();
    if (!c.success) throw new Error(new TextDecoder().decode(c.stderr));
    const archives = [`${dir}/full.vma`];
    for (let i = 1; i <= 3; i++) {
      const changed = await rewriteRandomClusters(
        `${dir}/now.raw`,
        SIZE,
        SHARE,
      );
      const inc = `${dir}/inc${i}.vma`;
      await writeIncremental(inc, {
        base: archives.at(-1)!,
        images: { drive0: `${dir}/now.raw` },
        changed: { drive0: changed },
      });
      archives.push(inc);
    }
    const sizes = await Promise.all(
      archives.map(async (a) => (await Deno.stat(a)).size),
    );
    const rm = () =>
      Deno.remove(`${dir}/out`, { recursive: true }).catch(() => {});
    const rmM = () => Deno.remove(`${dir}/m.vma`).catch(() => {});
    const extract = await best(RUNS, `${vmabak} extract full.vma out`, dir, rm);
    await rm();
    const merge = await best(
      RUNS,
      `${vmabak} merge full.vma inc1.vma inc2.vma inc3.vma -o m.vma`,
      dir,
      rmM,
    );
    const chain = await best(
      RUNS,
      `${vmabak} extract inc3.vma --base inc2.vma --base inc1.vma --base full.vma out`,
      dir,
      rm,
    );
    await rm();
    const cmp = await new Deno.Command("bash", {
      args: [
        "-c",
        `${vmabak} extract m.vma out && cmp out/disk-drive0.raw now.raw`,
      ],
      cwd: dir,
    }).output();
    if (!cmp.success) {
      throw new Error("the merged archive differs from the disk");
    }
    const row = (name: string, m: { seconds: number; maxRssKiB: number }) => [
      name,
      `${m.seconds.toFixed(2)} s`,
      mbps(SIZE, m.seconds),
      `${(m.maxRssKiB / 1024).toFixed(0)} MiB`,
      `${(m.seconds / extract.seconds).toFixed(2)}x`,
    ];
    console.log(
      `\n== merge of a full and 3 incrementals (${
        SHARE * 100
      }% of clusters each) of a ${
        SIZE / 1024 ** 3
      } GiB disk (best of ${RUNS}) ==`,
    );
    console.log(table([
      ["command", "time", "rate (disk)", "peak RSS", "vs extract of the full"],
      row("vmabak extract full.vma DIR", extract),
      row("vmabak merge full inc1 inc2 inc3 -o m.vma", merge),
      row("vmabak extract inc3 --base inc2 --base inc1 --base full", chain),
    ]));
    console.log(
      `archives: full ${(sizes[0]! / 1024 ** 2).toFixed(0)} MiB, incrementals ${
        sizes.slice(1).map((s) => (s / 1024 ** 2).toFixed(1)).join(", ")
      } MiB; the merged archive extracts to the disk's last state (cmp)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
