import assert from "node:assert/strict";
import {
  MAX_SCAN_LENGTH,
  nonZeroMask,
  ZeroScanner,
  zeroWasmModule,
} from "./zero.ts";
import { BLOCK_SIZE, nonZeroMaskReference } from "./zero_reference.ts";
import {
  compileZeroWasm,
  ZERO_GENERATED_PATH,
  zeroGeneratedSource,
} from "../../scripts/build_wasm.ts";

const CLUSTER = 65536;

function same(bytes: Uint8Array, expected?: number): void {
  const want = nonZeroMaskReference(bytes);
  if (expected !== undefined) assert.equal(want, expected, "reference");
  assert.equal(nonZeroMask(bytes), want, `length ${bytes.length}`);
}

/** xorshift32, so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

Deno.test("WASM zero module has no imports and exports the scan", () => {
  const mod = zeroWasmModule();
  assert.equal(WebAssembly.Module.imports(mod).length, 0);
  const names = WebAssembly.Module.exports(mod).map((e) => e.name).sort();
  assert.deepEqual(names, ["heapBase", "memory", "nonZeroMask"]);
});

Deno.test("nonZeroMask() of all-zero and all-0xff clusters", () => {
  same(new Uint8Array(CLUSTER), 0);
  same(new Uint8Array(CLUSTER).fill(0xff), 0xffff);
  same(new Uint8Array(0), 0);
});

Deno.test("nonZeroMask() finds one byte set at the start, middle and end of each block", () => {
  const buf = new Uint8Array(CLUSTER);
  for (let block = 0; block < 16; block++) {
    for (
      const at of [0, 1, 15, 16, 63, 64, 2047, BLOCK_SIZE - 17, BLOCK_SIZE - 1]
    ) {
      const i = block * BLOCK_SIZE + at;
      buf[i] = 1 + (i % 255);
      same(buf, 1 << block);
      buf[i] = 0;
    }
  }
});

Deno.test("nonZeroMask() of short clusters counts the partial last block", () => {
  for (
    const len of [1, 15, 16, 17, 63, 64, 65, 4095, 4096, 4097, 8191, 65535]
  ) {
    const buf = new Uint8Array(len);
    same(buf, 0);
    buf[len - 1] = 0x80;
    same(buf, 1 << Math.floor((len - 1) / BLOCK_SIZE));
    buf[0] = 1;
    same(buf);
  }
});

Deno.test("nonZeroMask() reads misaligned subarray views and nothing outside them", () => {
  const big = new Uint8Array(CLUSTER + 64).fill(0xaa);
  for (const offset of [1, 3, 7, 13, 31, 33]) {
    const view = big.subarray(offset, offset + CLUSTER - 5);
    view.fill(0);
    same(view, 0);
    view[BLOCK_SIZE * 5 + 7] = 2;
    same(view, 1 << 5);
    view[view.length - 1] = 3;
    same(view, (1 << 5) | (1 << 15));
    big.fill(0xaa);
  }
});

Deno.test("nonZeroMask() matches the reference on seeded random clusters", () => {
  const next = rng(0xc0ffee);
  const buf = new Uint8Array(CLUSTER);
  for (let round = 0; round < 400; round++) {
    buf.fill(0);
    const len = round % 4 === 0 ? 1 + (next() % CLUSTER) : CLUSTER;
    const view = buf.subarray(0, len);
    const sets = next() % 24;
    for (let k = 0; k < sets; k++) view[next() % len] = 1 + (next() % 255);
    same(view);
  }
});

Deno.test("nonZeroMask() refuses more than one cluster", () => {
  assert.throws(
    () => nonZeroMask(new Uint8Array(MAX_SCAN_LENGTH + 1)),
    RangeError,
  );
});

Deno.test("ZeroScanner scans in place and survives memory growth", () => {
  const a = new ZeroScanner(4 * CLUSTER);
  const before = a.buffer;
  before[3 * CLUSTER + 2 * BLOCK_SIZE] = 9;
  before[CLUSTER - 1] = 1;
  // A second scanner grows WebAssembly memory; a's view is re-created.
  const b = new ZeroScanner(64 << 20);
  assert.equal(before.byteLength, 0, "old view detached by memory growth");
  const after = a.buffer;
  assert.equal(after.length, 4 * CLUSTER);
  assert.equal(a.maskAt(0, CLUSTER), 1 << 15);
  assert.equal(a.maskAt(CLUSTER, CLUSTER), 0);
  assert.equal(a.maskAt(3 * CLUSTER, CLUSTER), 1 << 2);
  assert.equal(a.maskAt(3 * CLUSTER + 1, 100), 0);
  assert.equal(a.maskAt(3 * CLUSTER + 2 * BLOCK_SIZE, 1), 1);
  // Regions do not overlap.
  b.buffer.fill(0xff);
  assert.equal(a.maskAt(CLUSTER, CLUSTER), 0);
  assert.equal(b.maskAt(b.capacity - CLUSTER, CLUSTER), 0xffff);
  assert.equal(b.mask(new Uint8Array(100)), 0);
  assert.throws(() => a.maskAt(3 * CLUSTER + 1, CLUSTER), RangeError);
  assert.throws(() => a.maskAt(0, CLUSTER + 1), RangeError);
  assert.throws(() => a.maskAt(-1, 10), RangeError);
});

Deno.test("lib/wasm/zero_wasm.generated.ts is up to date with wasm/zero.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmabak-asc-test-" });
  try {
    const wasm = await compileZeroWasm(dir);
    assert.equal(
      await Deno.readTextFile(ZERO_GENERATED_PATH),
      zeroGeneratedSource(wasm),
      "run `deno task build:wasm` and commit the result",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
