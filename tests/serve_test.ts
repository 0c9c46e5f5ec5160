/**
import { Buffer } from "node:buffer";
 * `vmabak serve` against real NBD clients: nbdinfo, qemu-img, qemu-io,
 * nbdcopy, and QEMU booting from a served export through a qcow2 overlay.
 */
import assert from "node:assert/strict";
import { QmpClient } from "../lib/qmp/client.ts";
import { diskCounter } from "./helpers/boot_sector.ts";
import { haveQemu, QEMU } from "./helpers/qemu_vm.ts";
import { haveTool, oneLine, run, vmabak, withTempDir } from "./helpers/run.ts";
import { serve, testImage } from "./helpers/serve.ts";

const FIXTURE = new URL(
  "../../shared/fixtures/vzdump-qemu-101-2026_11_30-12_00_00.vma.zst",
  import.meta.url,
).pathname;
const tools = await Promise.all(
  ["nbdinfo", "nbdcopy", "qemu-io", "zstd"].map((t) => haveTool(t)),
);
const ready = tools.every(Boolean) && await haveQemu();

function check(r: { code: number; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what} failed: ${r.stderr}`);
}

Deno.test({
  name:
    "serve: exports read by nbdinfo --map, qemu-img compare, qemu-io and nbdcopy equal the disks; socket removed on SIGINT",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      const img = testImage();
      await Deno.writeFile(`${dir}/a.raw`, img);
      const vmstate = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
      await Deno.writeFile(`${dir}/vmstate.bin`, vmstate);
      check(
        await vmabak([
          "create",
          `${dir}/x.vma`,
          `drive-scsi0=${dir}/a.raw`,
          `vmstate=${dir}/vmstate.bin`,
        ]),
        "create",
      );
      check(await vmabak(["extract", `${dir}/x.vma`, `${dir}/out`]), "x");
      const s = await serve(`${dir}/x.vma`, ["--socket", `${dir}/s.sock`]);
      try {
        // Exports, read-only, multi-conn.
        const list = await run("nbdinfo", ["--list", "--json", s.uri("")]);
        check(list, "nbdinfo --list");
        const exports = JSON.parse(list.text).exports as {
          "export-name": string;
          "export-size": number;
          is_read_only: boolean;
          can_multi_conn: boolean;
        }[];
        assert.deepEqual(
          exports.map((e) => e["export-name"]).sort(),
          ["drive-scsi0", "vmstate"],
        );
        const disk = exports.find((e) => e["export-name"] === "drive-scsi0")!;
        assert.equal(disk["export-size"], img.length);
        assert.ok(disk.is_read_only && disk.can_multi_conn);

        // Holes exactly where the archive has zero clusters.
        const map = await run("nbdinfo", [
          "--map",
          "--json",
          s.uri("drive-scsi0"),
        ]);
        check(map, "nbdinfo --map");
        const holes = new Set<number>();
        for (
          const e of JSON.parse(map.text) as {
            offset: number;
            length: number;
            type: number;
          }[]
        ) {
          if (e.type !== 3) continue;
          for (let o = e.offset; o < e.offset + e.length; o += 65536) {
            holes.add(o / 65536);
          }
        }
        for (let c = 0; c * 65536 < img.length; c++) {
          const zero = img.subarray(c * 65536, (c + 1) * 65536).every((b) =>
            b === 0
          );
          assert.equal(
            holes.has(c),
            zero,
            `cluster ${c}: hole ${holes.has(c)}`,
          );
        }

        // The whole disk, by QEMU's own comparison.
        check(
          await run("qemu-img", [
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            `${dir}/a.raw`,
            s.uri("drive-scsi0"),
          ]),
          "qemu-img compare",
        );

        // Reads spanning extents, partial blocks and partial clusters.
        for (
          const [off, len] of [
            [0, 512],
            [65536 * 11 + 100, 200_000],
            [4095, 3],
            [65536 * 12 + 4000, 9000],
            [img.length - 1536, 1536],
            [3_000_000, 2_000_000],
          ]
        ) {
          await assertQemuIoReads(s.uri("drive-scsi0"), img, off, len);
        }

        // nbdcopy (several connections, requests in flight) equals extract.
        for (
          const [name, file] of [["drive-scsi0", "disk-drive-scsi0.raw"], [
            "vmstate",
            "vmstate.bin",
          ]]
        ) {
          check(
            await run("nbdcopy", [s.uri(name!), `${dir}/${name}.copy`]),
            "nbdcopy",
          );
          assert.deepEqual(
            await Deno.readFile(`${dir}/${name}.copy`),
            await Deno.readFile(`${dir}/out/${file}`),
          );
        }
        const vs = await Deno.readFile(`${dir}/vmstate.copy`);
        assert.deepEqual(vs.subarray(0, vmstate.length), vmstate);

        // A missing export is a clean NBD error; a killed client harms nobody.
        const missing = await run("nbdinfo", [s.uri("drive-nope")]);
        assert.notEqual(missing.code, 0);
        assert.match(missing.stderr, /drive-nope|unknown|not found|export/i);
        const victim = new Deno.Command("nbdcopy", {
          args: [s.uri("drive-scsi0"), "null:"],
          stdout: "null",
          stderr: "null",
        }).spawn();
        victim.kill("SIGKILL");
        await victim.status;
        check(
          await run("qemu-img", [
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            `${dir}/a.raw`,
            s.uri("drive-scsi0"),
          ]),
          "qemu-img compare after a killed client",
        );
      } finally {
        const status = await s.stop();
        assert.equal(status.code, 0, s.lines.join("\n"));
      }
      await assert.rejects(Deno.stat(`${dir}/s.sock`), Deno.errors.NotFound);
    });
  },
});

/** `qemu-io -r -c "read -v OFF LEN"` through `uri` gives `img`'s bytes there. */
async function assertQemuIoReads(
  uri: string,
  img: Uint8Array,
  off: number,
  len: number,
): Promise<void> {
  const r = await run("qemu-io", [
    "-r",
    "-f",
    "raw",
    uri,
    "-c",
    `read -v ${off} ${len}`,
  ]);
  check(r, "qemu-io read");
  assert.deepEqual(
    parseDump(r.text, off, len),
    img.subarray(off, off + len),
    `read ${off}+${len}`,
  );
}

/** The bytes of `qemu-io -c "read -v OFF LEN"` output. */
function parseDump(text: string, off: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{8}):\s+((?:[0-9a-f]{2}\s)+)/.exec(line);
    if (!m) continue;
    const at = parseInt(m[1]!, 16) - off;
    m[2]!.trim().split(/\s+/).forEach((h, i) => {
      if (at + i >= 0 && at + i < len) out[at + i] = parseInt(h, 16);
    });
  }
  return out;
}

Deno.test({
  name:
    "serve --tcp PORT binds 127.0.0.1 and says so; SIGTERM stops it with status 0",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/a.raw`, testImage());
      check(
        await vmabak(["create", `${dir}/x.vma`, `d=${dir}/a.raw`]),
        "create",
      );
      const s = await serve(`${dir}/x.vma`, ["--tcp", "0"]);
      try {
        const line = s.lines.find((l) => l.startsWith("listening"))!;
        assert.match(line, /tcp 127\.0\.0\.1:\d+ .*loopback only/);
        check(
          await run("qemu-img", [
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            `${dir}/a.raw`,
            s.uri("d"),
          ]),
          "qemu-img compare over tcp",
        );
      } finally {
        assert.equal((await s.stop("SIGTERM")).code, 0);
      }
    });
  },
});

Deno.test({
  name:
    "serve refuses a corrupt archive at indexing and a zstd archive with one line each",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeFile(`${dir}/a.raw`, testImage());
      check(
        await vmabak(["create", `${dir}/x.vma`, `d=${dir}/a.raw`]),
        "create",
      );
      const bytes = await Deno.readFile(`${dir}/x.vma`);
      // The second extent's header starts after the first extent: break its uuid.
      let at = new DataView(bytes.buffer).getUint32(56);
      const blocks = new DataView(bytes.buffer).getUint16(at + 6);
      at += 512 + blocks * 4096;
      bytes[at + 10] ^= 0xff;
      await Deno.writeFile(`${dir}/bad.vma`, bytes);
      const bad = await vmabak([
        "serve",
        `${dir}/bad.vma`,
        "--socket",
        `${dir}/s.sock`,
      ]);
      assert.equal(bad.code, 1);
      assert.match(
        oneLine(bad.stderr),
        /Cannot read extent 1 .*(chechsum|uuid)/,
      );
      await assert.rejects(Deno.stat(`${dir}/s.sock`), Deno.errors.NotFound);

      bytes[at + 10] ^= 0xff; // whole again, but cut short
      await Deno.writeFile(
        `${dir}/short.vma`,
        bytes.subarray(0, at + 512 + 100),
      );
      const short = await vmabak([
        "serve",
        `${dir}/short.vma`,
        "--socket",
        `${dir}/s.sock`,
      ]);
      assert.equal(short.code, 1);
      assert.match(
        oneLine(short.stderr),
        /Cannot read extent 1 .*short vma extent/,
      );

      const z = await run("zstd", [
        "-q",
        `${dir}/x.vma`,
        "-o",
        `${dir}/x.vma.zst`,
      ]);
      check(z, "zstd");
      const zr = await vmabak([
        "serve",
        `${dir}/x.vma.zst`,
        "--socket",
        `${dir}/s.sock`,
      ]);
      assert.equal(zr.code, 1);
      assert.match(oneLine(zr.stderr), /decompress it first \(zstd -d /);

      const usage = await vmabak(["serve", `${dir}/x.vma`]);
      assert.equal(usage.code, 2);
    });
  },
});

Deno.test({
  name:
    "QEMU boots the Proxmox fixture from a served export through a qcow2 overlay; after block-stream the overlay holds the whole disk",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      check(
        await run("zstd", ["-q", "-d", FIXTURE, "-o", `${dir}/f.vma`]),
        "zstd -d",
      );
      check(
        await vmabak(["extract", `${dir}/f.vma`, `${dir}/out`]),
        "extract",
      );
      const s = await serve(`${dir}/f.vma`, ["--socket", `${dir}/s.sock`]);
      let qemu: Deno.ChildProcess | undefined;
      let qmp: QmpClient | undefined;
      try {
        check(
          await run("qemu-img", [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            s.uri("drive-scsi0"),
            `${dir}/ovl.qcow2`,
          ]),
          "qemu-img create overlay",
        );
        qemu = new Deno.Command(QEMU, {
          args: [
            "-machine",
            "q35,accel=tcg",
            "-m",
            "64",
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
            `unix:${dir}/qmp.sock,server=on,wait=off`,
            "-blockdev",
            `driver=qcow2,node-name=ovl,file.driver=file,file.filename=${dir}/ovl.qcow2`,
            "-device",
            "virtio-scsi-pci,id=scsi0",
            "-device",
            "scsi-hd,bus=scsi0.0,drive=ovl,bootindex=0",
          ],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        for (let i = 0; i < 200 && qmp === undefined; i++) {
          qmp = await QmpClient.connect(`${dir}/qmp.sock`).catch(() =>
            undefined
          );
          if (qmp === undefined) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(qmp, "QEMU did not open its QMP socket");
        const done = new Promise<Record<string, unknown>>((resolve) =>
          qmp!.onEvent((e) => {
            if (e.event === "BLOCK_JOB_COMPLETED") resolve(e.data ?? {});
          })
        );
        // The guest runs from the archive: its counter reaches the overlay.
        await qmp.execute("block-stream", { "job-id": "copy", device: "ovl" });
        const completed = await done;
        assert.equal(completed.error, undefined, JSON.stringify(completed));
        // Let the guest run from the local overlay a little longer.
        await new Promise((r) => setTimeout(r, 1500));
      } finally {
        await qmp?.execute("quit").catch(() => {});
        await qmp?.close().catch(() => {});
        try {
          qemu?.kill("SIGKILL");
        } catch { /* gone */ }
        await qemu?.output();
      }
      // The archive is no longer needed: the overlay alone is the disk.
      assert.equal((await s.stop()).code, 0);
      check(
        await run("qemu-img", [
          "rebase",
          "-u",
          "-f",
          "qcow2",
          "-b",
          "",
          `${dir}/ovl.qcow2`,
        ]),
        "rebase",
      );
      check(
        await run("qemu-img", [
          "convert",
          "-f",
          "qcow2",
          "-O",
          "raw",
          `${dir}/ovl.qcow2`,
          `${dir}/local.raw`,
        ]),
        "convert",
      );
      const local = await Deno.readFile(`${dir}/local.raw`);
      const archived = await Deno.readFile(`${dir}/out/disk-drive-scsi0.raw`);
      // The guest ran from the archive: its boot sector counted on.
      assert.ok(
        diskCounter(local) > diskCounter(archived),
        `counter ${diskCounter(local)} after ${diskCounter(archived)}`,
      );
      assert.equal(local.length, archived.length);
      // Equal except the sector the guest's counter keeps writing.
      const sector = 2048 * 512;
      local.fill(0, sector, sector + 512);
      archived.fill(0, sector, sector + 512);
      assert.ok(
        Buffer.compare(local, archived) === 0,
        "overlay differs from the archived disk",
      );
    });
  },
});

Deno.test({
  name:
    "serve reads a vmabak .vma.zst through its seek table (random reads equal the disk; zstd -t accepts the archive)",
  ignore: !ready,
  async fn() {
    await withTempDir(async (dir) => {
      const img = new Uint8Array(12 * 1024 * 1024);
      img.set(testImage(), 0);
      img.set(testImage().subarray(0, 4 * 1024 * 1024), 8 * 1024 * 1024);
      await Deno.writeFile(`${dir}/a.raw`, img);
      check(
        await vmabak([
          "create",
          "--zstd=1",
          `${dir}/x.vma.zst`,
          `drive-scsi0=${dir}/a.raw`,
        ]),
        "create --zstd",
      );
      check(await run("zstd", ["-q", "-t", `${dir}/x.vma.zst`]), "zstd -t");
      const list = await run("zstd", ["-l", `${dir}/x.vma.zst`]);
      assert.match(list.text, /^\s*\d+\s+1\s/m, list.text); // one skippable frame
      const s = await serve(`${dir}/x.vma.zst`, ["--socket", `${dir}/s.sock`]);
      try {
        check(
          await run("qemu-img", [
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            `${dir}/a.raw`,
            s.uri("drive-scsi0"),
          ]),
          "qemu-img compare",
        );
        let seed = 3;
        const spans: [number, number][] = [];
        for (let i = 0; i < 12; i++) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          const off = seed % (img.length - 300_000);
          const len = 1 + (seed >>> 8) % 300_000;
          spans.push([off, len]);
        }
        for (const [off, len] of spans) {
          await assertQemuIoReads(s.uri("drive-scsi0"), img, off, len);
        }
      } finally {
        assert.equal((await s.stop()).code, 0);
      }
    });
  },
});
