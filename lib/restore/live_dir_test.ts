import assert from "node:assert/strict";
import { nbdBacking } from "./local_disks.ts";
import { backingExport } from "./live_dir.ts";
import { deviceFileName } from "../vma/extract.ts";

Deno.test("nbdBacking() names the export in JSON whatever it holds; backingExport() reads back only that form", () => {
  const name = `drive-scsi0,read-only"}` + "\n";
  const b = nbdBacking("/tmp/x,y/nbd.sock", name);
  assert.ok(b.startsWith("json:"));
  assert.deepEqual(JSON.parse(b.slice(5)), {
    driver: "raw",
    file: {
      driver: "nbd",
      server: { type: "unix", path: "/tmp/x,y/nbd.sock" },
      export: name,
    },
  });
  assert.equal(backingExport(b), name);
  for (
    const other of [
      "nbd+unix:///drive-scsi0?socket=/tmp/s",
      "/var/lib/base.qcow2",
      'json:{"driver":"qcow2","file":{"driver":"file","filename":"/x"}}',
      'json:{"driver":"raw","file":{"driver":"file","filename":"/x"}}',
      "json:{not json",
    ]
  ) {
    assert.equal(backingExport(other), null, other);
  }
});

Deno.test('deviceFileName(name, "qcow2"): an overlay is named as extract names the disk, with .qcow2', () => {
  assert.equal(
    deviceFileName("drive-scsi0", "qcow2"),
    "disk-drive-scsi0.qcow2",
  );
  assert.throws(() => deviceFileName("../x", "qcow2"));
});
