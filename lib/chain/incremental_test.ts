import assert from "node:assert/strict";
import { ClusterSet } from "./cluster_set.ts";
import { ChainError } from "./errors.ts";
import {
  DESCRIPTION_CONFIG,
  makeIncremental,
  readIncremental,
} from "./incremental.ts";
import type { VmaHeader } from "../vma/header.ts";
import { goodDescription } from "../backup/_test_description.ts";

const encoder = new TextEncoder();

function header(
  uuidByte: number,
  devices: { name: string; size: number }[],
  configs: { name: string; data: Uint8Array }[] = [],
): VmaHeader {
  return {
    uuid: new Uint8Array(16).fill(uuidByte),
    ctime: 0,
    configs,
    devices: devices.map((d, i) => ({ id: i + 1, ...d })),
    headerSize: 12800,
  };
}

Deno.test("makeIncremental() keeps short runs inline and spills long ones into configs that readIncremental() joins", () => {
  const clusters = 8 * 65536 * 3; // enough runs for several 64 KiB configs
  const size = clusters * 65536;
  const devices = [{ name: "small", size: 65536 * 100 }, {
    name: "big",
    size,
  }];
  const base = header(1, devices);
  const small = new ClusterSet(100);
  small.addRange(10, 5);
  const big = new ClusterSet(clusters);
  for (let c = 0; c < clusters; c += 2) big.add(c);
  const inc = makeIncremental(base, new Map([["small", small], ["big", big]]));
  assert.equal(inc.record.index, 1);
  assert.equal(inc.record.base, "01010101-0101-0101-0101-010101010101");
  assert.equal(inc.record.full, inc.record.base);
  assert.ok("runs" in inc.record.disks.small!);
  assert.ok(inc.configs.length >= 3, `${inc.configs.length} configs`);
  assert.ok(inc.configs.every((c) => c.data.length <= 65535));
  const next = header(2, devices, [
    {
      name: DESCRIPTION_CONFIG,
      data: encoder.encode(
        JSON.stringify({ ...goodDescription(), incremental: inc.record }),
      ),
    },
    ...inc.configs,
  ]);
  const back = readIncremental(next)!;
  assert.deepEqual([...back.sets.get(1)!.runs()], [[10, 5]]);
  assert.equal(back.sets.get(2)!.count, clusters / 2);
  assert.ok(back.sets.get(2)!.has(clusters - 2));
  assert.ok(!back.sets.get(2)!.has(clusters - 1));
  // The next link counts on from it.
  const again = makeIncremental(next, new Map([["small", small]]));
  assert.equal(again.record.index, 2);
  assert.equal(again.record.full, inc.record.full);
  // A missing part or a wrong count is refused.
  const broken = header(3, devices, next.configs.slice(0, -1));
  assert.throws(() => readIncremental(broken), ChainError);
  const lying = structuredClone(inc.record);
  lying.disks.small!.clusters = 6;
  assert.throws(
    () =>
      readIncremental(
        header(4, devices, [{
          name: DESCRIPTION_CONFIG,
          data: encoder.encode(
            JSON.stringify({ ...goodDescription(), incremental: lying }),
          ),
        }, ...inc.configs]),
      ),
    /says 6 clusters, its runs hold 5/,
  );
});
