import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { VmaWriter } from "./writer.ts";
import { VmaReader } from "./reader.ts";
import { VmaError } from "./errors.ts";
import { MemorySink } from "./_test_sink.ts";

const UUID = new Uint8Array(16).map((_, i) => i + 1);
const md5hex = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

Deno.test("VmaWriter writes a hand-checked minimal archive byte for byte", async () => {
  const sink = new MemorySink();
  const w = new VmaWriter(sink, { uuid: UUID, ctime: 1700000000 });
  w.addConfig("a.conf", new TextEncoder().encode("hi"));
  const dev = w.addDevice("d", 4096 + 512);
  await w.start();
  const data = new Uint8Array(4096 + 512).fill(7);
  await w.writeCluster(dev, 0, data);
  await w.finish();
  const out = sink.bytes();
  const dv = new DataView(out.buffer);
  // Header.
  assert.equal(dv.getUint32(0), 0x564d4100);
  assert.equal(dv.getUint32(4), 1);
  assert.deepEqual(out.slice(8, 24), UUID);
  assert.equal(dv.getBigInt64(24), 1700000000n);
  assert.equal(dv.getUint32(48), 12288);
  // Blobs: [2,0]"a.conf\0" at 1, [2,0]"hi" at 10, [2,0]"d\0" at 14 → fill 18.
  assert.equal(dv.getUint32(52), 18);
  assert.equal(dv.getUint32(56), 12800);
  assert.equal(dv.getUint32(2044), 1);
  assert.equal(dv.getUint32(3068), 10);
  assert.equal(dv.getUint32(4096 + 32 + 0), 14);
  assert.equal(dv.getBigUint64(4096 + 32 + 8), 4608n);
  assert.deepEqual(
    Array.from(out.slice(12289, 12288 + 18)),
    [7, 0, 97, 46, 99, 111, 110, 102, 0, 2, 0, 104, 105, 2, 0, 100, 0],
  );
  const zeroed = out.slice(0, 12800);
  zeroed.fill(0, 32, 48);
  assert.equal(Buffer.from(out.slice(32, 48)).toString("hex"), md5hex(zeroed));
  // Extent: two blocks (the second is cut at the device end: 512 bytes of 7, then zeros).
  const e = 12800;
  assert.equal(out.length, e + 512 + 2 * 4096);
  assert.equal(dv.getUint32(e), 0x564d4145);
  assert.equal(dv.getUint16(e + 4), 0);
  assert.equal(dv.getUint16(e + 6), 2);
  assert.deepEqual(out.slice(e + 8, e + 24), UUID);
  assert.equal(dv.getBigUint64(e + 40), 0x0003000100000000n);
  for (let i = 1; i < 59; i++) {
    assert.equal(dv.getBigUint64(e + 40 + 8 * i), 0n);
  }
  const eh = out.slice(e, e + 512);
  eh.fill(0, 24, 40);
  assert.equal(
    Buffer.from(out.slice(e + 24, e + 40)).toString("hex"),
    md5hex(eh),
  );
  assert.ok(out.slice(e + 512, e + 512 + 4096 + 512).every((b) => b === 7));
  assert.ok(out.slice(e + 512 + 4096 + 512).every((b) => b === 0));
});

Deno.test("VmaWriter writes a diskless archive as the header plus one empty extent", async () => {
  const sink = new MemorySink();
  const w = new VmaWriter(sink);
  w.addConfig("qemu-server.conf", new Uint8Array([1]));
  await w.start();
  await w.finish();
  const out = sink.bytes();
  assert.equal(out.length, 12800 + 512);
  const r = await VmaReader.open(sink.stream());
  let n = 0;
  for await (const _ of r.clusters()) n++;
  assert.equal(n, 0);
  r.checkComplete();
});

/** Deterministic pseudo-random bytes. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function makeImage(size: number, seed: number): Uint8Array {
  const img = new Uint8Array(size);
  const r = rng(seed);
  for (let b = 0; b * 4096 < size; b++) {
    const kind = r() % 4; // zero, random, partly zero, one byte
    const start = b * 4096, end = Math.min(start + 4096, size);
    if (kind === 1) { for (let i = start; i < end; i++) img[i] = r() & 0xff; }
    if (kind === 2) { for (let i = start; i < end; i += 2) img[i] = 0x5a; }
    if (kind === 3) img[end - 1] = 1;
  }
  return img;
}

Deno.test("VmaWriter round-trips many devices of odd sizes, clusters out of order", async () => {
  const sizes = [512, 4096 + 512, 65536 * 3 + 1024, 65536 * 5, 1_000_448];
  const images = sizes.map((s, i) => makeImage(s, i + 11));
  const sink = new MemorySink();
  const w = new VmaWriter(sink, { uuid: UUID });
  const big = new Uint8Array(65535).fill(0x33);
  w.addConfig("qemu-server.conf", big);
  w.addConfig("other.fw", new Uint8Array([1, 2, 3]));
  const ids = images.map((img, i) => w.addDevice(`drive-${i}`, img.length));
  await w.start();
  const work: [number, number][] = [];
  images.forEach((img, i) => {
    for (let c = 0; c * 65536 < img.length; c++) work.push([i, c]);
  });
  const r = rng(99);
  for (let i = work.length - 1; i > 0; i--) {
    const j = r() % (i + 1);
    [work[i], work[j]] = [work[j]!, work[i]!];
  }
  await Promise.all(work.map(([i, c]) => {
    const img = images[i]!;
    const piece = img.subarray(
      c * 65536,
      Math.min((c + 1) * 65536, img.length),
    );
    const zero = piece.every((b) => b === 0);
    return w.writeCluster(ids[i]!, c, zero && r() % 2 ? null : piece);
  }));
  await w.finish();

  const reader = await VmaReader.open(sink.stream());
  assert.deepEqual(reader.header.configs.map((c) => c.data.length), [65535, 3]);
  const out = images.map((img) => new Uint8Array(img.length));
  for await (const ev of reader.clusters()) {
    const o = out[ev.device.id - 1]!;
    const base = ev.cluster * 65536;
    o.set(ev.data.subarray(0, Math.min(65536, o.length - base)), base);
  }
  reader.checkComplete();
  out.forEach((o, i) => assert.deepEqual(o, images[i], `device ${i}`));
});

Deno.test("VmaWriter takes 255 devices and refuses a 256th", async () => {
  const sink = new MemorySink();
  const w = new VmaWriter(sink);
  for (let i = 1; i <= 255; i++) assert.equal(w.addDevice(`d${i}`, 512), i);
  assert.throws(() => w.addDevice("d256", 512), VmaError);
  await w.start();
  for (let i = 1; i <= 255; i++) {
    await w.writeCluster(i, 0, i % 2 ? null : new Uint8Array(512).fill(i));
  }
  await w.finish();
  const r = await VmaReader.open(sink.stream());
  let n = 0;
  for await (const ev of r.clusters()) {
    n++;
    assert.equal(ev.data[0], ev.device.id % 2 ? 0 : ev.device.id);
  }
  r.checkComplete();
  assert.equal(n, 255);
});

Deno.test("VmaWriter.writeCluster() refuses a cluster twice, out of range, or vmstate out of order", async () => {
  const w = new VmaWriter(new MemorySink());
  const d = w.addDevice("d", 65536 * 2);
  const s = w.addDevice("vmstate", 1 << 20);
  await w.start();
  await w.writeCluster(d, 1, null);
  await assert.rejects(w.writeCluster(d, 1, null), /stored twice/);
  await assert.rejects(w.writeCluster(d, 2, null), /beyond its size/);
  await assert.rejects(w.writeCluster(s, 1, null), /in order/);
  await w.writeCluster(s, 0, new Uint8Array(100).fill(1));
  await w.writeCluster(d, 0, null);
  await w.finish();
});

Deno.test("VmaWriter.writeCluster() refuses a vmstate stream longer than its recorded size", async () => {
  const w = new VmaWriter(new MemorySink());
  const s = w.addDevice("vmstate", 65536 + 1);
  await w.start();
  await w.writeCluster(s, 0, new Uint8Array(65536).fill(1));
  await w.writeCluster(s, 1, new Uint8Array(1).fill(1));
  await assert.rejects(
    w.writeCluster(s, 2, new Uint8Array(1)),
    /longer than its recorded size \(65537 bytes\)/,
  );
});

Deno.test("VmaWriter.writeCluster() stores a cluster of zeros as mask 0", async () => {
  const sink = new MemorySink();
  const w = new VmaWriter(sink);
  const d = w.addDevice("d", 65536);
  await w.start();
  await w.writeCluster(d, 0, new Uint8Array(65536));
  await w.finish();
  const out = sink.bytes();
  const e = out.length - 512;
  const dv = new DataView(out.buffer);
  assert.equal(dv.getUint16(e + 6), 0);
  assert.equal(dv.getBigUint64(e + 40), 0x0000000100000000n);
});

Deno.test("VmaWriter.replaceConfig() changes a config's data before start(), keeps its place, refuses after", async () => {
  const sink = new MemorySink();
  const w = new VmaWriter(sink, { uuid: UUID, ctime: 1 });
  w.addConfig("a.json", new TextEncoder().encode("{}"));
  w.addConfig("b.conf", new TextEncoder().encode("b"));
  w.replaceConfig("a.json", new TextEncoder().encode('{"x":1}'));
  assert.throws(() => w.replaceConfig("c", new Uint8Array(1)), VmaError);
  w.addDevice("d", 65536);
  await w.start();
  assert.throws(() => w.replaceConfig("a.json", new Uint8Array(1)), VmaError);
  await w.writeCluster(1, 0, null);
  await w.finish();
  const r = await VmaReader.open(sink.stream());
  assert.deepEqual(r.header.configs.map((c) => c.name), ["a.json", "b.conf"]);
  assert.equal(new TextDecoder().decode(r.header.configs[0]!.data), '{"x":1}');
  await r.close();
});

Deno.test("VmaWriter.writeClusters() writes the same archive as one writeCluster() per cluster", async () => {
  // 37 clusters and a cut one: runs of up to 32, zero bits, a null run, a short last run.
  const size = 38 * 65536 - 4096 - 512;
  const disk = new Uint8Array(size);
  const next = rng(7);
  for (let c = 0; c < 38; c++) {
    if (c % 5 === 2) continue; // all-zero cluster, sent as data
    for (let i = c * 65536; i < Math.min(size, (c + 1) * 65536); i += 4096) {
      if (next() % 3 !== 0) disk[i + (next() % 4096)] = 1 + (next() % 255);
    }
  }
  const zeroBits = (first: number, count: number) => {
    let mask = 0;
    for (let i = 0; i < count; i++) {
      if ((first + i) % 7 === 3) mask |= 1 << i; // sent as zero, not read
    }
    return mask;
  };
  const expected = (c: number) =>
    c % 7 === 3 || (c >= 20 && c < 24)
      ? null
      : disk.subarray(c * 65536, Math.min(size, (c + 1) * 65536));
  const runs: [number, number][] = [[0, 20], [20, 4], [24, 14]];

  const a = new MemorySink();
  const wa = new VmaWriter(a, { uuid: UUID, ctime: 5 });
  const da = wa.addDevice("d", size);
  await wa.start();
  for (let c = 0; c < 38; c++) await wa.writeCluster(da, c, expected(c));
  await wa.finish();

  const b = new MemorySink();
  const wb = new VmaWriter(b, { uuid: UUID, ctime: 5 });
  const db = wb.addDevice("d", size);
  await wb.start();
  for (const [first, count] of runs) {
    const data = first === 20
      ? null
      : disk.subarray(first * 65536, Math.min(size, (first + count) * 65536));
    await wb.writeClusters(db, first, count, data, zeroBits(first, count));
  }
  await wb.finish();
  assert.deepEqual(b.bytes(), a.bytes());
  const r = await VmaReader.open(b.stream());
  const image = new Uint8Array(size);
  for await (const c of r.clusters()) {
    const base = c.cluster * 65536;
    image.set(c.data.subarray(0, Math.min(65536, size - base)), base);
  }
  r.checkComplete();
  for (let c = 0; c < 38; c++) {
    const want = expected(c);
    const got = image.subarray(c * 65536, Math.min(size, (c + 1) * 65536));
    assert.deepEqual(got, want ?? new Uint8Array(got.length), `cluster ${c}`);
  }
});

Deno.test("VmaWriter.writeClusters() stores all of a run or none of it", async () => {
  const w = new VmaWriter(new MemorySink());
  const d = w.addDevice("d", 65536 * 40);
  const s = w.addDevice("vmstate", 65536 * 3);
  await w.start();
  await w.writeCluster(d, 5, null);
  await assert.rejects(
    w.writeClusters(d, 0, 8, new Uint8Array(8 * 65536)),
    /cluster 5 of device "d": stored twice/,
  );
  await assert.rejects(w.writeClusters(d, 0, 33, null), /1 to 32 at a time/);
  await assert.rejects(w.writeClusters(d, 0, 0, null), /1 to 32 at a time/);
  await assert.rejects(
    w.writeClusters(d, 0, 2, new Uint8Array(2 * 65536 + 1)),
    /clusters 0-1 of device "d": 131073 bytes/,
  );
  await assert.rejects(w.writeClusters(d, 36, 8, null), /beyond its size/);
  await assert.rejects(
    w.writeClusters(s, 0, 4, null),
    /vmstate cluster 3: the stream would be longer/,
  );
  // Nothing of the refused runs was stored: they all go in now.
  await w.writeClusters(d, 0, 5, null);
  await w.writeClusters(d, 6, 32, new Uint8Array(32 * 65536).fill(9));
  await w.writeClusters(d, 38, 2, null);
  await w.writeClusters(s, 0, 3, new Uint8Array(100).fill(1));
  await w.finish();
});
