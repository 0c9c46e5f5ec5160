import assert from "node:assert/strict";
import { formatCtime, jsonForTerminal } from "./list.ts";

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

Deno.test("jsonForTerminal() escapes DEL, C1 controls and bidi overrides; the JSON value is unchanged", () => {
  const value = { name: "a\x7fb\x9bc\u202ed\u2028e" };
  const text = jsonForTerminal(JSON.stringify(value));
  assert.equal(text, '{"name":"a\\u007fb\\u009bc\\u202ed\\u2028e"}');
  assert.deepEqual(JSON.parse(text), value);
});
