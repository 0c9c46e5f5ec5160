import assert from "node:assert/strict";
import { type NbdExportHandler, NbdServer } from "../lib/nbd/server.ts";
import { makePrivateTempDir } from "../lib/io/safe_file.ts";
import { ClusterAssembler } from "../lib/backup/cluster_assembler.ts";
import { VmaWriter } from "../lib/vma/writer.ts";
import { VmaReader } from "../lib/vma/reader.ts";
import { MemorySink } from "../lib/vma/_test_sink.ts";
import { haveTool, run } from "./helpers/run.ts";

const HAVE = await haveTool("qemu-img") && await haveTool("nbdinfo") &&
  await haveTool("nbdcopy");

/** An in-memory export with fault knobs. */
function memoryExport(
  size: number,
  knobs: { delayMs?: number; failAt?: number } = {},
) {
  const mem = new Uint8Array(size);
  const stats = { writes: 0, zeroBytes: 0, inFlight: 0, maxInFlight: 0 };
  const enter = async (offset: number) => {
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    try {
      if (knobs.delayMs) await new Promise((r) => setTimeout(r, knobs.delayMs));
      if (knobs.failAt !== undefined && offset === knobs.failAt) {
        throw new Error("injected failure");
      }
    } finally {
      stats.inFlight--;
    }
  };
  const handler: NbdExportHandler = {
    async write(o, d) {
      await enter(o);
      stats.writes++;
      mem.set(d, o);
    },
    async writeZeroes(o, l) {
      await enter(o);
      stats.zeroBytes += l;
      mem.fill(0, o, o + l);
    },
    read(o, into) {
      into.set(mem.subarray(o, o + into.length));
      return Promise.resolve();
    },
  };
  return { mem, stats, handler };
}

async function withServer(
  exports: {
    name: string;
    size: number;
    readOnly?: boolean;
    handler: NbdExportHandler;
  }[],
  fn: (
    uri: (name: string) => string,
    dir: string,
    server: NbdServer,
  ) => Promise<void>,
) {
  const dir = await makePrivateTempDir("vmabak-nbdtest-");
  const server = await NbdServer.listen({ path: `${dir}/nbd.sock`, exports });
  try {
    await fn(
      (name) => `nbd+unix:///${name}?socket=${dir}/nbd.sock`,
      dir,
      server,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A source image: random data, allocated zeros, a hole, odd size. */
async function makeSource(path: string, size: number) {
  const r = await run("bash", [
    "-c",
    `head -c 3000000 /dev/urandom > ${path}; head -c 1000000 /dev/zero >> ${path};
    truncate -s ${size - 70000} ${path}; head -c 70000 /dev/urandom >> ${path}`,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

/** `qemu-img convert -n` of a raw file into an NBD export (the export's size must match). */
async function convertInto(src: string, uri: string): Promise<void> {
  const c = await run("qemu-img", [
    "convert",
    "-n",
    "-f",
    "raw",
    "-O",
    "raw",
    src,
    uri,
  ]);
  assert.equal(c.code, 0, c.stderr);
}

Deno.test({
  name: "NbdServer takes qemu-img convert, qemu-io, nbdcopy and nbdinfo",
  ignore: !HAVE,
  async fn() {
    const size = 9 * 1024 * 1024 + 1536;
    const exp = memoryExport(size);
    await withServer(
      [{ name: "drive0", size, handler: exp.handler }],
      async (uri, dir) => {
        await makeSource(`${dir}/src.raw`, size);
        await convertInto(`${dir}/src.raw`, uri("drive0"));
        assert.deepEqual(exp.mem, await Deno.readFile(`${dir}/src.raw`));
        assert.ok(
          exp.stats.zeroBytes >= 4_000_000,
          `hole arrived as zeroes (${exp.stats.zeroBytes})`,
        );
        const info = JSON.parse(
          (await run("nbdinfo", ["--json", uri("drive0")])).text,
        );
        const e = info.exports[0];
        assert.equal(e["export-size"], size);
        assert.equal(e["block_size_preferred"], 65536);
        const io = await run("qemu-io", [
          "-f",
          "raw",
          uri("drive0"),
          "-c",
          "write -P 0x41 0 1M",
          "-c",
          "read -P 0x41 0 1M",
        ]);
        assert.equal(io.code, 0, io.stderr);
        assert.doesNotMatch(io.text, /fail/i);
        const cp = await run("nbdcopy", [uri("drive0"), `${dir}/copy.raw`]);
        assert.equal(cp.code, 0, cp.stderr);
        assert.deepEqual(await Deno.readFile(`${dir}/copy.raw`), exp.mem);
        const back = await run("nbdcopy", [`${dir}/src.raw`, uri("drive0")]);
        assert.equal(back.code, 0, back.stderr);
        assert.deepEqual(exp.mem, await Deno.readFile(`${dir}/src.raw`));
      },
    );
  },
});

Deno.test({
  name: "NbdServer refuses writes to a read-only export and unknown exports",
  ignore: !HAVE,
  async fn() {
    const exp = memoryExport(1 << 20);
    await withServer([{
      name: "ro",
      size: 1 << 20,
      readOnly: true,
      handler: exp.handler,
    }], async (uri) => {
      const w = await run("qemu-io", [
        "-f",
        "raw",
        uri("ro"),
        "-c",
        "write -P 1 0 4k",
      ]);
      assert.ok(
        w.code !== 0 ||
          /failed|denied|read-only|Operation not permitted/i.test(
            w.text + w.stderr,
          ),
      );
      assert.equal(exp.stats.writes, 0);
      const u = await run("nbdinfo", [uri("nope")]);
      assert.notEqual(u.code, 0);
    });
  },
});

Deno.test({
  name:
    "NbdServer bounds in-flight requests with a slow handler and still completes",
  ignore: !HAVE,
  async fn() {
    const size = 16 * 1024 * 1024;
    const exp = memoryExport(size, { delayMs: 20 });
    await withServer(
      [{ name: "d", size, handler: exp.handler }],
      async (uri, dir) => {
        await run("bash", [
          "-c",
          `head -c ${size} /dev/urandom > ${dir}/src.raw`,
        ]);
        const c = await run("nbdcopy", [
          "--requests=64",
          "--connections=1",
          `${dir}/src.raw`,
          uri("d"),
        ]);
        assert.equal(c.code, 0, c.stderr);
        assert.ok(
          exp.stats.maxInFlight <= 16,
          `max in flight ${exp.stats.maxInFlight}`,
        );
        assert.ok(exp.stats.maxInFlight > 1, "requests ran concurrently");
        assert.deepEqual(exp.mem, await Deno.readFile(`${dir}/src.raw`));
      },
    );
  },
});

Deno.test({
  name: "NbdServer answers EIO and latches the error when a handler throws",
  ignore: !HAVE,
  async fn() {
    const exp = memoryExport(4 << 20, { failAt: 1 << 20 });
    await withServer(
      [{ name: "d", size: 4 << 20, handler: exp.handler }],
      async (uri, _dir, server) => {
        const w = await run("qemu-io", [
          "-f",
          "raw",
          uri("d"),
          "-c",
          "write -P 1 1M 64k",
        ]);
        assert.match(w.text + w.stderr, /Input\/output error/);
        assert.match(server.error?.message ?? "", /injected failure/);
      },
    );
  },
});

Deno.test({
  name: "NbdServer drops a client sending garbage and keeps serving others",
  ignore: !HAVE,
  async fn() {
    const exp = memoryExport(1 << 20);
    await withServer(
      [{ name: "d", size: 1 << 20, handler: exp.handler }],
      async (uri, dir) => {
        const conn = await Deno.connect({
          transport: "unix",
          path: `${dir}/nbd.sock`,
        });
        await conn.write(new Uint8Array(200).fill(0xee));
        const buf = new Uint8Array(4096);
        let total = 0;
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          total += n;
        }
        conn.close();
        assert.equal(total, 18); // the greeting, then the server hung up
        const info = await run("nbdinfo", ["--size", uri("d")]);
        assert.equal(info.text.trim(), String(1 << 20));
      },
    );
  },
});

Deno.test({
  name:
    "qemu-img convert through NbdServer and ClusterAssembler into a VMA archive equals the source",
  ignore: !HAVE,
  async fn() {
    const size = 7 * 1024 * 1024 + 4096 + 1024; // not a multiple of 64 KiB nor of 4 KiB
    const sink = new MemorySink();
    const writer = new VmaWriter(sink);
    const devId = writer.addDevice("drive0", size);
    await writer.start();
    const assembler = new ClusterAssembler({ devId, size, sink: writer });
    await withServer(
      [{ name: "drive0", size, handler: assembler }],
      async (uri, dir) => {
        await makeSource(`${dir}/src.raw`, size);
        await convertInto(`${dir}/src.raw`, uri("drive0"));
        assert.ok(assembler.isComplete());
        await writer.finish();
        const reader = await VmaReader.open(sink.stream());
        const image = new Uint8Array(size);
        let zeroClusters = 0;
        for await (const ev of reader.clusters()) {
          image.set(
            ev.data.subarray(0, Math.min(65536, size - ev.cluster * 65536)),
            ev.cluster * 65536,
          );
          if (ev.mask === 0) zeroClusters++;
        }
        reader.checkComplete();
        assert.deepEqual(image, await Deno.readFile(`${dir}/src.raw`));
        assert.ok(
          zeroClusters >= 60,
          `zero clusters stored as mask 0: ${zeroClusters}`,
        );
      },
    );
  },
});
