import assert from "node:assert/strict";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function run(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("vmabak with no command prints usage and exits 2", async () => {
  const r = await run();
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: vmabak COMMAND/);
});

Deno.test("vmabak with an unknown command exits 2 with one line", async () => {
  const r = await run("frobnicate");
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});
