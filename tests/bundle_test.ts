import assert from "node:assert/strict";
import { haveTool, run, withTempDir } from "./helpers/run.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const ZSTD = await haveTool("zstd");

Deno.test({
  name:
    "the deno bundle is one self-sufficient file: create (WASM zero scan), verify, create .vma.zst",
  ignore: !ZSTD,
  async fn() {
    await withTempDir(async (dir) => {
      const bundle = await run(Deno.execPath(), [
        "bundle",
        "--platform",
        "deno",
        "-o",
        `${dir}/build/vmabak.js`,
        "main.ts",
      ], { cwd: ROOT });
      assert.equal(bundle.code, 0, bundle.stderr);
      const code = await Deno.readTextFile(`${dir}/build/vmabak.js`);
      assert.ok(code.includes("AGFzbQ"), "the WASM module is inlined");
      // Only Deno's node: built-ins may stay outside the file.
      const external = [...code.matchAll(/^import .* from "([^"]+)";$/gm)]
        .map((m) => m[1]!);
      assert.ok(external.every((s) => s.startsWith("node:")), external.join());

      const alone = `${dir}/alone`;
      await Deno.mkdir(alone);
      await Deno.copyFile(`${dir}/build/vmabak.js`, `${alone}/vmabak.js`);
      const img = new Uint8Array(3 * 65536 + 4096);
      img.fill(0x5a, 65536, 65536 + 10); // cluster 1: one non-zero block
      img.fill(0x33, 3 * 65536); // the short last cluster
      await Deno.writeFile(`${alone}/img`, img);
      const vmabak = (...args: string[]) =>
        run(Deno.execPath(), ["run", "-A", "vmabak.js", ...args], {
          cwd: alone,
        });
      const c = await vmabak("create", "x.vma", "img");
      assert.equal(c.code, 0, c.stderr);
      const v = await vmabak("verify", "-v", "x.vma");
      assert.equal(v.code, 0, v.stderr);
      // Zero blocks were found: 2 blocks of 4 KiB stored, 2 of 4 clusters all zero.
      assert.match(v.stderr, /4 clusters \(2 all zero\), 8192 bytes stored/);
      const z = await vmabak("create", "y.vma.zst", "img");
      assert.equal(z.code, 0, z.stderr);
      const t = await run("zstd", ["-t", "-q", `${alone}/y.vma.zst`]);
      assert.equal(t.code, 0, t.stderr);
      const vz = await vmabak("verify", "y.vma.zst");
      assert.equal(vz.code, 0, vz.stderr);
      const left = [...Deno.readDirSync(alone)].map((e) => e.name).sort();
      assert.deepEqual(left, ["img", "vmabak.js", "x.vma", "y.vma.zst"]);
    });
  },
});
