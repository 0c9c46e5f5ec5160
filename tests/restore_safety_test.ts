/** Issue 9, item 1 against real QEMU: resume.sh from a hostile (but valid) description runs QEMU, and only QEMU. */
import assert from "node:assert/strict";
import { vmabak, withTempDir } from "./helpers/run.ts";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
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

const OVMF = "/usr/share/OVMF";
const HAVE_OVMF = await Deno.stat(`${OVMF}/OVMF_VARS_4M.fd`).then(() => true)
  .catch(() => false);

Deno.test({
  name:
    "restore of a live backup of a VM with a writable firmware flash: the description passes the validator, the flash is restored as a file and named in resume.sh",
  ignore: !(await haveQemu()) || !HAVE_OVMF,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.copyFile(`${OVMF}/OVMF_VARS_4M.fd`, `${dir}/vars.fd`);
      const vm = await TestVm.start({
        disks: [{ format: "raw", size: 4 << 20 }],
        paused: true,
        extraArgs: [
          "-drive",
          `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF}/OVMF_CODE_4M.fd`,
          "-drive",
          `if=pflash,format=raw,unit=1,file=${dir}/vars.fd`,
        ],
      });
      try {
        const b = await vmabak([
          "backup",
          "--qmp",
          vm.qmpPath,
          "-o",
          `${dir}/x.vma`,
        ]);
        assert.equal(b.code, 0, b.stderr);
        const r = await vmabak(["restore", `${dir}/x.vma`, `${dir}/r`]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.text,
          /^# Not recreated: cfi\.pflash01 system\.flash1, restored as .*\/r\/disk-drive-efidisk0\.raw\.$/m,
        );
        assert.deepEqual(
          await Deno.readFile(`${dir}/r/disk-drive-efidisk0.raw`),
          await Deno.readFile(`${dir}/vars.fd`),
        );
      } finally {
        await vm.destroy();
      }
    });
  },
});
