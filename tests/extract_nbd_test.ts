/** `extract --to NBD-URI` into qemu-nbd serving qcow2 images. */
import assert from "node:assert/strict";
import { startQemuNbd } from "./helpers/nbd_peers.ts";
import {
  haveTool,
  oneLine,
  qemuImg,
  run,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";
import { SeededRandom } from "./helpers/random.ts";

const ready = (await haveTool("qemu-nbd")) && (await haveTool("qemu-img")) &&
  (await haveTool("qemu-io"));

/** 3 MiB + 1 KiB: random clusters, zero clusters, half-zero clusters. */
function image(seed: number): Uint8Array {
  const img = new Uint8Array(3 * 1024 * 1024 + 1024);
  const rnd = new SeededRandom(seed);
  for (let b = 0; b * 4096 < img.length; b++) {
    if ((b >> 4) % 3 === 1 || b % 5 === 0) continue;
    const end = Math.min(img.length, (b + 1) * 4096);
    img.set(rnd.bytes(end - b * 4096), b * 4096);
  }
  return img;
}

Deno.test({
  name:
    "extract --to qemu-nbd on qcow2 (pre-filled with junk) equals extract to a file, each disk by its name",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/a.raw`, image(1));
      await Deno.writeFile(`${dir}/b.raw`, image(2));
      const c = await vmabak([
        "create",
        `${dir}/x.vma`,
        `drive-scsi0=${dir}/a.raw`,
        `drive-virtio1=${dir}/b.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const e = await vmabak(["extract", `${dir}/x.vma`, `${dir}/out`]);
      assert.equal(e.code, 0, e.stderr);
      for (const name of ["drive-scsi0", "drive-virtio1"]) {
        const q = `${dir}/${name}.qcow2`;
        await qemuImg(["create", "-q", "-f", "qcow2", q, "4M"]);
        // Junk everywhere: zero ranges must really be written as zeros.
        const junk = await run("qemu-io", [
          "-f",
          "qcow2",
          q,
          "-c",
          "write -P 0xaa 0 4M",
        ]);
        assert.equal(junk.code, 0, junk.stderr);
      }
      // qemu-nbd serves one image per process: one server per disk, `{}` in the URI names the export.
      const servers = await Promise.all(
        ["drive-scsi0", "drive-virtio1"].map((name) =>
          startQemuNbd(`${dir}/${name}.qcow2`, {
            format: "qcow2",
            exportName: name,
          })
        ),
      );
      try {
        for (const [i, name] of ["drive-scsi0", "drive-virtio1"].entries()) {
          // Only this disk's server: a one-disk archive per server.
          const one = await vmabak([
            "create",
            `${dir}/${name}.vma`,
            `${name}=${dir}/${i === 0 ? "a" : "b"}.raw`,
          ]);
          assert.equal(one.code, 0, one.stderr);
          const r = await vmabak([
            "extract",
            `${dir}/${name}.vma`,
            "--to",
            `nbd+unix:///{}?socket=${servers[i]!.path}`,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(
            r.stderr,
            new RegExp(`extracted ${name} to NBD export "${name}"`),
          );
        }
      } finally {
        for (const s of servers) await s.stop();
      }
      for (const name of ["drive-scsi0", "drive-virtio1"]) {
        const size = (await Deno.stat(`${dir}/out/disk-${name}.raw`)).size;
        const cmp = await run("qemu-img", [
          "compare",
          "-f",
          "raw",
          `${dir}/out/disk-${name}.raw`,
          `json:{"driver":"raw","size":${size},"file":{"driver":"qcow2","file":{"driver":"file","filename":"${dir}/${name}.qcow2"}}}`,
        ]);
        assert.equal(cmp.code, 0, cmp.text + cmp.stderr);
      }
    });
  },
});

Deno.test({
  name:
    "extract --to refuses a too small export, two disks to one export and a bad URI with one line",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/a.raw`, image(3));
      await vmabak([
        "create",
        `${dir}/x.vma`,
        `d0=${dir}/a.raw`,
        `d1=${dir}/a.raw`,
      ]);
      await vmabak(["create", `${dir}/one.vma`, `d0=${dir}/a.raw`]);
      await run("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        `${dir}/s.qcow2`,
        "1M",
      ]);
      const server = await startQemuNbd(`${dir}/s.qcow2`, {
        format: "qcow2",
        exportName: "small",
      });
      try {
        const small = await vmabak([
          "extract",
          `${dir}/one.vma`,
          "--to",
          `nbd+unix:///small?socket=${server.path}`,
        ]);
        assert.equal(small.code, 1);
        assert.match(
          oneLine(small.stderr),
          /Cannot extract d0 to NBD export "small": it has 1048576 bytes, the disk 3146752/,
        );
        const two = await vmabak([
          "extract",
          `${dir}/x.vma`,
          "--to",
          `nbd+unix:///small?socket=${server.path}`,
        ]);
        assert.equal(two.code, 1);
        assert.match(oneLine(two.stderr), /2 disks would go to one export/);
      } finally {
        await server.stop();
      }
      const bad = await vmabak([
        "extract",
        `${dir}/one.vma`,
        "--to",
        "http://x/y",
      ]);
      assert.equal(bad.code, 1);
      assert.match(oneLine(bad.stderr), /Cannot use NBD target http:\/\/x\/y/);
      const usage = await vmabak([
        "extract",
        `${dir}/one.vma`,
        `${dir}/d`,
        "--to",
        "nbd://h/x",
      ]);
      assert.equal(usage.code, 2);
    });
  },
});

Deno.test({
  name:
    "extract --format qcow2 writes 0600 qcow2 images equal to the raw extract, holes unallocated, vmstate skipped",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/a.raw`, image(5));
      await Deno.writeFile(`${dir}/vs.bin`, new Uint8Array(70_000).fill(9));
      const c = await vmabak([
        "create",
        `${dir}/x.vma`,
        `drive-scsi0=${dir}/a.raw`,
        `vmstate=${dir}/vs.bin`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const q = await vmabak([
        "extract",
        `${dir}/x.vma`,
        `${dir}/q`,
        "--format",
        "qcow2",
      ]);
      assert.equal(q.code, 0, q.stderr);
      assert.match(q.stderr, /skipped vmstate/);
      const file = `${dir}/q/disk-drive-scsi0.qcow2`;
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
      const cmp = await run("qemu-img", [
        "compare",
        "-f",
        "qcow2",
        "-F",
        "raw",
        file,
        `${dir}/a.raw`,
      ]);
      assert.equal(cmp.code, 0, cmp.text + cmp.stderr);
      const map = await run("qemu-img", [
        "map",
        "--output=json",
        "-f",
        "qcow2",
        file,
      ]);
      const allocated =
        (JSON.parse(map.text) as { length: number; data: boolean }[])
          .filter((e) => e.data).reduce((a, e) => a + e.length, 0);
      assert.ok(
        allocated < (await Deno.stat(`${dir}/a.raw`)).size,
        `${allocated} bytes allocated`,
      );
      const bad = await vmabak([
        "extract",
        `${dir}/x.vma`,
        `${dir}/r`,
        "--format",
        "vmdk",
      ]);
      assert.equal(bad.code, 2);
    });
  },
});
