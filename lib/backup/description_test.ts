import assert from "node:assert/strict";
import {
  checkVmDescription,
  DescriptionError,
  parseVmDescription,
} from "./description.ts";
import { goodDescription } from "./_test_description.ts";

const enc = new TextEncoder();

function withDisk(change: Record<string, unknown>): Record<string, unknown> {
  const d = goodDescription();
  (d.disks as Record<string, unknown>[])[0] = {
    ...(d.disks as Record<string, unknown>[])[0],
    ...change,
  };
  return d;
}

Deno.test("parseVmDescription() returns the typed description and ignores unknown fields", () => {
  const d = { ...goodDescription(), merged: { from: [] }, future: 1 };
  const got = parseVmDescription(enc.encode(JSON.stringify(d)));
  assert.equal(got.machine, "pc-q35-7.2");
  assert.equal(got.disks[0]!.deviceId, "vd0");
  assert.equal("future" in got, false);
  // QOM's names for devices without an id and QEMU's automatic node names pass.
  checkVmDescription(withDisk({ deviceId: "device[3]", node: "#block123" }));
});

Deno.test("parseVmDescription() refuses hostile or malformed descriptions with one line naming the field", () => {
  const cases: [unknown, RegExp][] = [
    [
      { ...goodDescription(), name: "vm\ntouch PWNED\n#" },
      /name holds a control character/,
    ],
    [{ ...goodDescription(), machine: "q35,memory-backend=x" }, /machine/],
    [
      { ...goodDescription(), incremental: { base: "x" } },
      /incremental base is not a uuid/,
    ],
    [{ ...goodDescription(), machine: "q35'; touch PWNED" }, /machine/],
    [withDisk({ node: "n0,read-only=on" }), /disks\[0\]\.node/],
    [withDisk({ deviceId: "vd0,drive=x" }), /disks\[0\]\.deviceId/],
    [
      withDisk({ deviceType: "virtio-blk-pci,x-y=1" }),
      /not a known disk device type/,
    ],
    [withDisk({ deviceType: "pflash" }), /not a known disk device type/],
    [withDisk({ pciAddr: "0x2.0x0,multifunction=on" }), /pciAddr/],
    [withDisk({ name: "../../etc" }), /disks\[0\]\.name/],
    [withDisk({ bootIndex: "1,x=y" }), /bootIndex/],
    [withDisk({ size: -1 }), /size/],
    [{ ...goodDescription(), disks: 5 }, /disks is not a list/],
    [{ ...goodDescription(), memoryBytes: 1e300 }, /memoryBytes/],
    [{ ...goodDescription(), cpus: 0 }, /cpus/],
    [{ ...goodDescription(), kvm: "yes" }, /kvm/],
    [null, /vmabak\.json is not an object/],
    [[1], /vmabak\.json is not an object/],
    [{
      ...goodDescription(),
      disks: [
        (goodDescription().disks as unknown[])[0],
        (goodDescription().disks as unknown[])[0],
      ],
    }, /appears twice/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(
      () => parseVmDescription(enc.encode(JSON.stringify(value))),
      (e: unknown) => {
        assert.ok(e instanceof DescriptionError, String(e));
        assert.match(e.message, pattern);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  }
  assert.throws(
    () => parseVmDescription(enc.encode("{")),
    /not valid UTF-8 JSON/,
  );
  assert.throws(
    () => parseVmDescription(new Uint8Array([0x7b, 0xff, 0x7d])),
    /not valid UTF-8 JSON/,
  );
});
