import assert from "node:assert/strict";
import { NbdClient } from "../lib/nbd/client.ts";
import { NbdRequestError } from "../lib/nbd/errors.ts";
import { NBD_E, NBD_STATE_DIRTY, NBD_STATE_HOLE } from "../lib/nbd/format.ts";
import { haveTool, qemuImg } from "./helpers/run.ts";
import { fullMap } from "./helpers/nbd_map.ts";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";

const HAVE = await haveQemu() && await haveTool("qemu-nbd");

Deno.test({
  name:
    "NbdClient reads QEMU's snapshot-access export: point in time, TRIM then EINVAL, dirty bitmap",
  ignore: !HAVE,
  async fn() {
    const size = 32 * 1024 * 1024;
    const vm = await TestVm.start({
      disks: [{
        format: "raw",
        size,
        fill: ["write -P 0x11 0 8M", "write -P 0x22 16M 1M"],
      }],
    });
    try {
      const q = vm.monitor;
      const d = vm.disks[0]!;
      await q.execute("block-dirty-bitmap-add", {
        node: d.node,
        name: "bm0",
        granularity: 65536,
      });
      await vm.guestWrite(0, 0x44, 20 * 1024 * 1024, 65536); // dirty
      await q.execute("block-dirty-bitmap-disable", {
        node: d.node,
        name: "bm0",
      });
      const fleece = `${vm.dir}/fleece.qcow2`;
      await qemuImg(["create", "-q", "-f", "qcow2", fleece, String(size)]);
      await q.execute("blockdev-add", {
        driver: "qcow2",
        "node-name": "fleece",
        file: { driver: "file", filename: fleece },
        discard: "unmap",
      });
      await q.execute("blockdev-add", {
        driver: "copy-before-write",
        "node-name": "cbw",
        file: d.node,
        target: "fleece",
        "on-cbw-error": "break-snapshot",
        "cbw-timeout": 30,
      });
      await q.execute("qom-set", {
        path: d.qdev,
        property: "drive",
        value: "cbw",
      });
      await q.execute("blockdev-add", {
        driver: "snapshot-access",
        "node-name": "acc",
        file: "cbw",
        discard: "unmap",
      });
      const sock = `${vm.dir}/nbdsrv.sock`;
      await q.execute("nbd-server-start", {
        addr: { type: "unix", data: { path: sock } },
      });
      await q.execute("block-export-add", {
        type: "nbd",
        id: "exp0",
        "node-name": "acc",
        name: "drive0",
        writable: true,
        bitmaps: [{ node: d.node, name: "bm0" }],
      });
      const truth = (await vm.snapshotDisks("t0"))[0]!;
      await vm.guestWrite(0, 0x55, 0, 1024 * 1024); // after the instant
      const c = await NbdClient.connect({
        address: { path: sock },
        exportName: "drive0",
        metaContexts: ["base:allocation", "qemu:dirty-bitmap:bm0"],
      });
      try {
        assert.ok(c.canMultiConn && c.canTrim);
        assert.ok(c.hasMetaContext("qemu:dirty-bitmap:bm0"));
        const all = new Uint8Array(size);
        await c.read(0, all);
        assert.deepEqual(all, await Deno.readFile(truth));

        const dirty = (await fullMap(c, "qemu:dirty-bitmap:bm0")).filter((e) =>
          (e.flags & NBD_STATE_DIRTY) !== 0
        );
        assert.deepEqual(dirty, [{
          offset: 20 * 1024 * 1024,
          length: 65536,
          flags: NBD_STATE_DIRTY,
        }]);
        const base = await fullMap(c);
        assert.ok(base.some((e) => (e.flags & NBD_STATE_HOLE) !== 0));

        await c.trim(0, 4 * 1024 * 1024);
        const err = await c.read(1024 * 1024, new Uint8Array(65536)).then(
          () => null,
          (e) => e,
        );
        assert.ok(err instanceof NbdRequestError, String(err));
        assert.equal(err.errno, NBD_E.INVAL);
        assert.match(
          err.message,
          /^Cannot read 65536 bytes at offset 1048576 from NBD export "drive0": EINVAL \(/,
        );
        const later = new Uint8Array(65536);
        await c.read(8 * 1024 * 1024, later); // the rest stays readable
        assert.deepEqual(later, all.subarray(8 << 20, (8 << 20) + 65536));
      } finally {
        await c.close();
      }
    } finally {
      await vm.destroy();
    }
  },
});
