import assert from "node:assert/strict";
import {
  checkQemuId,
  printable,
  qemuOptValue,
  shellQuote,
  UnsafeTextError,
} from "./escape.ts";

const HOSTILE = [
  "vm\ntouch PWNED\n#",
  "a'b\"c$(touch PWNED)`touch PWNED`;|&<>*?[]{}~ \t\\",
  "--option",
  "",
  "é ü 日本",
  "'",
  "''\\''",
];

Deno.test("printable() escapes control characters, bidi overrides and backslashes", () => {
  assert.equal(printable("plain name-1.raw"), "plain name-1.raw");
  assert.equal(
    printable("drive\nDEV: dev_id=2\x1b[2J\r\t\x7f\u009b\u202e\\"),
    "drive\\nDEV: dev_id=2\\x1b[2J\\r\\t\\x7f\\x9b\\u{202e}\\\\",
  );
  assert.equal(printable("abcdef", 3), "abc...");
  for (let c = 0; c < 0x20; c++) {
    const out = printable(`a${String.fromCharCode(c)}b`);
    assert.ok([...out].every((ch) => ch.charCodeAt(0) >= 0x20), out);
  }
});

Deno.test("shellQuote() words come back from a real sh byte for byte", async () => {
  const words = HOSTILE.map(shellQuote);
  const out = await new Deno.Command("sh", {
    args: ["-c", `for a in ${words.join(" ")}; do printf '%s\\0' "$a"; done`],
    cwd: await Deno.makeTempDir(),
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  assert.deepEqual(got, HOSTILE);
  assert.throws(() => shellQuote("a\0b"), UnsafeTextError);
});

Deno.test("qemuOptValue() doubles commas and refuses control characters", () => {
  assert.equal(
    qemuOptValue("/a,node-name=x,,y", "path"),
    "/a,,node-name=x,,,,y",
  );
  assert.throws(() => qemuOptValue("a\nb", "path"), /control character/);
});

Deno.test("checkQemuId() accepts QEMU ids only", () => {
  assert.equal(checkQemuId("drive-scsi0.a_b", "id"), "drive-scsi0.a_b");
  for (
    const bad of [
      "n0,read-only=on",
      "0abc",
      "",
      "a b",
      "#block1",
      "a".repeat(128),
    ]
  ) {
    assert.throws(() => checkQemuId(bad, "node name"), UnsafeTextError);
  }
});
