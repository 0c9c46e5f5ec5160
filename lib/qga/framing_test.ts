import assert from "node:assert/strict";
import { QgaLineParser } from "./framing.ts";

const enc = new TextEncoder();

Deno.test("QgaLineParser drops stale bytes up to the sync delimiter 0xFF", () => {
  const p = new QgaLineParser();
  p.expectSync();
  assert.deepEqual(p.push(enc.encode('{"return": 7}\n{"ret')), []);
  assert.deepEqual(
    p.push(new Uint8Array([0xff, ...enc.encode('{"return": 42}\n{"return"')])),
    [{ return: 42 }],
  );
  assert.deepEqual(p.push(enc.encode(": 1}\n\n")), [{ return: 1 }]);
});

Deno.test("QgaLineParser refuses a reply that is not a JSON object", () => {
  assert.throws(
    () => new QgaLineParser().push(enc.encode("[1]\n")),
    /not a JSON object/,
  );
  assert.throws(() => new QgaLineParser().push(enc.encode("{x\n")), /not JSON/);
});
