import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { VmaReader } from "./reader.ts";
import { formatUuid } from "./format.ts";

const FIXTURE = new URL(
  "../../../shared/fixtures/proxmox-sample.vma",
  import.meta.url,
);

async function openFixture(): Promise<VmaReader> {
  const file = await Deno.open(FIXTURE);
  return await VmaReader.open(file.readable);
}

Deno.test("VmaReader reads the header of a real Proxmox archive", async () => {
  const reader = await openFixture();
  await reader.close();
  const h = reader.header;
  assert.equal(formatUuid(h.uuid), "04fc12eb-0fed-4322-9aaa-f4e412f68096");
  assert.deepEqual(h.configs.map((c) => [c.name, c.data.length]), [[
    "qemu-server.conf",
    417,
  ]]);
  assert.deepEqual(h.devices, [{
    id: 1,
    name: "drive-scsi0",
    size: 10737418240,
    exactSize: 10737418240n,
  }]);
});

Deno.test("VmaReader yields the Proxmox archive's clusters and reports cluster 23 missing", async () => {
  const reader = await openFixture();
  const clusters = new Map<number, Uint8Array>();
  const extents = new Set<number>();
  for await (const ev of reader.clusters()) {
    clusters.set(ev.cluster, ev.data.slice());
    extents.add(ev.extent);
  }
  assert.equal(extents.size, 2);
  assert.equal(clusters.size, 116);
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  assert.equal(
    sha(clusters.get(0)!),
    "cf4adcf1933a8c9a0a3ff5588e1400e6beea8a32212b3a35ba08c7b08e4e6b1f",
  );
  for (let c = 1; c <= 15; c++) {
    assert.ok(clusters.get(c)!.every((b) => b === 0), `cluster ${c} zero`);
  }
  const run = new Uint8Array(7 * 65536);
  for (let c = 16; c <= 22; c++) run.set(clusters.get(c)!, (c - 16) * 65536);
  assert.equal(
    sha(run),
    "8c989a3aa590795fa919ccb7d1f28651c85f8a0d9ba00ab22cdd9fb760fa7955",
  );
  assert.deepEqual(reader.missingClusters().map((m) => m.cluster), [23]);
  assert.throws(
    () => reader.checkComplete(),
    /detected missing cluster 23 for stream drive-scsi0/,
  );
});
