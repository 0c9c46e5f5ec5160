import assert from "node:assert/strict";
import { nodeZstd } from "./_node_zstd.ts";
import type { RandomAccess } from "./random_access.ts";
import { EndOfStreamError } from "./read_exact.ts";
import { ZstdError } from "./zstd_format.ts";
import { ZstdRandomAccess } from "./zstd_random_access.ts";
import { encodeSeekTable, type SeekFrame } from "./zstd_seekable.ts";

/** Bytes in memory, read at any offset. */
class MemoryAccess implements RandomAccess {
  constructor(readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  readAt(offset: number, into: Uint8Array): Promise<void> {
    if (offset + into.length > this.size) {
      return Promise.reject(new EndOfStreamError(into.length, 0, "bytes"));
    }
    into.set(this.bytes.subarray(offset, offset + into.length));
    return Promise.resolve();
  }
  close(): void {}
}

/** Data of `sizes` frames (random and zero runs), and a seekable stream of it. */
function seekable(
  sizes: number[],
  claim: (f: SeekFrame, i: number) => SeekFrame = (f) => f,
): { data: Uint8Array; stream: Uint8Array } {
  const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  for (let i = 0; i < data.length; i += 8192) {
    crypto.getRandomValues(data.subarray(i, Math.min(i + 4096, data.length)));
  }
  const parts: Uint8Array[] = [];
  const frames: SeekFrame[] = [];
  let at = 0;
  sizes.forEach((n, i) => {
    const c = nodeZstd.zstdCompressSync(data.subarray(at, at + n));
    parts.push(c);
    frames.push(claim({ compressed: c.length, decompressed: n }, i));
    at += n;
  });
  parts.push(encodeSeekTable(frames));
  const stream = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    stream.set(p, o);
    o += p.length;
  }
  return { data, stream };
}

Deno.test("ZstdRandomAccess: reads in order, at random and across frames, many at once, equal the data (more frames than it caches)", async () => {
  const sizes = Array.from({ length: 20 }, (_, i) => 100_000 + i * 1000);
  const { data, stream } = seekable(sizes);
  const ra = await ZstdRandomAccess.open(new MemoryAccess(stream));
  assert.ok(ra !== null);
  try {
    assert.equal(ra.size, data.length);
    assert.equal(ra.frames, 20);
    // Two sequential readers (the next frame is decompressed ahead) and
    // scattered reads, all in flight together.
    const reads: [number, number][] = [];
    for (let at = 0; at < data.length; at += 65536) {
      reads.push([at, Math.min(65536, data.length - at)]);
    }
    for (let i = 0; i < 60; i++) {
      reads.push([(i * 7919 * 4099) % (data.length - 300_000), 250_000]);
    }
    const check = async ([at, n]: [number, number]) => {
      const into = new Uint8Array(n);
      await ra.readAt(at, into);
      assert.deepStrictEqual(into, data.subarray(at, at + n), `at ${at}`);
    };
    await Promise.all(reads.map(check));
    // Again, after frames were evicted and their buffers reused.
    for (const r of reads.slice().reverse()) await check(r);
    await assert.rejects(
      () => ra.readAt(data.length - 1, new Uint8Array(2)),
      EndOfStreamError,
    );
  } finally {
    ra.close();
  }
});

Deno.test("ZstdRandomAccess: a frame larger or smaller than its seek table entry fails its reads with one ZstdError line", async () => {
  const sizes = [50_000, 60_000, 70_000];
  // The table says frame 1 is 10 bytes shorter: decompression stops there.
  const { stream } = seekable(
    sizes,
    (f, i) => i === 1 ? { ...f, decompressed: f.decompressed - 10 } : f,
  );
  const ra = await ZstdRandomAccess.open(new MemoryAccess(stream));
  assert.ok(ra !== null);
  try {
    const into = new Uint8Array(1000);
    await ra.readAt(0, into); // frame 0 is fine
    let error: unknown;
    try {
      await ra.readAt(55_000, into);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ZstdError, String(error));
    const message = error.message;
    assert.match(message, /^Cannot read zstd frame 1: .*59990 bytes/);
    assert.ok(!message.includes("\n"), message);
    await ra.readAt(sizes[0]! + sizes[1]! - 10 + 5, into); // frame 2 is fine
  } finally {
    ra.close();
  }
  // Frame 1 claims 10 bytes more than it holds.
  const longer = seekable(
    sizes,
    (f, i) => i === 1 ? { ...f, decompressed: f.decompressed + 10 } : f,
  );
  const rb = await ZstdRandomAccess.open(new MemoryAccess(longer.stream));
  try {
    await assert.rejects(
      () => rb!.readAt(55_000, new Uint8Array(100)),
      /^ZstdError: Cannot read zstd frame 1: 60000 bytes, the seek table says 60010$/,
    );
  } finally {
    rb!.close();
  }
});
