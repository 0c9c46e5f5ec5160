import assert from "node:assert/strict";
import { ClusterSet, decodeRuns, encodeRuns } from "./cluster_set.ts";
import { ChainError } from "./errors.ts";

Deno.test("encodeRuns() and decodeRuns() round-trip runs, single clusters and the empty set", () => {
  for (const clusters of [[], [0], [5, 6, 7, 200, 4095], [4095]]) {
    const set = new ClusterSet(4096);
    for (const c of clusters) set.add(c);
    const back = decodeRuns(encodeRuns(set), 4096);
    assert.equal(back.count, clusters.length);
    assert.deepEqual([...back.runs()], [...set.runs()]);
  }
  const big = new ClusterSet(3_000_000);
  big.addRange(0, 300);
  big.add(2_999_999);
  assert.deepEqual([...decodeRuns(encodeRuns(big), 3_000_000).runs()], [
    [0, 300],
    [2_999_999, 1],
  ]);
});

Deno.test("encodeRuns() stores scattered clusters in under 3 characters each", () => {
  const set = new ClusterSet(32768);
  for (let c = 0; c < 32768; c += 20) set.add(c);
  assert.ok(
    encodeRuns(set).length < 3 * set.count,
    `${encodeRuns(set).length}`,
  );
});

Deno.test("decodeRuns() refuses runs past the disk, empty or touching runs, bad base64, truncation", () => {
  const bytes = (b: number[]) => btoa(String.fromCharCode(...b));
  const cases = [
    bytes([0, 11]), // 0..10 on a 10-cluster disk
    bytes([0, 0]), // empty run
    bytes([0, 2, 0, 1]), // touching runs
    bytes([0x80]), // truncated number
    "not base64!",
  ];
  for (const text of cases) {
    assert.throws(() => decodeRuns(text, 10), ChainError, text);
  }
});
