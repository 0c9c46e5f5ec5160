import assert from "node:assert/strict";
import { ClusterAssembler } from "./cluster_assembler.ts";

function rng(seed: number) {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** A sink that rebuilds the image and counts calls per cluster. */
function rebuild(size: number) {
  const image = new Uint8Array(size);
  const calls = new Map<number, number>();
  const nulls = new Set<number>();
  return {
    image,
    calls,
    nulls,
    sink: {
      writeClusters(
        _dev: number,
        first: number,
        count: number,
        data: Uint8Array | null,
        zeroMask = 0,
      ) {
        assert.ok(count >= 1 && count <= 32, `run of ${count} clusters`);
        assert.ok(data === null || data.length <= count * 65536);
        for (let i = 0; i < count; i++) {
          const c = first + i;
          calls.set(c, (calls.get(c) ?? 0) + 1);
          if (data === null || ((zeroMask >>> i) & 1) === 1) nulls.add(c);
          else image.set(data.subarray(i * 65536, (i + 1) * 65536), c * 65536);
        }
        return Promise.resolve();
      },
    },
  };
}

for (const size of [65536 * 7, 65536 * 7 + 4096 + 1024, 3 * 512]) {
  Deno.test(`ClusterAssembler stores each cluster once from random out-of-order pieces (size ${size})`, async () => {
    const r = rng(size);
    const src = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
    const zeroFrom = Math.floor(size / 2 / 512) * 512; // second half arrives as zero ranges
    src.fill(0, zeroFrom);
    // Cut the disk into random 512-aligned pieces, then shuffle.
    const pieces: [number, number][] = [];
    for (let at = 0; at < size;) {
      const limit = at < zeroFrom ? zeroFrom : size; // no piece straddles the start of the zero range
      const len = Math.min(limit - at, 512 * (1 + Math.floor(r() * 300)));
      pieces.push([at, len]);
      at += len;
    }
    for (let i = pieces.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
    }
    const out = rebuild(size);
    const a = new ClusterAssembler({ devId: 1, size, sink: out.sink });
    await Promise.all(
      pieces.map(([at, len]) =>
        at >= zeroFrom
          ? a.writeZeroes(at, len)
          : a.write(at, src.slice(at, at + len))
      ),
    );
    assert.ok(a.isComplete());
    assert.deepEqual(a.missingClusters(), []);
    assert.deepEqual(out.image, src);
    for (const n of out.calls.values()) assert.equal(n, 1);
    assert.equal(out.calls.size, Math.ceil(size / 65536));
    // Clusters wholly in the zero range came as null, never as data.
    for (let c = Math.ceil(zeroFrom / 65536); c * 65536 < size; c++) {
      assert.ok(out.nulls.has(c), `cluster ${c} null`);
    }
  });
}

Deno.test("ClusterAssembler refuses a range written twice, whole or in part", async () => {
  const out = rebuild(65536 * 2);
  const a = new ClusterAssembler({ devId: 3, size: 65536 * 2, sink: out.sink });
  await a.write(0, new Uint8Array(65536));
  await assert.rejects(
    a.write(0, new Uint8Array(65536)),
    /cluster 0 of device 3: written twice/,
  );
  await a.write(65536, new Uint8Array(4096));
  await assert.rejects(
    a.writeZeroes(65536 + 2048, 4096),
    /cluster 1 of device 3: written twice/,
  );
  assert.deepEqual(a.missingClusters(), [1]);
  await assert.rejects(
    a.write(100, new Uint8Array(512)),
    /not whole 512-byte sectors/,
  );
  await assert.rejects(
    a.write(65536 * 2, new Uint8Array(512)),
    /inside the disk/,
  );
});

Deno.test("ClusterAssembler stores a large write's whole clusters in runs of at most 32, its cut ends as pieces", async () => {
  const size = 80 * 65536 + 4096;
  const src = new Uint8Array(size).map((_, i) => (i * 13 + 1) & 0xff);
  const out = rebuild(size);
  const a = new ClusterAssembler({ devId: 1, size, sink: out.sink });
  // 512 bytes into cluster 0 .. 512 bytes into cluster 75: 74 whole clusters between.
  await a.write(512, src.slice(512, 75 * 65536 + 512));
  await a.writeZeroes(75 * 65536 + 512, 2 * 65536); // a cut start, one whole zero cluster, a cut end
  await a.write(0, src.slice(0, 512));
  await a.write(77 * 65536 + 512, src.slice(77 * 65536 + 512));
  assert.ok(a.isComplete());
  for (const n of out.calls.values()) assert.equal(n, 1);
  const want = src.slice();
  want.fill(0, 75 * 65536 + 512, 77 * 65536 + 512);
  assert.deepEqual(out.image, want);
  assert.ok(out.nulls.has(76));
});
