import assert from "node:assert/strict";
import { type BlockExtent, NbdClient } from "../lib/nbd/client.ts";
import { NbdOptionError, NbdRequestError } from "../lib/nbd/errors.ts";
import {
  NBD_CMD,
  NBD_E,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
} from "../lib/nbd/format.ts";
import { startNbdkit, startQemuNbd } from "./helpers/nbd_peers.ts";
import { haveTool, qemuImg, run, withTempDir } from "./helpers/run.ts";
import { fullMap } from "./helpers/nbd_map.ts";

const HAVE_QEMU_NBD = await haveTool("qemu-nbd") && await haveTool("nbdinfo");
const HAVE_NBDKIT = await haveTool("nbdkit");

/** `nbdinfo --map --json` as extents, adjacent runs of one state merged. */
async function nbdinfoMap(uri: string, context = ""): Promise<BlockExtent[]> {
  const r = await run("nbdinfo", [
    "--json",
    context ? `--map=${context}` : "--map",
    uri,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out: BlockExtent[] = [];
  for (const e of JSON.parse(r.text)) {
    const last = out.at(-1);
    if (last && last.flags === e.type) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length, flags: e.type });
  }
  return out;
}

async function qemuIo(format: string, path: string, cmds: string[]) {
  const r = await run("qemu-io", [
    "-f",
    format,
    path,
    ...cmds.flatMap((c) => ["-c", c]),
  ]);
  assert.equal(r.code, 0, r.stderr);
}

Deno.test({
  name:
    "NbdClient reads a qcow2 with holes from qemu-nbd, block status equals nbdinfo --map",
  ignore: !HAVE_QEMU_NBD,
  async fn() {
    await withTempDir(async (dir) => {
      const image = `${dir}/d.qcow2`;
      const size = 64 * 1024 * 1024 + 4096;
      await qemuImg(["create", "-q", "-f", "qcow2", image, String(size)]);
      await qemuIo("qcow2", image, [
        "write -P 0x11 0 1M",
        "write -z 4M 1M",
        "write -P 0x22 10M 64k",
        "write -P 0x33 63M 1M",
      ]);
      await qemuImg([
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        image,
        `${dir}/t.raw`,
      ]);
      const server = await startQemuNbd(image, { format: "qcow2" });
      const c = await NbdClient.connect({
        address: { path: server.path },
        exportName: server.exportName,
        maxInFlight: 4,
      });
      try {
        assert.equal(c.size, size);
        assert.ok(c.structuredReplies);
        assert.ok(c.hasMetaContext("base:allocation"));
        assert.ok(!c.hasMetaContext("qemu:allocation-depth"));
        assert.ok(c.blockSize.maximum >= 65536);
        const map = await fullMap(c);
        assert.deepEqual(map, await nbdinfoMap(server.uri));
        assert.ok(
          map.some((e) => e.flags === (NBD_STATE_HOLE | NBD_STATE_ZERO)),
        );
        assert.deepEqual(map[0], { offset: 0, length: 1 << 20, flags: 0 });
        // Clipped to the request, starting at its offset.
        const part = await c.blockStatus(512 * 1024, 1 << 20);
        assert.deepEqual(part[0], {
          offset: 512 * 1024,
          length: 512 * 1024,
          flags: 0,
        });
        assert.ok(part.at(-1)!.offset + part.at(-1)!.length <= 1536 * 1024);
        // One read spanning data and holes, split above the maximum block size.
        const all = new Uint8Array(size);
        await c.read(0, all);
        assert.deepEqual(all, await Deno.readFile(`${dir}/t.raw`));
        // Many small reads at once, fewer slots than requests.
        const small = await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            const b = new Uint8Array(4096 + i);
            await c.read(10 * 1024 * 1024 + i * 1000, b);
            return b;
          }),
        );
        small.forEach((b, i) =>
          assert.deepEqual(
            b,
            all.subarray(
              10 * 1024 * 1024 + i * 1000,
              10 * 1024 * 1024 + i * 1000 + b.length,
            ),
          )
        );
        await assert.rejects(c.read(size - 1, new Uint8Array(2)), /outside/);
      } finally {
        await c.close();
        await c.close();
        await server.stop();
      }
    });
  },
});

Deno.test({
  name:
    "NbdClient on a raw image from qemu-nbd: holes, and a refused export name",
  ignore: !HAVE_QEMU_NBD,
  async fn() {
    await withTempDir(async (dir) => {
      const image = `${dir}/d.raw`;
      const size = 7 * 1024 * 1024 + 512;
      const r = await run("bash", [
        "-c",
        `head -c 1048576 /dev/urandom > ${image}; truncate -s 6M ${image};` +
        `head -c 1049088 /dev/urandom >> ${image}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const server = await startQemuNbd(image, {
        format: "raw",
        exportName: "raw0",
      });
      try {
        const c = await NbdClient.connect({
          address: { path: server.path },
          exportName: "raw0",
        });
        assert.equal(c.size, size);
        assert.deepEqual(await fullMap(c), await nbdinfoMap(server.uri));
        const data = new Uint8Array(size);
        await c.read(0, data);
        assert.deepEqual(data, await Deno.readFile(image));
        await c.close();
        await assert.rejects(
          NbdClient.connect({
            address: { path: server.path },
            exportName: "nope",
          }),
          (e: unknown) =>
            e instanceof NbdOptionError &&
            /Cannot open NBD export "nope": the server refused NBD_OPT_GO with NBD_REP_ERR_UNKNOWN/
              .test(e.message),
        );
      } finally {
        await server.stop();
      }
    });
  },
});

Deno.test({
  name:
    "NbdClient writes, zeroes, trims and flushes nbdkit memory, over two connections",
  ignore: !HAVE_NBDKIT,
  async fn() {
    const server = await startNbdkit(["memory", "size=40M"]);
    const connect = () =>
      NbdClient.connect({ address: { path: server.path }, exportName: "" });
    const a = await connect();
    const b = await connect();
    try {
      assert.ok(a.canMultiConn && a.canTrim && a.canWriteZeroes && a.canFlush);
      assert.ok(!a.readOnly);
      const size = a.size;
      const data = new Uint8Array(5 * 1024 * 1024 + 300);
      crypto.getRandomValues(data.subarray(0, 65536));
      for (let i = 65536; i < data.length; i += 65536) {
        data.copyWithin(i, 0, Math.min(65536, data.length - i));
      }
      // A write larger than nbdkit's maximum block size is split.
      const big = new Uint8Array(36 * 1024 * 1024).fill(0x5a);
      await a.write(0, big);
      await a.write(1000, data);
      await a.writeZeroes(2 * 1024 * 1024, 1024 * 1024);
      await a.trim(4 * 1024 * 1024, 65536);
      await a.flush();
      const expect = big.slice();
      expect.set(data, 1000);
      expect.fill(0, 2 * 1024 * 1024, 3 * 1024 * 1024);
      expect.fill(0, 4 * 1024 * 1024, 4 * 1024 * 1024 + 65536);
      const got = new Uint8Array(expect.length);
      await b.read(0, got); // the other connection sees it (multi-conn, after flush)
      assert.deepEqual(got, expect);
      const map = await fullMap(b);
      assert.ok(
        map.some((e) =>
          e.offset <= 2 * 1024 * 1024 &&
          e.offset + e.length >= 3 * 1024 * 1024 &&
          (e.flags & NBD_STATE_ZERO) !== 0
        ),
        JSON.stringify(map),
      );
      assert.equal(size, 40 * 1024 * 1024);
    } finally {
      await a.close();
      await b.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "NbdClient maps a server's EIO to NbdRequestError and keeps the connection",
  ignore: !HAVE_NBDKIT,
  async fn() {
    const server = await startNbdkit(
      ["memory", "size=4M", "error-pread=EIO", "error-pread-rate=1"],
      { filters: ["error"] },
    );
    const c = await NbdClient.connect({
      address: { path: server.path },
      exportName: "",
    });
    try {
      const err = await c.read(65536, new Uint8Array(65536)).then(
        () => null,
        (e) => e,
      );
      assert.ok(err instanceof NbdRequestError, String(err));
      assert.equal(err.errno, NBD_E.IO);
      assert.equal(err.command, NBD_CMD.READ);
      assert.match(
        err.message,
        /^Cannot read 65536 bytes at offset 65536 from NBD export "": EIO \(/,
      );
      await c.write(0, new Uint8Array(4096).fill(1)); // still usable
    } finally {
      await c.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "NbdClient without fixed newstyle nor structured replies (NBD_OPT_EXPORT_NAME, simple replies)",
  ignore: !HAVE_NBDKIT,
  async fn() {
    const server = await startNbdkit([
      "--no-sr",
      "--mask-handshake=0",
      "memory",
      "size=2M",
    ]);
    const c = await NbdClient.connect({
      address: { path: server.path },
      exportName: "",
    });
    try {
      assert.ok(!c.structuredReplies);
      assert.ok(!c.hasMetaContext("base:allocation"));
      await c.write(512, new Uint8Array(1024).fill(7));
      const got = new Uint8Array(2048);
      await c.read(0, got);
      assert.deepEqual(got.subarray(512, 1536), new Uint8Array(1024).fill(7));
      assert.equal(got[0], 0);
      // Without block status everything is data.
      assert.deepEqual(await c.blockStatus(0, c.size), [
        { offset: 0, length: c.size, flags: 0 },
      ]);
    } finally {
      await c.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "NbdClient fails every pending and later request when the server dies",
  ignore: !HAVE_NBDKIT,
  async fn() {
    const server = await startNbdkit(["memory", "size=4M", "rdelay=2"], {
      filters: ["delay"],
    });
    const c = await NbdClient.connect({
      address: { path: server.path },
      exportName: "",
      maxInFlight: 2,
    });
    try {
      const reads = Array.from(
        { length: 5 },
        (_, i) =>
          c.read(i * 65536, new Uint8Array(65536)).then(() => null, (e) => e),
      );
      await new Promise((r) => setTimeout(r, 200));
      await server.stop("SIGKILL");
      for (const e of await Promise.all(reads)) {
        assert.match(
          String(e),
          /Cannot read from NBD export "": the server closed the connection/,
        );
      }
      await assert.rejects(
        c.read(0, new Uint8Array(512)),
        /the server closed the connection/,
      );
    } finally {
      await c.close();
    }
  },
});
