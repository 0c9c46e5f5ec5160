import assert from "node:assert/strict";
import {
  FIXTURE,
  haveTool,
  oneLine,
  sh,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";

const ZSTD = await haveTool("zstd");

/**
 * Images whose sizes are multiples of 512 (extract gives them back byte for
 * byte): random data, zeros and text; a sparse one; a config file.
 */
async function makeImages(dir: string): Promise<void> {
  const r = await sh(
    `set -e; set +o pipefail; cd ${dir}
     head -c 1000448 /dev/urandom > a.raw; head -c 300032 /dev/zero >> a.raw
     (yes "vmabak zstd test line" || true) | head -c 5000192 >> a.raw
     truncate -s 12M b.raw; printf 'START' | dd of=b.raw conv=notrunc status=none
     printf 'name: zstd\\nmemory: 64\\n' > qemu-server.conf`,
  );
  assert.equal(r.code, 0, r.stderr);
}

const IMAGES = "-c qemu-server.conf a.raw drive-b=b.raw";

/** `list` without the CTIME line (two archives made a second apart differ there). */
function listing(text: string): string[] {
  return text.trimEnd().split("\n").filter((l) => !l.startsWith("CTIME:"));
}

/** Extracts ARCHIVE (a path, or "-" with a shell prefix) and checks the images come back. */
async function extractsImages(dir: string, script: string): Promise<void> {
  await Deno.remove(`${dir}/out`, { recursive: true }).catch(() => {});
  const r = await sh(
    `${script} && cmp a.raw out/disk-disk0.raw && cmp b.raw out/disk-drive-b.raw && cmp qemu-server.conf out/qemu-server.conf`,
    dir,
  );
  assert.equal(r.code, 0, `${script}: ${r.stderr}${r.text}`);
}

Deno.test({
  name:
    "create x.vma.zst writes a zstd stream holding the same archive as create x.vma",
  ignore: !ZSTD,
  async fn() {
    await withTempDir(async (dir) => {
      await makeImages(dir);
      const r = await sh(
        `$VMABAK create x.vma ${IMAGES} && $VMABAK create y.vma.zst ${IMAGES} && $VMABAK create --zstd=1 z.vma ${IMAGES} && $VMABAK create --zstd ${
          IMAGES.replace(
            "-c",
            "w.vma -c",
          )
        } && zstd -t -q y.vma.zst z.vma w.vma && zstd -dc y.vma.zst > yd.vma && zstd -dc z.vma > zd.vma`,
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      const plain = (await Deno.stat(`${dir}/x.vma`)).size;
      // Same layout: only uuid, ctime and checksums differ.
      for (const name of ["yd.vma", "zd.vma"]) {
        assert.equal((await Deno.stat(`${dir}/${name}`)).size, plain, name);
      }
      assert.ok((await Deno.stat(`${dir}/y.vma.zst`)).size < plain * 0.6);
      const expected = listing(
        (await vmabak(["list", `${dir}/x.vma`])).text,
      );
      for (const name of ["y.vma.zst", "yd.vma", "z.vma", "w.vma"]) {
        const l = await vmabak(["list", `${dir}/${name}`]);
        assert.equal(l.code, 0, l.stderr);
        assert.deepEqual(listing(l.text), expected, name);
        const v = await vmabak(["verify", `${dir}/${name}`]);
        assert.equal(v.code, 0, `${name}: ${v.stderr}`);
      }
      await extractsImages(dir, "$VMABAK extract yd.vma out");
      await extractsImages(dir, "$VMABAK extract y.vma.zst out");
    });
  },
});

Deno.test({
  name:
    "every reading command takes .vma.zst from a file or a pipe with no flag",
  ignore: !ZSTD,
  async fn() {
    await withTempDir(async (dir) => {
      await makeImages(dir);
      const r = await sh(
        `$VMABAK create y.vma.zst ${IMAGES} && zstd -dc y.vma.zst | $VMABAK verify - && $VMABAK verify -v y.vma.zst && cat y.vma.zst | $VMABAK verify - && $VMABAK config y.vma.zst > cfg && cmp cfg qemu-server.conf && (cat y.vma.zst || true) | $VMABAK list - > listing`,
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /valid and complete/);
      assert.match(
        await Deno.readTextFile(`${dir}/listing`),
        /DEV: dev_id=2 size: 12582912 devname: drive-b/,
      );
      await extractsImages(dir, "cat y.vma.zst | $VMABAK extract - out");
      await extractsImages(
        dir,
        `$VMABAK create - --zstd=2 ${IMAGES} | $VMABAK extract - out`,
      );
    });
  },
});

Deno.test({
  name:
    "archives compressed by the zstd tool read back: one frame, piped frame, concatenated and skippable frames",
  ignore: !ZSTD,
  async fn() {
    await withTempDir(async (dir) => {
      await makeImages(dir);
      const r = await sh(
        `set -e; $VMABAK create x.vma ${IMAGES}
         zstd -q -c x.vma > c.vma.zst
         cat x.vma | zstd -q -1 -c > p.vma.zst
         head -c 1000000 x.vma | zstd -q -c > parts.vma.zst
         tail -c +1000001 x.vma | zstd -q -19 --no-check -c >> parts.vma.zst
         printf '\\x5e\\x2a\\x4d\\x18\\x04\\x00\\x00\\x00skip' > s.vma.zst
         cat c.vma.zst >> s.vma.zst
         printf '\\x50\\x2a\\x4d\\x18\\x00\\x00\\x00\\x00' >> s.vma.zst`,
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      for (const name of ["c", "p", "parts", "s"]) {
        const archive = `${name}.vma.zst`;
        const t = await sh(`zstd -dc ${archive} | cmp - x.vma`, dir);
        assert.equal(t.code, 0, `${archive}: ${t.stderr}${t.text}`);
        const v = await vmabak(["verify", `${dir}/${archive}`]);
        assert.equal(v.code, 0, `${archive}: ${v.stderr}`);
        await extractsImages(dir, `$VMABAK extract ${archive} out`);
        await extractsImages(dir, `cat ${archive} | $VMABAK extract - out`);
      }
      // The real Proxmox fixture, compressed by the tool.
      const f = await sh(
        `(zstd -q -c ${FIXTURE} || true) | $VMABAK list -`,
        dir,
      );
      assert.equal(f.code, 0, f.stderr);
      assert.match(f.text, /devname: drive-scsi0/);
    });
  },
});

Deno.test({
  name: "bad zstd input and levels: one-line errors, exit codes 1 and 2",
  ignore: !ZSTD,
  async fn() {
    await withTempDir(async (dir) => {
      await makeImages(dir);
      const r = await sh(
        `set -e; $VMABAK create x.vma.zst ${IMAGES}
         head -c 100000 x.vma.zst > cut.vma.zst
         cat x.vma.zst > junk.vma.zst; printf 'JUNKJUNK' >> junk.vma.zst`,
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      const cut = await vmabak(["verify", `${dir}/cut.vma.zst`]);
      assert.equal(cut.code, 1);
      assert.match(oneLine(cut.stderr), /^vmabak verify: Cannot /);
      const junk = await vmabak(["verify", `${dir}/junk.vma.zst`]);
      assert.equal(junk.code, 1);
      assert.match(oneLine(junk.stderr), /no zstd frame at byte/);
      for (const level of ["0", "20", "x"]) {
        const bad = await vmabak([
          "create",
          `--zstd=${level}`,
          `${dir}/bad.vma`,
          `${dir}/a.raw`,
        ]);
        assert.equal(bad.code, 2);
        assert.match(oneLine(bad.stderr), /--zstd level must be an integer/);
      }
      const left = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.ok(!left.some((n) => n.startsWith("bad.vma")), left.join(" "));
    });
  },
});
