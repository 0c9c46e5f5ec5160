// deno-lint-ignore-file no-console
/**
 * Offline archive speed: `vmabak create` and `vmabak extract` of a 1 GiB raw
 * image (half of its 4 KiB blocks zero) against `qemu-img convert -O raw`
 * and `cp --sparse=always` of the same file, in the same run.
 */
import { best, MAIN, mbps, table, writeMixedImage } from "./bench_util.ts";

const SIZE = Number(Deno.env.get("BENCH_VMA_BYTES") ?? 1 << 30);
const dir = await Deno.makeTempDir({ prefix: "vmabak-bench-" });
const vmabak = `${Deno.execPath()} run -A ${MAIN}`;
try {
  await writeMixedImage(`${dir}/img.raw`, SIZE, 0.5);
  const clean = async () => {
    for (const n of ["x.vma", "conv.raw", "cp.raw", "out"]) {
      await Deno.remove(`${dir}/${n}`, { recursive: true }).catch(() => {});
    }
  };
  const warm = () =>
    new Deno.Command("cat", { args: [`${dir}/img.raw`], stdout: "null" })
      .output().then(() => {});
  const prep = async () => {
    await clean();
    await warm();
  };
  const runs = 3;
  const qemu = await best(
    runs,
    "qemu-img convert -f raw -O raw img.raw conv.raw && sync -f conv.raw",
    dir,
    prep,
  );
  const cp = await best(
    runs,
    "cp --sparse=always img.raw cp.raw && sync -f cp.raw",
    dir,
    prep,
  );
  const create = await best(runs, `${vmabak} create x.vma img.raw`, dir, prep);
  const archive = (await Deno.stat(`${dir}/x.vma`)).size;
  const extract = await best(
    runs,
    `rm -rf out; ${vmabak} extract x.vma out && sync -f out/disk-disk0.raw`,
    dir,
    async () => {
      await Deno.remove(`${dir}/out`, { recursive: true }).catch(() => {});
    },
  );
  const row = (
    name: string,
    m: { seconds: number; maxRssKiB: number },
    base: number,
  ) => [
    name,
    `${m.seconds.toFixed(2)} s`,
    mbps(SIZE, m.seconds),
    `${(m.maxRssKiB / 1024).toFixed(0)} MiB`,
    `${(m.seconds / base).toFixed(2)}x`,
  ];
  console.log(
    `\n== VMA create / extract, ${
      SIZE / (1 << 20)
    } MiB image, half zero (best of ${runs}) ==`,
  );
  console.log(table([
    ["command", "time", "rate", "peak RSS", "vs qemu-img convert"],
    row("qemu-img convert -O raw", qemu, qemu.seconds),
    row("cp --sparse=always", cp, qemu.seconds),
    row("vmabak create", create, qemu.seconds),
    row("vmabak extract", extract, qemu.seconds),
  ]));
  console.log(
    `archive size: ${(archive / (1 << 20)).toFixed(0)} MiB of ${
      SIZE / (1 << 20)
    } MiB`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
