/** Issue 9, items 1, 4, 10, 11, 13: hostile archive content through the reading commands. */
import assert from "node:assert/strict";
import { oneLine, vmabak, withTempDir } from "./helpers/run.ts";
import { buildArchive } from "./helpers/vma_build.ts";
import { goodDescription } from "../lib/backup/_test_description.ts";

const enc = new TextEncoder();

Deno.test("list prints archive names with control characters escaped: no fake line, no escape sequence", async () => {
  await withTempDir(async (dir) => {
    const hostile = "drive-scsi0\nDEV: dev_id=2 size: 1 devname: injected";
    await Deno.writeFile(
      `${dir}/x.vma`,
      buildArchive({
        configs: [{ name: "c\x1b[2J.conf", data: enc.encode("x") }],
        devices: [{ id: 1, name: hostile, size: 65536n }],
        extents: [[{ devId: 1, cluster: 0, mask: 0 }]],
      }),
    );
    const r = await vmabak(["list", `${dir}/x.vma`]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.text.trimEnd().split("\n");
    assert.equal(lines.length, 3, r.text);
    assert.equal(lines[0], "CFG: size: 1 name: c\\x1b[2J.conf");
    assert.equal(
      lines[1],
      "DEV: dev_id=1 size: 65536 devname: drive-scsi0\\nDEV: dev_id=2 size: 1 devname: injected",
    );
    assert.ok(!r.text.includes("\x1b"), "no escape character reaches stdout");
    // An error naming the device stays one line.
    await Deno.writeFile(
      `${dir}/y.vma`,
      buildArchive({ devices: [{ id: 1, name: hostile, size: 65536n }] }),
    );
    const v = await vmabak(["verify", `${dir}/y.vma`]);
    assert.equal(v.code, 1);
    assert.equal(
      oneLine(v.stderr),
      "vmabak verify: Cannot verify archive: detected missing cluster 0 for stream drive-scsi0\\nDEV: dev_id=2 size: 1 devname: injected",
    );
    const c = await vmabak(["config", `${dir}/x.vma`, "-c", "none"]);
    assert.equal(c.code, 1);
    assert.match(oneLine(c.stderr), /configs: c\\x1b\[2J\.conf\)$/);
  });
});

Deno.test("list prints sizes past 2^53 exactly; verify says in words what cannot be read", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(
      `${dir}/x.vma`,
      buildArchive({
        devices: [
          { id: 1, name: "odd", size: 2n ** 53n + 1n },
          { id: 2, name: "max", size: 2n ** 63n },
        ],
      }),
    );
    const r = await vmabak(["list", `${dir}/x.vma`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.text,
      /^DEV: dev_id=1 size: 9007199254740993 devname: odd$/m,
    );
    assert.match(
      r.text,
      /^DEV: dev_id=2 size: 9223372036854775808 devname: max$/m,
    );
    const j = await vmabak(["list", "--json", `${dir}/x.vma`]);
    assert.equal(j.code, 0, j.stderr);
    assert.match(j.text, /"size": 9007199254740993,/);
    assert.match(j.text, /"size": 9223372036854775808,/);
    for (const cmd of ["verify", "extract"]) {
      const v = await vmabak(
        [cmd, `${dir}/x.vma`, `${dir}/out`].slice(0, cmd === "verify" ? 2 : 3),
      );
      assert.equal(v.code, 1);
      assert.equal(
        oneLine(v.stderr),
        `vmabak ${cmd}: Cannot read device 1 odd: its recorded size, 9007199254740993 bytes, is more than a VMA archive can hold (281474976710656 bytes)`,
      );
    }
  });
});

Deno.test("a vmstate stream past its recorded size is a format error for verify, extract and restore", async () => {
  await withTempDir(async (dir) => {
    // 65,536 bytes recorded; 59 zero clusters stored (3.8 MB of stream from 1 KB of archive).
    await Deno.writeFile(
      `${dir}/x.vma`,
      buildArchive({
        devices: [{ id: 1, name: "vmstate", size: 65536n }],
        extents: [
          Array.from({ length: 59 }, (_, cluster) => ({
            devId: 1,
            cluster,
            mask: 0,
          })),
        ],
      }),
    );
    const v = await vmabak(["verify", `${dir}/x.vma`]);
    assert.equal(v.code, 1);
    assert.match(
      oneLine(v.stderr),
      /slot 1, cluster 1: vmstate data beyond its recorded size \(65536 bytes\)$/,
    );
    for (const cmd of ["extract", "restore"]) {
      const x = await vmabak([cmd, `${dir}/x.vma`, `${dir}/${cmd}`]);
      assert.equal(x.code, 1);
      assert.match(oneLine(x.stderr), /vmstate data beyond its recorded size/);
      const size = await Deno.stat(`${dir}/${cmd}/vmstate.bin`).then((s) =>
        s.size
      ).catch(() => 0);
      assert.ok(size <= 65536, `${cmd}: vmstate.bin ${size} bytes`);
    }
  });
});

Deno.test("restore refuses a hostile vmabak.json before writing anything; nothing runs", async () => {
  await withTempDir(async (dir) => {
    const base = goodDescription();
    const disk = (base.disks as Record<string, unknown>[])[0]!;
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { ...base, name: "vm\ntouch PWNED\n#" },
        /name holds a control character/,
      ],
      [{ ...base, qemu: "7.2\ntouch PWNED" }, /qemu ".*" has characters/],
      [{ ...base, machine: "q35,memory-backend=x" }, /machine/],
      [{ ...base, disks: [{ ...disk, node: "n0,read-only=on" }] }, /node/],
      [{ ...base, disks: [{ ...disk, deviceId: "vd0,drive=y" }] }, /deviceId/],
      [
        { ...base, disks: [{ ...disk, name: "other" }] },
        /disk "other" is not in the archive/,
      ],
    ];
    for (const [i, [desc, pattern]] of cases.entries()) {
      await Deno.writeTextFile(`${dir}/vmabak.json`, JSON.stringify(desc));
      await Deno.writeFile(`${dir}/img.raw`, new Uint8Array(65536));
      const c = await vmabak([
        "create",
        `${dir}/x${i}.vma`,
        "-c",
        `${dir}/vmabak.json`,
        `drive0=${dir}/img.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const r = await vmabak(["restore", `${dir}/x${i}.vma`, `${dir}/out`], {
        cwd: dir,
      });
      assert.equal(r.code, 1, `case ${i}`);
      assert.match(oneLine(r.stderr), pattern);
      await assert.rejects(
        Deno.lstat(`${dir}/out`),
        `case ${i}: nothing written`,
      );
    }
    await assert.rejects(Deno.lstat(`${dir}/PWNED`));
  });
});
