/**
 * `deno task bench`: runs every scripts/bench_*.ts in turn. Each prints its
 * own table of times, rates, peak memory and ratios against native tools
 * measured in the same run. `deno task bench vma` runs only bench_vma.ts.
 */
const dir = new URL(".", import.meta.url).pathname;
const only = Deno.args[0];
const benches = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => /^bench_.+\.ts$/.test(n) && n !== "bench_util.ts")
  .filter((n) => only === undefined || n === `bench_${only}.ts`)
  .sort();
let failed = 0;
for (const name of benches) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${dir}${name}`],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) failed++;
}
Deno.exit(failed === 0 ? 0 : 1);
