import assert from "node:assert/strict";
import { vmabak } from "./helpers/run.ts";

Deno.test("vmabak with no command prints usage and exits 2", async () => {
  const r = await vmabak([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: vmabak COMMAND/);
});

Deno.test("vmabak with an unknown command exits 2 with one line", async () => {
  const r = await vmabak(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});
