import assert from "node:assert/strict";
import { CLUSTER_ABSENT, CLUSTER_ZERO, ClusterMap } from "./cluster_map.ts";

Deno.test("ClusterMap.lookup() finds stored clusters in any order, zeros and absent ones", () => {
  const map = new ClusterMap(3 * 16384 + 5);
  const stored = new Map<number, number>();
  let s = 1;
  for (let i = 0; i < 20000; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const c = s % map.count;
    if (stored.has(c)) continue;
    stored.set(c, i);
    map.setStored(c, i);
  }
  map.setZero(map.count - 1);
  for (let c = 0; c < map.count; c++) {
    const want = stored.get(c) ??
      (c === map.count - 1 ? CLUSTER_ZERO : CLUSTER_ABSENT);
    assert.equal(map.lookup(c), want, `cluster ${c}`);
  }
});

Deno.test("ClusterMap keeps a few bytes per stored cluster of a sparse disk", () => {
  const clusters = 100 * 16384; // 100 GiB
  const map = new ClusterMap(clusters);
  for (let c = 0; c < clusters; c += 100) map.setStored(c, c);
  const perStored = (map.memoryBytes - clusters / 8) / map.stored;
  assert.ok(perStored <= 12, `${perStored} bytes per stored cluster`);
  assert.equal(map.lookup(500), 500);
  assert.equal(map.lookup(501), CLUSTER_ABSENT);
});

Deno.test("ClusterMap turns a full page dense: 4 bytes per cluster", () => {
  const map = new ClusterMap(16384);
  for (let c = 16383; c >= 0; c--) map.setStored(c, c * 3);
  assert.equal(map.memoryBytes, 16384 * 4 + 16384 / 8);
  for (let c = 0; c < 16384; c++) assert.equal(map.lookup(c), c * 3);
});
