/** Issue 9, item 1 against real QEMU: resume.sh from a hostile (but valid) description runs QEMU, and only QEMU. */
import assert from "node:assert/strict";
import { vmabak, withTempDir } from "./helpers/run.ts";
import { haveQemu } from "./helpers/qemu_vm.ts";
import { QmpClient } from "../lib/qmp/client.ts";
import { goodDescription } from "../lib/backup/_test_description.ts";

Deno.test({
  name:
    "restore into a directory named with quotes, a comma and $(...): resume.sh starts QEMU with exactly those paths and runs no other command",
  ignore: !(await haveQemu()),
  async fn() {
    await withTempDir(async (dir) => {
      const desc = {
        ...goodDescription(),
        name: `vm"; touch PWNED; # ' $(touch PWNED)`,
        machine: "q35",
      };
      await Deno.writeTextFile(`${dir}/vmabak.json`, JSON.stringify(desc));
      await Deno.writeFile(`${dir}/img.raw`, new Uint8Array(1 << 20).fill(5));
      const c = await vmabak([
        "create",
        `${dir}/x.vma`,
        "-c",
        `${dir}/vmabak.json`,
        `drive0=${dir}/img.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const target = `${dir}/it's "a",x;$(touch PWNED)`;
      const r = await vmabak(["restore", `${dir}/x.vma`, target], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      const child = new Deno.Command("sh", {
        args: [`${target}/resume.sh`],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let qmp: QmpClient | undefined;
      try {
        for (let i = 0; i < 200 && qmp === undefined; i++) {
          await new Promise((r) => setTimeout(r, 50));
          qmp = await QmpClient.connect(`${target}/qmp.sock`).catch(() =>
            undefined
          );
        }
        assert.ok(qmp, "QEMU opened its QMP socket at the quoted path");
        const blocks = await qmp.execute<
          { inserted?: { "node-name": string; file: string } }[]
        >("query-block");
        const files = blocks.flatMap((b) =>
          b.inserted ? [b.inserted.file] : []
        );
        assert.ok(
          files.some((f) => f.endsWith(`${target}/disk-drive0.raw`)),
          JSON.stringify(files),
        );
        await qmp.execute("quit").catch(() => {});
      } finally {
        await qmp?.close().catch(() => {});
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.output();
      }
      for (const where of [dir, target, Deno.cwd()]) {
        await assert.rejects(Deno.lstat(`${where}/PWNED`), where);
      }
    });
  },
});
