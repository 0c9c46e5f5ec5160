import assert from "node:assert/strict";
import { concatBytes } from "./concat.ts";

Deno.test("concatBytes joins in order, empty parts included, into a new array", () => {
  const a = new Uint8Array([1, 2]);
  const b = new Uint8Array([3]);
  const out = concatBytes([a, new Uint8Array(0), b.subarray(0, 1)]);
  assert.deepEqual(out, new Uint8Array([1, 2, 3]));
  out[0] = 9;
  assert.equal(a[0], 1);
  assert.deepEqual(concatBytes([]), new Uint8Array(0));
});
