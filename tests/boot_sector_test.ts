import assert from "node:assert/strict";
import { bootCounterSector } from "./helpers/boot_sector.ts";
import { haveTool } from "./helpers/run.ts";

const SOURCE = new URL("./helpers/boot_counter.S", import.meta.url).pathname;

Deno.test({
  name: "bootCounterSector() equals boot_counter.S assembled with binutils",
  ignore: !(await haveTool("as")) || !(await haveTool("ld")),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const run = async (cmd: string, args: string[]) => {
        const r = await new Deno.Command(cmd, { args, stderr: "piped" })
          .output();
        assert.ok(
          r.success,
          `${cmd} failed: ${new TextDecoder().decode(r.stderr)}`,
        );
      };
      await run("as", ["--32", "-o", `${dir}/b.o`, SOURCE]);
      await run("ld", [
        "-m",
        "elf_i386",
        "-Ttext",
        "0x7c00",
        "--oformat",
        "binary",
        "-o",
        `${dir}/b.bin`,
        `${dir}/b.o`,
      ]);
      const built = await Deno.readFile(`${dir}/b.bin`);
      assert.equal(built.length, 512);
      assert.deepEqual(built, bootCounterSector());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
