/**
 * `vmabak serve LAST --base ...`: an incremental chain served as the disks
 * of its newest instant, read by nbdcopy; bad chains refused with one line.
 */
import assert from "node:assert/strict";
import { assertImage, buildChain } from "./helpers/chain_fixture.ts";
import {
  haveTool,
  MAIN,
  oneLine,
  run,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";

const HAVE = await haveTool("nbdcopy");

Deno.test({
  name:
    "serve LAST --base ... serves each disk at the chain's newest instant; an incremental alone or a gap is refused",
  ignore: !HAVE,
  async fn() {
    await withTempDir(async (dir) => {
      const chain = await buildChain(dir);
      const [full, inc1, inc2] = chain.archives as [string, string, string];
      const sock = `${dir}/s.sock`;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          MAIN,
          "serve",
          inc2,
          "--base",
          inc1,
          "--base",
          full,
          "--socket",
          sock,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const err = new Response(child.stderr).text();
      try {
        for (let i = 0; i < 200; i++) {
          if (await Deno.stat(sock).then(() => true, () => false)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const [i, name] of ["drive0", "drive1"].entries()) {
          const out = `${dir}/${name}.copy`;
          const c = await run("nbdcopy", [
            `nbd+unix:///${name}?socket=${sock}`,
            out,
          ]);
          assert.equal(c.code, 0, c.stderr);
          await assertImage(out, chain.states[2]![i]!);
        }
      } finally {
        child.kill("SIGTERM");
        assert.equal((await child.status).code, 0, await err);
      }
      const alone = await vmabak(["serve", inc2, "--socket", `${dir}/t.sock`]);
      assert.equal(alone.code, 1);
      assert.match(oneLine(alone.stderr), /incremental 2 of the chain.*--base/);
      const gap = await vmabak([
        "serve",
        inc2,
        "--base",
        full,
        "--socket",
        `${dir}/t.sock`,
      ]);
      assert.equal(gap.code, 1);
      assert.match(oneLine(gap.stderr), /a link is missing/);
    });
  },
});
