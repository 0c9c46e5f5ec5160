/**
 * Single-file restore through `serve`: an ext4 file system made from a
 * directory (`mke2fs -d`), archived, served, mounted as a file by
 * `nbdfuse`, and read back with `debugfs`, the archive never extracted.
 */
import assert from "node:assert/strict";
import { haveTool, MAIN, run, vmabak, withTempDir } from "./helpers/run.ts";

const ready = (await haveTool("mke2fs", "-V")) &&
  (await haveTool("debugfs", "-V")) && (await haveTool("nbdfuse")) &&
  (await Deno.stat("/dev/fuse").then(() => true, () => false));

Deno.test({
  name:
    "serve: one file of an ext4 guest disk read with nbdfuse + debugfs equals the original",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/tree/etc`, { recursive: true });
      const hello = new TextEncoder().encode("restored from vmabak serve\n");
      const big = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(`${dir}/tree/etc/hello.txt`, hello);
      await Deno.writeFile(`${dir}/tree/big.bin`, big);
      const mk = await run("mke2fs", [
        "-q",
        "-F",
        "-t",
        "ext4",
        "-d",
        `${dir}/tree`,
        `${dir}/disk.raw`,
        "32M",
      ]);
      assert.equal(mk.code, 0, mk.stderr);
      const created = await vmabak([
        "create",
        `${dir}/x.vma`,
        `drive-scsi0=${dir}/disk.raw`,
      ]);
      assert.equal(created.code, 0, created.stderr);
      await Deno.remove(`${dir}/disk.raw`);

      const serve = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          MAIN,
          "serve",
          `${dir}/x.vma`,
          "--socket",
          `${dir}/s.sock`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await Deno.mkdir(`${dir}/mnt`);
      let fuse: Deno.ChildProcess | undefined;
      try {
        for (let i = 0; i < 200; i++) {
          if (await Deno.stat(`${dir}/s.sock`).then(() => true, () => false)) {
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        fuse = new Deno.Command("nbdfuse", {
          args: [
            "--readonly",
            `${dir}/mnt/disk`,
            `nbd+unix:///drive-scsi0?socket=${dir}/s.sock`,
          ],
          stdout: "null",
          stderr: "null",
        }).spawn();
        for (let i = 0; i < 200; i++) {
          const size = await Deno.stat(`${dir}/mnt/disk`).then(
            (s) => s.size,
            () => 0,
          );
          if (size > 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        const cat = await run("debugfs", [
          "-R",
          "cat /etc/hello.txt",
          `${dir}/mnt/disk`,
        ]);
        assert.equal(cat.code, 0, cat.stderr);
        assert.deepEqual(cat.stdout, hello);
        const dump = await run("debugfs", [
          "-R",
          `dump /big.bin ${dir}/big.out`,
          `${dir}/mnt/disk`,
        ]);
        assert.equal(dump.code, 0, dump.stderr);
        assert.deepEqual(await Deno.readFile(`${dir}/big.out`), big);
      } finally {
        try {
          fuse?.kill("SIGTERM");
        } catch { /* gone */ }
        await fuse?.status;
        serve.kill("SIGINT");
        assert.equal((await serve.status).code, 0);
      }
    });
  },
});
