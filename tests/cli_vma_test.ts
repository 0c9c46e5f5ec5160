import assert from "node:assert/strict";
import {
  assertSameRaw,
  FIXTURE,
  haveTool,
  oneLine,
  sh,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";

const QEMU_IMG = await haveTool("qemu-img");

/** Two images: an odd-sized mix of data, zeros and text; a sparse one with data at both ends. */
async function makeImages(dir: string): Promise<void> {
  const r = await sh(
    `set -e; set +o pipefail; cd ${dir}
     head -c 1000000 /dev/urandom > a.raw; head -c 300000 /dev/zero >> a.raw
     (yes "vmabak test line" || true) | head -c 1900000 >> a.raw; head -c 1536 /dev/urandom >> a.raw
     truncate -s 20M b.raw; printf 'START' | dd of=b.raw conv=notrunc status=none
     printf 'END' | dd of=b.raw bs=1 seek=$((20*1024*1024-3)) conv=notrunc status=none
     printf 'name: test\\nmemory: 64\\n' > qemu-server.conf`,
  );
  assert.equal(r.code, 0, r.stderr);
}

Deno.test("create, list, config, verify, extract round-trip images exactly", async () => {
  await withTempDir(async (dir) => {
    await makeImages(dir);
    const c = await vmabak([
      "create",
      `${dir}/x.vma`,
      "-c",
      `${dir}/qemu-server.conf`,
      "drive-a=" + `${dir}/a.raw`,
      `${dir}/b.raw`,
    ]);
    assert.equal(c.code, 0, c.stderr);
    const list = await vmabak(["list", `${dir}/x.vma`]);
    assert.equal(list.code, 0);
    const lines = list.text.trimEnd().split("\n");
    assert.equal(lines[0], "CFG: size: 22 name: qemu-server.conf");
    assert.equal(lines[1], "DEV: dev_id=1 size: 3201536 devname: drive-a"); // 3201536 = 3201536 rounded up to 512
    assert.equal(lines[2], "DEV: dev_id=2 size: 20971520 devname: disk1");
    assert.match(
      lines[3]!,
      /^CTIME: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/,
    );
    const json = JSON.parse(
      (await vmabak(["list", "--json", `${dir}/x.vma`])).text,
    );
    assert.equal(json.devices.length, 2);
    const cfg = await vmabak(["config", `${dir}/x.vma`]);
    assert.deepEqual(
      cfg.stdout,
      await Deno.readFile(`${dir}/qemu-server.conf`),
    );
    assert.equal((await vmabak(["verify", `${dir}/x.vma`])).code, 0);
    const x = await vmabak(["extract", `${dir}/x.vma`, `${dir}/out`]);
    assert.equal(x.code, 0, x.stderr);
    assert.deepEqual(
      await Deno.readFile(`${dir}/out/qemu-server.conf`),
      await Deno.readFile(`${dir}/qemu-server.conf`),
    );
    for (
      const [orig, got] of [["a.raw", "disk-drive-a.raw"], [
        "b.raw",
        "disk-disk1.raw",
      ]]
    ) {
      if (QEMU_IMG) {
        await assertSameRaw(`${dir}/${orig}`, `${dir}/out/${got}`);
      }
      const a = await Deno.readFile(`${dir}/${orig}`);
      const b = await Deno.readFile(`${dir}/out/${got}`);
      assert.equal(b.length, Math.ceil(a.length / 512) * 512);
      assert.deepEqual(b.subarray(0, a.length), a);
      assert.ok(b.subarray(a.length).every((v) => v === 0));
    }
    // The sparse image stays sparse: 20 MiB of size, a few blocks on disk.
    const st = await Deno.stat(`${dir}/out/disk-disk1.raw`);
    assert.ok(
      st.blocks! * 512 < 1 << 20,
      `extracted sparse file uses ${st.blocks! * 512} bytes`,
    );
    // The archive stores no zero blocks: far smaller than the images.
    assert.ok((await Deno.stat(`${dir}/x.vma`)).size < 3_300_000);
  });
});

Deno.test("create - and verify -, extract - work through pipes", async () => {
  await withTempDir(async (dir) => {
    await makeImages(dir);
    const r = await sh(
      `$VMABAK create - a.raw b.raw | $VMABAK verify -v - && $VMABAK create - a.raw | $VMABAK extract - out`,
      dir,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /valid and complete/);
    const a = await Deno.readFile(`${dir}/a.raw`);
    assert.deepEqual(
      (await Deno.readFile(`${dir}/out/disk-disk0.raw`)).subarray(0, a.length),
      a,
    );
  });
});

Deno.test("the Proxmox fixture: list and config work, verify reports missing cluster 23", async () => {
  const list = await vmabak(["list", FIXTURE]);
  assert.equal(list.code, 0);
  assert.deepEqual(list.text.trimEnd().split("\n").slice(0, 2), [
    "CFG: size: 417 name: qemu-server.conf",
    "DEV: dev_id=1 size: 10737418240 devname: drive-scsi0",
  ]);
  const cfg = await vmabak(["config", FIXTURE]);
  assert.equal(cfg.code, 0);
  assert.equal(cfg.stdout.length, 417);
  const v = await vmabak(["verify", FIXTURE]);
  assert.equal(v.code, 1);
  assert.match(
    oneLine(v.stderr),
    /detected missing cluster 23 for stream drive-scsi0/,
  );
});

Deno.test("bad input: one-line errors and exit codes 1 and 2, nothing left behind", async () => {
  await withTempDir(async (dir) => {
    await makeImages(dir);
    const missing = await vmabak(["verify", `${dir}/nope.vma`]);
    assert.equal(missing.code, 1);
    assert.match(
      oneLine(missing.stderr),
      /Cannot open archive .*nope.vma: no such file/,
    );
    const usage = await vmabak(["extract", `${dir}/x.vma`]);
    assert.equal(usage.code, 2);
    oneLine(usage.stderr);
    const badOpt = await vmabak(["list", "--frob", "x"]);
    assert.equal(badOpt.code, 2);
    const noImage = await vmabak([
      "create",
      `${dir}/y.vma`,
      `${dir}/a.raw`,
      `${dir}/nothere.raw`,
    ]);
    assert.equal(noImage.code, 1);
    assert.match(oneLine(noImage.stderr), /Cannot read image .*nothere.raw/);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.startsWith("y.vma")
      ),
      [],
    );
    const notVma = await vmabak(["list", `${dir}/a.raw`]);
    assert.equal(notVma.code, 1);
    assert.match(oneLine(notVma.stderr), /wrong magic number/);
    assert.equal(
      (await vmabak(["create", `${dir}/z.vma`, `${dir}/a.raw`])).code,
      0,
    );
    const exists = await vmabak(["create", `${dir}/z.vma`, `${dir}/a.raw`]);
    assert.equal(exists.code, 1);
    assert.match(oneLine(exists.stderr), /already exists/);
    await Deno.mkdir(`${dir}/t`);
    const target = await vmabak(["extract", `${dir}/z.vma`, `${dir}/t`]);
    assert.equal(target.code, 1);
    assert.match(oneLine(target.stderr), /already exists/);
    const trunc = await sh(`head -c 100000 z.vma | $VMABAK verify -`, dir);
    assert.equal(trunc.code, 1);
    assert.match(oneLine(trunc.stderr), /short vma extent/);
  });
});
