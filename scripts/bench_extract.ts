// deno-lint-ignore-file no-console
/**
 * `extract` at disk speed: a 2 GiB disk (a quarter holes, written zero runs,
 * random data) archived by `vmabak create`, extracted to a sparse raw file,
 * against `qemu-img convert` of the same raw image and `nbdcopy` from
 * `qemu-nbd` serving it, sync included, medians of interleaved runs.
 */
import {
  MAIN,
  mbps,
  type Measure,
  medians,
  shell,
  table,
  writeDiskImage,
} from "./bench_util.ts";

const SIZE = Number(Deno.env.get("BENCH_EXTRACT_BYTES") ?? 2 ** 31);
const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? 3);
const dir = await Deno.makeTempDir({ prefix: "vmabak-bench-extract-" });
const vmabak = `${Deno.execPath()} run -A ${MAIN}`;
try {
  await writeDiskImage(`${dir}/img.raw`, SIZE);
  await run(`${vmabak} create x.vma img.raw`);
  const m = await medians(
    RUNS,
    {
      qemu: "qemu-img convert -f raw -O raw img.raw out.raw && sync out.raw",
      nbdcopy:
        "nbdcopy -- [ qemu-nbd -r -f raw img.raw ] out.raw && sync out.raw",
      extract: `${vmabak} extract x.vma out && sync out/disk-disk0.raw`,
    },
    dir,
    async (name) => {
      await Deno.remove(`${dir}/out.raw`).catch(() => {});
      await Deno.remove(`${dir}/out`, { recursive: true }).catch(() => {});
      await run("sync");
      // Warm the input each tool reads, as a restore right after a copy would.
      await run(`cat ${name === "extract" ? "x.vma" : "img.raw"} > /dev/null`);
    },
  );
  await run(
    `rm -rf out; ${vmabak} extract x.vma out && cmp out/disk-disk0.raw img.raw`,
  );
  const used = (await run("du -k out/disk-disk0.raw")).split("\t")[0];
  const row = (name: string, r: Measure) => [
    name,
    `${r.seconds.toFixed(2)} s`,
    mbps(SIZE, r.seconds),
    `${(r.maxRssKiB / 1024).toFixed(0)} MiB`,
    `${(r.seconds / m.qemu!.seconds).toFixed(2)}x`,
    `${(r.seconds / m.nbdcopy!.seconds).toFixed(2)}x`,
  ];
  console.log(
    `\n== extract: ${
      SIZE / 2 ** 20
    } MiB disk, a quarter holes, sync included (median of ${RUNS}) ==`,
  );
  console.log(table([
    ["command", "time", "rate", "peak RSS", "vs qemu-img", "vs nbdcopy"],
    row("qemu-img convert -O raw", m.qemu!),
    row("nbdcopy from qemu-nbd", m.nbdcopy!),
    row("vmabak extract", m.extract!),
  ]));
  console.log(
    `extracted file: equal to the image, ${
      Math.round(Number(used) / 1024)
    } MiB allocated of ${SIZE / 2 ** 20} MiB (sparse)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}

async function run(script: string): Promise<string> {
  return (await shell(script, dir)).text;
}
