import assert from "node:assert/strict";
import { formatCtime } from "./list.ts";

Deno.test("formatCtime() prints an out-of-range archive time as a number, never NaN", () => {
  assert.match(
    formatCtime(0),
    /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d 19(69|70)$/,
  );
  for (const t of [2 ** 62, -1e15]) {
    const s = formatCtime(t);
    assert.doesNotMatch(s, /NaN|undefined/);
    assert.match(s, /seconds since the epoch \(not a date\)$/);
  }
});
