import assert from "node:assert/strict";
import type { VmDisk } from "./inventory.ts";
import { DriveSelectionError, selectDisks } from "./select_disks.ts";
import { testDisk } from "./_test_description.ts";

function disk(name: string, node: string, deviceId: string): VmDisk {
  const qdev = deviceId === "" ? "" : `/machine/peripheral/${deviceId}`;
  return testDisk({ name, node, qdev, deviceId });
}

const DISKS = [
  disk("drive0", "drive0", "vd0"),
  disk("ide0-hd0", "#block412", "hd0"),
  disk("ns2", "ns2", "sd2"),
];
const ARCHIVE = ["drive-virtio0", "drive-ide0", "drive-scsi0"];

function failure(fn: () => unknown): DriveSelectionError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DriveSelectionError);
    return error;
  }
  assert.fail("no error");
}

Deno.test("selectDisks() takes archive device names, QEMU names and device ids, in the order given", () => {
  assert.deepEqual(
    selectDisks(DISKS, ["drive-scsi0", "hd0", "drive0"], ARCHIVE)
      .map((d) => d.deviceId),
    ["sd2", "hd0", "vd0"],
  );
  assert.deepEqual(
    selectDisks(DISKS, ["drive-ide0"], ARCHIVE).map((d) => d.name),
    ["ide0-hd0"],
  );
  assert.equal(selectDisks(DISKS, [], ARCHIVE), DISKS);
  // Without archive names (facts unreadable), only the QEMU names.
  assert.equal(
    failure(() => selectDisks(DISKS, ["drive-scsi0"])).reason,
    "unknown",
  );
});

Deno.test("selectDisks() refuses an unknown name with one line listing every disk's names, escaped", () => {
  const e = failure(() => selectDisks(DISKS, ["nope\n\x1b[2J"], ARCHIVE));
  assert.equal(e.wanted, "nope\n\x1b[2J");
  assert.equal(
    e.message,
    'Cannot back up drive "nope\\n\\x1b[2J": the VM has no such disk (valid names: drive-virtio0|drive0|vd0, drive-ide0|ide0-hd0|hd0, drive-scsi0|ns2|sd2)',
  );
  // Auto-generated node names (#block...) are not names a user can rely on.
  assert.equal(
    failure(() => selectDisks(DISKS, ["#block412"], ARCHIVE)).reason,
    "unknown",
  );
  const hostile = [disk("a\x07b", "a\x07b", "")];
  assert.match(
    failure(() => selectDisks(hostile, ["x"], null)).message,
    /\(valid names: a\\x07b\)$/,
  );
});

Deno.test("selectDisks() refuses a name two disks answer to, and a disk chosen twice", () => {
  // A VM whose drive id is another disk's archive name.
  const disks = [disk("drive-virtio1", "n0", "vd0"), disk("d1", "n1", "vd1")];
  const e = failure(() =>
    selectDisks(disks, ["drive-virtio1"], ["drive-virtio0", "drive-virtio1"])
  );
  assert.equal(e.reason, "ambiguous");
  assert.match(e.message, /it names more than one disk/);
  const twice = failure(() =>
    selectDisks(DISKS, ["vd0", "drive-virtio0"], ARCHIVE)
  );
  assert.equal(twice.reason, "repeated");
  assert.equal(twice.wanted, "drive-virtio0");
});
