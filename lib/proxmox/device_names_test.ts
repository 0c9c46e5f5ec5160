import assert from "node:assert/strict";
import type { VmDisk } from "../backup/inventory.ts";
import { deviceNames, validDeviceNames } from "./device_names.ts";
import { testDisk } from "../backup/_test_description.ts";

function disk(name: string, node: string, qdev = ""): VmDisk {
  return testDisk({ name, node, qdev });
}

Deno.test("deviceNames: drive-<virtdev> when every disk has a Proxmox key, else the QEMU names", () => {
  const disks = [disk("drive0", "n0"), disk("ns0", "ns0")];
  assert.deepEqual(deviceNames(disks, ["virtio0", "scsi0"], null), [
    "drive-virtio0",
    "drive-scsi0",
  ]);
  assert.deepEqual(deviceNames(disks, ["virtio0", null], null), [
    "drive0",
    "ns0",
  ]);
  assert.deepEqual(deviceNames(disks, null, null), ["drive0", "ns0"]);
});

Deno.test("deviceNames: an incremental keeps its base's names, found by QEMU name, device or node", () => {
  const disks = [
    disk("drive0", "#block123", "/machine/peripheral/vd0/virtio-backend"),
    disk("ns1", "ns1"),
    disk("drive2", "#block9"),
  ];
  const base = [
    // New-style base, QEMU restarted: auto node names changed, device the same.
    { name: "drive-virtio0", node: "#block1", qdev: disks[0]!.qdev },
    { name: "old-ns1", node: "ns1", qdev: "" },
    // Old-style base: the QEMU name.
    { name: "drive2", node: "#block7", qdev: "" },
  ];
  assert.deepEqual(
    deviceNames(disks, ["virtio0", "scsi0", "virtio1"], base),
    ["drive-virtio0", "old-ns1", "drive2"],
  );
  // A disk the base lacks gets the new name.
  assert.deepEqual(
    deviceNames(disks, ["virtio0", "scsi0", "virtio1"], base.slice(0, 1)),
    ["drive-virtio0", "drive-scsi0", "drive-virtio1"],
  );
  // Names that would clash fall back to the QEMU names.
  const clash = [{
    name: "drive-scsi0",
    node: "#block1",
    qdev: disks[0]!.qdev,
  }];
  assert.deepEqual(
    deviceNames(disks, ["virtio0", "scsi0", "virtio1"], clash),
    ["drive0", "ns1", "drive2"],
  );
});

Deno.test("validDeviceNames: unique, non-empty, no whitespace, no '=', not vmstate", () => {
  assert.ok(validDeviceNames(["drive-scsi0", "drive-virtio0"]));
  for (
    const bad of [["a", "a"], [""], ["a b"], ["a=b"], ["a\tb"], ["vmstate"]]
  ) {
    assert.ok(!validDeviceNames(bad), JSON.stringify(bad));
  }
});
