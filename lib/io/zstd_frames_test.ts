import assert from "node:assert/strict";
import {
  FRAME_END,
  type FramePiece,
  ZstdFrameSplitter,
} from "./zstd_frames.ts";
import { looksLikeZstd, ZstdError } from "./zstd_format.ts";
import { nodeZstd } from "./_node_zstd.ts";

function frame(bytes: number, checksum = 1): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7) % 251 < 100 ? 0 : i % 13;
  return Uint8Array.from(nodeZstd.zstdCompressSync(data, {
    params: {
      [nodeZstd.constants.ZSTD_c_compressionLevel]: 3,
      [nodeZstd.constants.ZSTD_c_checksumFlag]: checksum,
    },
  }));
}

function skippable(nibble: number, payload: number[]): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x184d2a50 + nibble, true);
  view.setUint32(4, payload.length, true);
  out.set(payload, 8);
  return out;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Feeds `bytes` in pieces cut at `cuts`; returns the frames it passed on. */
function split(bytes: Uint8Array, cuts: number[] = []): Uint8Array[] {
  const s = new ZstdFrameSplitter();
  const pieces: FramePiece[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    pieces.push(...s.push(bytes.subarray(prev, c)));
    prev = c;
  }
  s.end();
  const frames: Uint8Array[] = [];
  let current: Uint8Array[] = [];
  for (const p of pieces) {
    if (p === FRAME_END) {
      frames.push(cat(...current));
      current = [];
    } else current.push(p);
  }
  assert.equal(current.length, 0, "bytes after the last frame end");
  assert.equal(s.frames, frames.length);
  return frames;
}

Deno.test("looksLikeZstd() knows the frame magic and the 16 skippable magics", () => {
  assert.equal(looksLikeZstd(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])), true);
  for (let n = 0; n < 16; n++) {
    assert.equal(looksLikeZstd(skippable(n, []).subarray(0, 4)), true);
  }
  assert.equal(looksLikeZstd(new Uint8Array([0x28, 0xb5, 0x2f])), false);
  assert.equal(looksLikeZstd(new TextEncoder().encode("VMA\0")), false);
  assert.equal(looksLikeZstd(new Uint8Array([0x60, 0x2a, 0x4d, 0x18])), false);
});

Deno.test("ZstdFrameSplitter passes one frame through whole, cut at every byte", () => {
  for (const f of [frame(0), frame(1), frame(300, 0), frame(70000)]) {
    assert.deepEqual(split(f), [f]);
    for (let cut = 1; cut < f.length; cut++) {
      assert.deepEqual(split(f, [cut]), [f], `cut at ${cut}`);
    }
    const everyByte = Array.from({ length: f.length - 1 }, (_, i) => i + 1);
    assert.deepEqual(split(f, everyByte), [f]);
  }
});

Deno.test("ZstdFrameSplitter separates concatenated frames and drops skippable ones", () => {
  const a = frame(5000);
  const b = frame(0);
  const c = frame(200_000, 0);
  const stream = cat(
    skippable(0, [1, 2, 3]),
    a,
    skippable(15, []),
    b,
    skippable(7, [9]),
    c,
    skippable(3, [4, 5]),
  );
  assert.deepEqual(split(stream), [a, b, c]);
  assert.deepEqual(
    split(stream, [1, 9, 12, a.length + 13, stream.length - 3]),
    [
      a,
      b,
      c,
    ],
  );
  assert.deepEqual(split(skippable(0, [1])), []);
  assert.deepEqual(split(new Uint8Array(0)), []);
});

Deno.test("ZstdFrameSplitter.end() rejects a stream cut inside any frame", () => {
  const stream = cat(frame(3000), skippable(1, [1, 2, 3, 4]), frame(10));
  const a = frame(3000).length;
  for (let n = 1; n < stream.length; n++) {
    if (n === a || n === a + 12) continue; // between frames
    const s = new ZstdFrameSplitter();
    s.push(stream.subarray(0, n));
    assert.throws(() => s.end(), ZstdError, `cut at ${n}`);
  }
});

Deno.test("ZstdFrameSplitter rejects garbage after a frame and reserved bits", () => {
  const f = frame(100);
  assert.throws(
    () => new ZstdFrameSplitter().push(cat(f, new Uint8Array([1, 2, 3, 4]))),
    (e: Error) =>
      e instanceof ZstdError &&
      e.message.includes(`no zstd frame at byte ${f.length}`),
  );
  const reservedBit = f.slice();
  reservedBit[4]! |= 0x08;
  assert.throws(() => new ZstdFrameSplitter().push(reservedBit), ZstdError);
  // Raw block header type 3 (reserved) right after a single-segment header.
  const bad = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x07, 0, 0]);
  assert.throws(() => new ZstdFrameSplitter().push(bad), /reserved block type/);
});

Deno.test("ZstdFrameSplitter passes a frame in one chunk on as one subarray, not a copy", () => {
  const a = frame(200_000);
  const b = frame(5000);
  const input = cat(a, skippable(2, [7, 7]), b);
  const s = new ZstdFrameSplitter();
  const pieces = s.push(input);
  assert.equal(pieces.length, 4);
  assert.equal(pieces[1], FRAME_END);
  assert.equal(pieces[3], FRAME_END);
  const [pa, pb] = [pieces[0] as Uint8Array, pieces[2] as Uint8Array];
  assert.equal(pa.buffer, input.buffer);
  assert.equal(pa.byteOffset, input.byteOffset);
  assert.equal(pa.length, a.length);
  assert.equal(pb.byteOffset, a.length + 10);
  assert.deepEqual(pb, b);
  s.end();
});
