import assert from "node:assert/strict";
import {
  maybeDecompress,
  ZSTD_MAX_IN_FLIGHT,
  ZstdError,
  zstdSink,
} from "./zstd.ts";
import { concatBytes } from "./concat.ts";

/** Compressible test bytes: runs of zeros, text-like bytes and noise. */
function sample(bytes: number, seed = 1): Uint8Array {
  const out = new Uint8Array(bytes);
  let s = seed;
  for (let i = 0; i < bytes; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const block = (i >>> 12) % 3;
    out[i] = block === 0 ? 0 : block === 1 ? 97 + (i % 23) : s >>> 24;
  }
  return out;
}

function collectingSink() {
  const parts: Uint8Array[] = [];
  return {
    parts,
    write(chunk: Uint8Array) {
      parts.push(chunk.slice());
      return Promise.resolve();
    },
    bytes(): Uint8Array {
      return concatBytes(parts);
    },
  };
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) {
    // Readers rely on slice() copying, which a node Buffer does not do.
    assert.equal(Object.getPrototypeOf(part), Uint8Array.prototype);
    parts.push(part);
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Runs `zstd ARGS` with `input` on stdin; returns stdout. */
async function zstdCli(args: string[], input: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("zstd", {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(input);
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/** A stream handing out `bytes` in pieces of `size` bytes. */
function pieces(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

for (const workers of [0, 2]) {
  Deno.test(`zstdSink() (workers: ${workers}) writes frames zstd -d restores exactly`, async () => {
    const input = sample(1_000_003);
    const inner = collectingSink();
    const sink = zstdSink(inner, 3, { chunkSize: 65536, workers });
    for (let at = 0; at < input.length; at += 40_000) {
      await sink.write(input.subarray(at, at + 40_000));
    }
    await sink.close();
    const compressed = inner.bytes();
    assert.equal(sink.bytesIn, input.length);
    assert.equal(sink.bytesOut, compressed.length);
    assert.ok(compressed.length < input.length * 0.8);
    // One frame per 64 KiB chunk, in order, then the seek table.
    assert.equal(inner.parts.length, Math.ceil(input.length / 65536) + 1);
    const table = inner.parts[inner.parts.length - 1]!;
    assert.deepEqual([...table.subarray(0, 4)], [0x5e, 0x2a, 0x4d, 0x18]);
    assert.deepEqual([...table.subarray(-4)], [0xb1, 0xea, 0x92, 0x8f]);
    assert.deepEqual(await zstdCli(["-d", "-c"], compressed), input);
    await zstdCli(["-t", "-q"], compressed);
    assert.deepEqual(
      await readAll(await maybeDecompress(pieces(compressed, 777))),
      input,
    );
  });
}

Deno.test("zstdSink() of nothing writes one empty frame", async () => {
  const inner = collectingSink();
  const sink = zstdSink(inner, 1);
  await sink.close();
  assert.ok(inner.bytes().length > 0);
  assert.equal((await zstdCli(["-d", "-c"], inner.bytes())).length, 0);
});

Deno.test("zstdSink() keeps at most two chunks in flight (backpressure)", async () => {
  const released: (() => void)[] = [];
  let writes = 0;
  const inner = {
    write() {
      writes++;
      return new Promise<void>((resolve) => released.push(resolve));
    },
  };
  const chunk = 4096;
  const sink = zstdSink(inner, 1, {
    chunkSize: chunk,
    workers: 1,
    seekTable: false,
  });
  // Fills 2 chunks: both dispatched, the sink has room for nothing more.
  await sink.write(new Uint8Array(2 * chunk).fill(1));
  let third = false;
  const pending = sink.write(new Uint8Array(chunk).fill(2)).then(() => {
    third = true;
  });
  while (writes < 1) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(third, false, "third chunk accepted while two are in flight");
  assert.equal(writes, 1, "frames are written one at a time, in order");
  assert.equal(ZSTD_MAX_IN_FLIGHT, 2);
  released.shift()!();
  await pending;
  assert.equal(third, true);
  const closing = sink.close();
  while (released.length > 0 || writes < 3) {
    await new Promise((r) => setTimeout(r, 5));
    released.shift()?.();
  }
  await closing;
  assert.equal(writes, 3);
});

Deno.test("zstdSink() fails every later call with the inner sink's error", async () => {
  const boom = new Error("disk full");
  const sink = zstdSink({ write: () => Promise.reject(boom) }, 1, {
    chunkSize: 1024,
    workers: 2,
  });
  await sink.write(new Uint8Array(1024)); // dispatched; fails in the background
  await assert.rejects(
    async () => {
      for (let i = 0; i < 4; i++) await sink.write(new Uint8Array(1024));
      await sink.close();
    },
    (e) => e === boom,
  );
  sink.abort();
  await assert.rejects(sink.write(new Uint8Array(1)), (e) => e === boom);
});

Deno.test("zstdSink() refuses a bad level", () => {
  assert.throws(() => zstdSink(collectingSink(), 0), RangeError);
  assert.throws(() => zstdSink(collectingSink(), 23), RangeError);
});

Deno.test("maybeDecompress() gives back plain streams byte for byte, short ones too", async () => {
  const plain = sample(100_000, 7);
  plain.set(new TextEncoder().encode("VMA\0"), 0);
  assert.deepEqual(
    await readAll(await maybeDecompress(pieces(plain, 1))),
    plain,
  );
  assert.deepEqual(
    await readAll(await maybeDecompress(pieces(plain, 3))),
    plain,
  );
  for (const short of [[], [0x28], [0x28, 0xb5, 0x2f]]) {
    const bytes = new Uint8Array(short);
    assert.deepEqual(
      await readAll(await maybeDecompress(pieces(bytes, 1))),
      bytes,
    );
  }
});

Deno.test("maybeDecompress() reads what the zstd tool writes: streaming frame, concatenated and skippable frames", async () => {
  const a = sample(300_000, 3);
  const b = sample(70_000, 4);
  // From a pipe, zstd writes one frame without a content size.
  const za = await zstdCli(["-q", "-c", "-3"], a);
  const zb = await zstdCli(["-q", "-c", "-19", "--no-check"], b);
  const skip = new Uint8Array([0x5a, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 0xaa, 0xbb]);
  const stream = new Uint8Array([...skip, ...za, ...skip, ...zb, ...za]);
  const expected = new Uint8Array([...a, ...b, ...a]);
  assert.deepEqual(await zstdCli(["-d", "-c"], stream), expected);
  for (const size of [1, 5, 4096, stream.length]) {
    assert.deepEqual(
      await readAll(await maybeDecompress(pieces(stream, size))),
      expected,
      `pieces of ${size}`,
    );
  }
});

Deno.test("maybeDecompress() fails with ZstdError on truncated or corrupted input", async () => {
  const z = await zstdCli(["-q", "-c"], sample(200_000, 5));
  await assert.rejects(
    readAll(await maybeDecompress(pieces(z.subarray(0, z.length - 3), 999))),
    (e) => e instanceof ZstdError && /truncated/.test(e.message),
  );
  const bad = z.slice();
  bad[Math.floor(bad.length / 2)]! ^= 0x5a;
  await assert.rejects(
    readAll(await maybeDecompress(pieces(bad, 999))),
    (e) => e instanceof ZstdError && /^Cannot decompress: /.test(e.message),
  );
  await assert.rejects(
    readAll(
      await maybeDecompress(pieces(new Uint8Array([...z, 1, 2, 3, 4, 5]), 999)),
    ),
    /no zstd frame at byte/,
  );
});

Deno.test("maybeDecompress() cancels the source when the reader stops early", async () => {
  const z = await zstdCli(["-q", "-c", "-1"], sample(1_000_000, 6));
  let cancelled = false;
  let sent = 0;
  // 1000 concatenated frames: far more than the reader will take.
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent++ === 1000) return c.close();
      c.enqueue(z.slice());
    },
    cancel() {
      cancelled = true;
    },
  });
  const reader = (await maybeDecompress(source)).getReader();
  const first = await reader.read();
  assert.equal(first.done, false);
  await reader.cancel();
  assert.equal(cancelled, true);
  assert.ok(sent < 1000);
});
