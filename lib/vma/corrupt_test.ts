import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { VmaWriter } from "./writer.ts";
import { VmaReader } from "./reader.ts";
import { extractArchive } from "./extract.ts";
import { MemorySink } from "./_test_sink.ts";

const HEADER = 12800;

/** An archive of one device with 70 clusters: two extents (59 + 11). */
async function sample(): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = new VmaWriter(sink);
  w.addConfig("qemu-server.conf", new TextEncoder().encode("memory: 64\n"));
  const d = w.addDevice("drive-a", 70 * 65536 - 4096);
  await w.start();
  for (let c = 69; c >= 0; c--) {
    await w.writeCluster(d, c, c % 3 ? new Uint8Array(65536).fill(c) : null);
  }
  await w.finish();
  return sink.bytes();
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

async function readAll(bytes: Uint8Array): Promise<void> {
  const r = await VmaReader.open(streamOf(bytes));
  for await (const _ of r.clusters()) { /* checks */ }
  r.checkComplete();
}

function fixExtentMd5(bytes: Uint8Array, at: number): void {
  const h = bytes.slice(at, at + 512);
  h.fill(0, 24, 40);
  bytes.set(createHash("md5").update(h).digest(), at + 24);
}

const secondExtent = (bytes: Uint8Array) => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  return HEADER + 512 + dv.getUint16(HEADER + 6) * 4096;
};

Deno.test("VmaReader accepts the untouched sample", async () => {
  await readAll(await sample());
});

Deno.test("VmaReader rejects a wrong magic and a flipped header checksum", async () => {
  const a = await sample();
  a[0] = 0x57;
  await assert.rejects(readAll(a), /not a vma file - wrong magic number/);
  const b = await sample();
  b[40] ^= 1;
  await assert.rejects(readAll(b), /wrong vma header chechsum/);
  const c = await sample();
  c[12300] ^= 1; // a blob byte is covered by the checksum too
  await assert.rejects(readAll(c), /wrong vma header chechsum/);
});

Deno.test("VmaReader rejects a flipped extent checksum and a wrong extent uuid", async () => {
  const a = await sample();
  a[HEADER + 30] ^= 0xff;
  await assert.rejects(
    readAll(a),
    /extent 0 .*wrong vma extent header chechsum/,
  );
  const b = await sample();
  const e1 = secondExtent(b);
  b[e1 + 8] ^= 1;
  fixExtentMd5(b, e1);
  await assert.rejects(readAll(b), /extent 1 .*wrong vma extent uuid/);
});

Deno.test("VmaReader reports truncation at every kind of boundary", async () => {
  const full = await sample();
  const e1 = secondExtent(full);
  const cases: [number, RegExp][] = [
    [0, /archive ends after 0 bytes/],
    [100, /VMA header/],
    [HEADER - 1, /VMA header/],
    [HEADER, /detected missing cluster 0 for stream drive-a/],
    [HEADER + 200, /header of extent 0/],
    [HEADER + 512 + 4096 * 3 + 7, /extent 0 .*short vma extent/],
    [e1, /detected missing cluster [0-9]+ for stream drive-a/],
    [full.length - 1, /extent 1 .*short vma extent/],
  ];
  for (const [len, re] of cases) {
    await assert.rejects(
      readAll(full.slice(0, len)),
      re,
      `truncated at ${len}`,
    );
  }
});

Deno.test("VmaReader rejects duplicate and out-of-range clusters and wrong block counts", async () => {
  const full = await sample();
  const e1 = secondExtent(full);
  // The first extent twice.
  const dup = new Uint8Array(full.length + e1 - HEADER);
  dup.set(full.slice(0, e1));
  dup.set(full.slice(HEADER, e1), e1);
  dup.set(full.slice(e1), 2 * e1 - HEADER);
  await assert.rejects(
    readAll(dup),
    /found duplicated cluster 69 for stream drive-a/,
  );

  const far = await sample();
  const dv = new DataView(far.buffer);
  const info = dv.getBigUint64(HEADER + 40);
  dv.setBigUint64(HEADER + 40, (info & ~0xffffffffn) | 70n);
  fixExtentMd5(far, HEADER);
  await assert.rejects(readAll(far), /cluster beyond the end/);

  // Cluster 69 is the last, cut at 4 KiB before the end: its block 15 lies past the end.
  const past = await sample();
  const pv = new DataView(past.buffer);
  const first = pv.getBigUint64(HEADER + 40);
  assert.equal(Number(first & 0xffffffffn), 69);
  pv.setBigUint64(HEADER + 40, first | (0xffffn << 48n));
  pv.setUint16(HEADER + 6, pv.getUint16(HEADER + 6) + 1);
  fixExtentMd5(past, HEADER);
  await assert.rejects(readAll(past), /write beyond end/);

  const count = await sample();
  const cv = new DataView(count.buffer);
  cv.setUint16(HEADER + 6, cv.getUint16(HEADER + 6) - 1);
  fixExtentMd5(count, HEADER);
  await assert.rejects(readAll(count), /too many blocks/);
});

Deno.test("extractArchive() refuses hostile names and writes nothing outside the target", async () => {
  const base = await Deno.makeTempDir();
  try {
    for (
      const [cfg, dev] of [
        ["../evil", "d"],
        ["/etc/evil", "d"],
        ["ok", "../evil"],
        ["ok", ".."],
        ["a\0b", "d"],
      ]
    ) {
      const sink = new MemorySink();
      const w = new VmaWriter(sink);
      w.addConfig(cfg!, new Uint8Array([1]));
      const id = w.addDevice(dev!, 512);
      await w.start();
      await w.writeCluster(id, 0, new Uint8Array(512).fill(1));
      await w.finish();
      const reader = await VmaReader.open(streamOf(sink.bytes()));
      await assert.rejects(
        extractArchive(reader, `${base}/t/target`),
        /unsafe/,
      );
      await reader.close();
    }
    const left = [...Deno.readDirSync(base)].map((e) => e.name);
    assert.deepEqual(left, []);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
