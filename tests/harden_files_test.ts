/** Issue 9, items 2, 3, 11, 12: how vmabak creates files, and what it says when it cannot. */
import assert from "node:assert/strict";
import { oneLine, sh, vmabak, withTempDir } from "./helpers/run.ts";
import { buildArchive, smallArchive } from "./helpers/vma_build.ts";

const mode = async (path: string) => (await Deno.lstat(path)).mode! & 0o777;

Deno.test("create: a symlink or stale file at ARCHIVE.partial is never followed or reused; the archive is 0600 under umask 000", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/victim`, "precious");
    await Deno.symlink(`${dir}/victim`, `${dir}/a.vma.partial`);
    await Deno.writeTextFile(`${dir}/b.vma.partial`, "stale");
    await Deno.chmod(`${dir}/b.vma.partial`, 0o644);
    const r = await sh(
      `set -e; cd ${dir}; head -c 200000 /dev/urandom > img.raw; umask 000
       $VMABAK create a.vma img.raw; $VMABAK create b.vma img.raw`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "precious");
    for (const name of ["a.vma", "b.vma"]) {
      const info = await Deno.lstat(`${dir}/${name}`);
      assert.ok(info.isFile && !info.isSymlink, `${name} is a regular file`);
      assert.equal(await mode(`${dir}/${name}`), 0o600);
    }
    assert.equal(await Deno.readTextFile(`${dir}/b.vma.partial`), "stale");
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(left, [
      "a.vma",
      "a.vma.partial",
      "b.vma",
      "b.vma.partial",
      "img.raw",
      "victim",
    ]);
    // A failing run removes only its own temporary file.
    const f = await vmabak(["create", `${dir}/c.vma`, `${dir}/missing.raw`]);
    assert.equal(f.code, 1);
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "precious");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      left,
    );
  });
});

Deno.test("extract and restore: the target directory is 0700 and every file 0600, even under umask 000", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/x.vma`, smallArchive());
    const r = await sh(
      `set -e; cd ${dir}; umask 000; $VMABAK extract x.vma out; $VMABAK restore x.vma out2`,
    );
    assert.equal(r.code, 0, r.stderr);
    for (const out of ["out", "out2"]) {
      assert.equal(await mode(`${dir}/${out}`), 0o700);
      for (const e of Deno.readDirSync(`${dir}/${out}`)) {
        const want = e.name === "resume.sh" ? 0o700 : 0o600;
        assert.equal(await mode(`${dir}/${out}/${e.name}`), want, e.name);
      }
    }
  });
});

Deno.test("extract: a size or a name the file system cannot hold is said in words, before anything is written", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, Uint8Array, RegExp][] = [
      [
        "huge",
        buildArchive({ devices: [{ id: 1, name: "big", size: 2n ** 47n }] }),
        /^vmabak extract: Cannot create disk image .*disk-big\.raw: 140737488355328 bytes is larger than the file system allows for one file$/,
      ],
      [
        "long",
        smallArchive({ diskName: "n".repeat(250) }),
        /^vmabak extract: Cannot extract device "disk-n+\.\.\.": its file name is 259 bytes, more than file systems allow \(255\)$/,
      ],
      [
        "longconfig",
        smallArchive({ configName: "c".repeat(256) }),
        /its file name is 256 bytes/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      await Deno.writeFile(`${dir}/${name}.vma`, bytes);
      const r = await vmabak(["extract", `${dir}/${name}.vma`, `${dir}/out`]);
      assert.equal(r.code, 1, name);
      assert.match(oneLine(r.stderr), pattern);
      assert.doesNotMatch(r.stderr, /os error|Array buffer/);
      await assert.rejects(
        Deno.lstat(`${dir}/out`),
        `${name}: no directory left`,
      );
    }
  });
});

Deno.test("restore: a vmabak.json that is null, or not an object, is refused in words before anything is written", async () => {
  await withTempDir(async (dir) => {
    for (const json of ["null", '{"disks":5}', "[]"]) {
      await Deno.writeTextFile(`${dir}/vmabak.json`, json);
      await Deno.writeFile(`${dir}/img.raw`, new Uint8Array(65536));
      await Deno.remove(`${dir}/x.vma`).catch(() => {});
      const c = await vmabak([
        "create",
        `${dir}/x.vma`,
        "-c",
        `${dir}/vmabak.json`,
        `${dir}/img.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const r = await vmabak(["restore", `${dir}/x.vma`, `${dir}/out`]);
      assert.equal(r.code, 1);
      assert.match(
        oneLine(r.stderr),
        /^vmabak restore: Cannot use .*(vmabak\.json:? (is )?not an object|disks is not a list)$/,
      );
      await assert.rejects(Deno.lstat(`${dir}/out`));
    }
  });
});

Deno.test({
  name:
    "ENOSPC names the file: the archive being written, the disk image being extracted",
  ignore: Deno.uid() !== 0, // mounting a small tmpfs needs root
  fn: async () => {
    await withTempDir(async (dir) => {
      const mnt = `${dir}/small`;
      await Deno.mkdir(mnt);
      const m = await sh(`mount -t tmpfs -o size=2m tmpfs ${mnt}`);
      assert.equal(m.code, 0, m.stderr);
      try {
        const r = await sh(
          `set -e; cd ${dir}; head -c 4000000 /dev/urandom > img.raw; $VMABAK create big.vma img.raw`,
        );
        assert.equal(r.code, 0, r.stderr);
        const c = await vmabak(["create", `${mnt}/x.vma`, `${dir}/img.raw`]);
        assert.equal(c.code, 1);
        assert.match(
          oneLine(c.stderr),
          /^vmabak create: Cannot write archive .*\/small\/x\.vma: no space left on the device$/,
        );
        assert.deepEqual(
          [...Deno.readDirSync(mnt)],
          [],
          "no partial file left",
        );
        const x = await vmabak(["extract", `${dir}/big.vma`, `${mnt}/out`]);
        assert.equal(x.code, 1);
        assert.match(
          oneLine(x.stderr),
          /^vmabak extract: Cannot write disk image .*\/small\/out\/disk-disk0\.raw: no space left on the device$/,
        );
      } finally {
        await sh(`umount ${mnt}`);
      }
    });
  },
});
