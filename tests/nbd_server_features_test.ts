import assert from "node:assert/strict";
import { NbdClient } from "../lib/nbd/client.ts";
import { NbdOptionError } from "../lib/nbd/errors.ts";
import {
  NBD_CMD,
  NBD_E,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
} from "../lib/nbd/format.ts";
import {
  decodeOptionReplyHeader,
  encodeClientFlags,
  encodeInfoRequest,
  encodeOption,
} from "../lib/nbd/handshake.ts";
import { makePrivateTempDir } from "../lib/io/safe_file.ts";
import {
  type BlockExtent,
  type NbdExportHandler,
  NbdServer,
} from "../lib/nbd/server.ts";
import { decodeSimpleReply, encodeRequest } from "../lib/nbd/transmission.ts";
import { assertSameRaw, haveTool, run } from "./helpers/run.ts";

const HAVE = await haveTool("nbdinfo") && await haveTool("nbdcopy") &&
  await haveTool("qemu-img") && await haveTool("qemu-io");
const MiB = 1024 * 1024;
const ZERO = NBD_STATE_HOLE | NBD_STATE_ZERO;

/**
 * A read-only disk image in memory made of data and zero runs, with
 * block status from that layout. `delayMs` slows reads down.
 */
function sparseDisk(layout: [length: number, zero: boolean][], delayMs = 0) {
  const runs: BlockExtent[] = [];
  let size = 0;
  for (const [length, zero] of layout) {
    runs.push({ offset: size, length, flags: zero ? ZERO : 0 });
    size += length;
  }
  const mem = new Uint8Array(size);
  for (const r of runs) {
    if (r.flags !== 0) continue;
    for (let at = r.offset; at < r.offset + r.length; at += 65536) {
      crypto.getRandomValues(
        mem.subarray(at, Math.min(at + 65536, r.offset + r.length)),
      );
    }
  }
  const stats = { statusCalls: 0, reads: 0 };
  const handler: NbdExportHandler = {
    async read(offset, into) {
      stats.reads++;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      into.set(mem.subarray(offset, offset + into.length));
    },
    blockStatus(offset, length) {
      stats.statusCalls++;
      const out = runs.filter((r) =>
        r.offset + r.length > offset && r.offset < offset + length
      ).map((r) => ({ ...r }));
      const first = out[0]!;
      first.length -= offset - first.offset;
      first.offset = offset;
      return Promise.resolve(out); // the last one may run past the request: the server clips
    },
  };
  return { mem, size, runs, handler, stats };
}

const LAYOUT: [number, boolean][] = [
  [MiB, false],
  [3 * MiB, true],
  [65536, false],
  [2 * MiB - 65536, true],
  [MiB + 4096, false],
];

async function withServers(
  fn: (ctx: {
    unixUri: (name: string) => string;
    tcpUri: (name: string) => string;
    dir: string;
    unix: NbdServer;
    tcp: NbdServer;
    disk: ReturnType<typeof sparseDisk>;
  }) => Promise<void>,
  delayMs = 0,
) {
  const dir = await makePrivateTempDir("vmabak-nbdfeat-");
  const disk = sparseDisk(LAYOUT, delayMs);
  const exports = [
    {
      name: "drive-scsi0",
      size: disk.size,
      readOnly: true,
      description: "first disk",
      handler: disk.handler,
    },
    { name: "vmstate", size: 65536, readOnly: true, handler: disk.handler },
  ];
  const unix = await NbdServer.listen({ path: `${dir}/nbd.sock`, exports });
  const tcp = await NbdServer.listen({
    hostname: "127.0.0.1",
    port: 0,
    exports,
  });
  try {
    await Deno.writeFile(`${dir}/src.raw`, disk.mem);
    const a = tcp.address as { hostname: string; port: number };
    await fn({
      unixUri: (n) => `nbd+unix:///${n}?socket=${dir}/nbd.sock`,
      tcpUri: (n) => `nbd://${a.hostname}:${a.port}/${n}`,
      dir,
      unix,
      tcp,
      disk,
    });
    assert.equal(unix.error, undefined);
    assert.equal(tcp.error, undefined);
  } finally {
    await unix.close();
    await tcp.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** nbdinfo --map --json as [offset, length, type] rows. */
async function map(uri: string): Promise<number[][]> {
  const r = await run("nbdinfo", ["--json", "--map", uri]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.text).map((e: Record<string, number>) => [
    e.offset,
    e.length,
    e.type,
  ]);
}

Deno.test({
  name:
    "NbdServer read-only exports on unix and TCP: nbdinfo --map/--list, nbdcopy, qemu-img compare and map, qemu-io",
  ignore: !HAVE,
  async fn() {
    await withServers(async ({ unixUri, tcpUri, dir, disk }) => {
      const want = disk.runs.map((r) => [r.offset, r.length, r.flags]);
      assert.deepEqual(await map(unixUri("drive-scsi0")), want);
      assert.deepEqual(await map(tcpUri("drive-scsi0")), want);
      assert.ok(disk.stats.statusCalls >= 2);

      const list = await run("nbdinfo", ["--json", "--list", unixUri("")]);
      assert.equal(list.code, 0, list.stderr);
      const exports = JSON.parse(list.text).exports;
      assert.deepEqual(
        exports.map((e: Record<string, unknown>) => e["export-name"]),
        ["drive-scsi0", "vmstate"],
      );
      const e0 = exports[0];
      assert.equal(e0["description"], "first disk");
      assert.equal(e0["export-size"], disk.size);
      assert.equal(e0["is_read_only"], true);
      assert.equal(e0["can_multi_conn"], true);
      assert.equal(e0["can_trim"], false);
      assert.ok(
        e0["contexts"].includes("base:allocation"),
        JSON.stringify(e0["contexts"]),
      );

      for (const uri of [unixUri("drive-scsi0"), tcpUri("drive-scsi0")]) {
        const out = `${dir}/copy.raw`;
        await Deno.remove(out).catch(() => {});
        const cp = await run("nbdcopy", ["--connections=4", uri, out]);
        assert.equal(cp.code, 0, cp.stderr);
        assert.deepEqual(await Deno.readFile(out), disk.mem);
        await assertSameRaw(`${dir}/src.raw`, uri);
      }

      // QEMU's NBD client: block status through qemu-img map, reads through qemu-io.
      const qmap = await run("qemu-img", [
        "map",
        "--output=json",
        "-f",
        "raw",
        unixUri("drive-scsi0"),
      ]);
      assert.equal(qmap.code, 0, qmap.stderr);
      assert.deepEqual(
        JSON.parse(qmap.text).map((e: Record<string, unknown>) => [
          e.start,
          e.length,
          e.zero ? ZERO : 0,
        ]),
        want,
      );
      const io = await run("qemu-io", [
        "-r",
        "-f",
        "raw",
        unixUri("drive-scsi0"),
        "-c",
        `read -P 0 ${MiB} ${3 * MiB}`,
        "-c",
        `read -v ${disk.size - 16} 16`,
      ]);
      assert.equal(io.code, 0, io.stderr);
      assert.doesNotMatch(io.text, /Pattern verification failed/);
      const tail = [...disk.mem.subarray(disk.size - 16)].map((b) =>
        b.toString(16).padStart(2, "0")
      ).join(" ");
      assert.ok(io.text.includes(tail), io.text);
    });
  },
});

Deno.test({
  name:
    "NbdServer with NbdClient: structured replies, block status clipped, EPERM on writes",
  ignore: !HAVE,
  async fn() {
    await withServers(async ({ dir, disk, tcp }) => {
      const a = tcp.address as { hostname: string; port: number };
      for (const address of [{ path: `${dir}/nbd.sock` }, a]) {
        const c = await NbdClient.connect({
          address,
          exportName: "drive-scsi0",
        });
        try {
          assert.ok(c.structuredReplies && c.readOnly && c.canMultiConn);
          assert.ok(c.hasMetaContext("base:allocation"));
          assert.deepEqual(await c.blockStatus(MiB / 2, MiB), [
            { offset: MiB / 2, length: MiB / 2, flags: 0 },
            { offset: MiB, length: MiB / 2, flags: ZERO },
          ]);
          const all = new Uint8Array(disk.size);
          await c.read(0, all);
          assert.deepEqual(all, disk.mem);
        } finally {
          await c.close();
        }
      }
      // A write by hand (NbdClient refuses read-only exports itself).
      const conn = await Deno.connect({
        transport: "unix",
        path: `${dir}/nbd.sock`,
      });
      try {
        const read = async (n: number) => {
          const out = new Uint8Array(n);
          for (let got = 0; got < n;) {
            const k = await conn.read(out.subarray(got));
            assert.ok(k !== null, "server hung up");
            got += k;
          }
          return out;
        };
        await read(NBD_SIZE.greeting);
        await conn.write(encodeClientFlags(NBD_FLAG_C_FIXED_NEWSTYLE));
        await conn.write(encodeOption(
          NBD_OPT.GO,
          encodeInfoRequest({ name: "drive-scsi0", requests: [NBD_INFO.NAME] }),
        ));
        for (;;) {
          const h = decodeOptionReplyHeader(
            await read(NBD_SIZE.optionReplyHeader),
          );
          await read(h.length);
          if (h.type === NBD_REP.ACK) break;
        }
        await conn.write(encodeRequest({
          flags: 0,
          type: NBD_CMD.WRITE,
          cookie: 9n,
          offset: 0,
          length: 512,
        }));
        await conn.write(new Uint8Array(512).fill(1));
        const reply = decodeSimpleReply(await read(NBD_SIZE.simpleReply));
        assert.deepEqual(reply, { error: NBD_E.PERM, cookie: 9n });
      } finally {
        conn.close();
      }
      assert.equal(disk.mem[0] === 1 && disk.mem[511] === 1, false);
    });
  },
});

Deno.test({
  name:
    "NbdServer answers NBD_REP_ERR_UNKNOWN for a missing export and survives killed clients",
  ignore: !HAVE,
  async fn() {
    await withServers(async ({ unixUri, unix, dir, disk }) => {
      await assert.rejects(
        NbdClient.connect({
          address: { path: `${dir}/nbd.sock` },
          exportName: "drive-scsi9",
        }),
        (e: unknown) =>
          e instanceof NbdOptionError && e.reply === NBD_REP.ERR_UNKNOWN &&
          /refused NBD_OPT_GO with NBD_REP_ERR_UNKNOWN \(export "drive-scsi9" not found\)/
            .test(e.message),
      );
      const missing = await run("nbdinfo", [unixUri("drive-scsi9")]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /drive-scsi9/);

      // Slow reads: kill nbdcopy mid-copy, twice, while another client reads.
      const other = await NbdClient.connect({
        address: { path: `${dir}/nbd.sock` },
        exportName: "drive-scsi0",
      });
      try {
        for (let i = 0; i < 2; i++) {
          const child = new Deno.Command("nbdcopy", {
            args: [unixUri("drive-scsi0"), "null:"],
            stdout: "null",
            stderr: "null",
          }).spawn();
          for (let t = 0; t < 100 && unix.connections < 3; t++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          const readsBefore = disk.stats.reads;
          const mine = other.read(0, new Uint8Array(2 * MiB));
          await new Promise((r) => setTimeout(r, 100));
          child.kill("SIGKILL");
          assert.equal((await child.status).signal, "SIGKILL"); // killed mid-copy
          await mine;
          assert.ok(disk.stats.reads > readsBefore);
        }
        for (let t = 0; t < 100 && unix.connections > 1; t++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(unix.connections, 1); // only `other` is left
        const all = new Uint8Array(disk.size);
        await other.read(0, all);
        assert.deepEqual(all, disk.mem);
      } finally {
        await other.close();
      }
      const info = await run("nbdinfo", ["--size", unixUri("drive-scsi0")]);
      assert.equal(info.text.trim(), String(disk.size));
    }, 300);
  },
});
