/**
 * `vmabak serve` of an archive the page cache does not hold, or holds in
 * part: reads take the cached bytes in one call and wait on the thread pool
 * for the rest; what nbdcopy and qemu-img read equals the disk.
 */
import assert from "node:assert/strict";
import { evictFromPageCache } from "./helpers/page_cache.ts";
import { haveTool, run, vmabak, withTempDir } from "./helpers/run.ts";
import { serve, testImage } from "./helpers/serve.ts";

const ready = Deno.build.os === "linux" &&
  (await Promise.all(
    ["nbdcopy", "qemu-io", "qemu-img"].map((t) => haveTool(t)),
  ))
    .every(Boolean);

Deno.test({
  name:
    "serve reads an archive evicted from the page cache, and one cached in scattered parts, equal to the disk (nbdcopy, qemu-img compare)",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      // 6 copies of the test image: 30 MiB with zero clusters, zero blocks
      // and partial clusters, more than readahead brings in at once.
      const one = testImage();
      const img = new Uint8Array(one.length * 6);
      for (let i = 0; i < 6; i++) img.set(one, i * one.length);
      for (let i = 0; i < img.length; i += 1 << 20) img[i] ^= i >>> 20; // copies differ
      await Deno.writeFile(`${dir}/a.raw`, img);
      const c = await vmabak(["create", `${dir}/x.vma`, `d=${dir}/a.raw`]);
      assert.equal(c.code, 0, c.stderr);
      const s = await serve(`${dir}/x.vma`, ["--socket", `${dir}/s.sock`]);
      try {
        const copyEquals = async (what: string) => {
          await Deno.remove(`${dir}/out.raw`).catch(() => {});
          const r = await run("nbdcopy", [s.uri("d"), `${dir}/out.raw`]);
          assert.equal(r.code, 0, `${what}: ${r.stderr}`);
          const out = await Deno.readFile(`${dir}/out.raw`);
          assert.equal(out.length, img.length, what);
          assert.ok(out.every((b, i) => b === img[i]), `${what}: bytes differ`);
        };
        evictFromPageCache(`${dir}/x.vma`);
        await copyEquals("cold archive");

        // Cached in parts: qemu-io reads scattered 4 KiB pieces through the
        // export after an eviction, then whole reads straddle cached and
        // uncached pages.
        evictFromPageCache(`${dir}/x.vma`);
        const args = ["-r", "-f", "raw"];
        for (let at = 0; at < img.length; at += 3 * 1024 * 1024 + 8192) {
          args.push("-c", `read ${at} 4096`);
        }
        const q = await run("qemu-io", [...args, s.uri("d")]);
        assert.equal(q.code, 0, q.stderr);
        await copyEquals("partly cached archive");
        evictFromPageCache(`${dir}/x.vma`);
        const cmp = await run("qemu-img", [
          "compare",
          "-f",
          "raw",
          "-F",
          "raw",
          `${dir}/a.raw`,
          s.uri("d"),
        ]);
        assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
      } finally {
        assert.equal((await s.stop()).code, 0);
      }
    });
  },
});
