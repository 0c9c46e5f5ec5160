import assert from "node:assert/strict";
import { countConnections } from "./socket_busy.ts";

// From a real QEMU with one QMP client served and a second one queued.
const PROC = `Num       RefCount Protocol Flags    Type St Inode Path
000000003d3c47a8: 00000003 00000000 00000000 0001 03 83937 /tmp/qb/qmp.sock
000000004d3c47a8: 00000002 00000000 00000000 0001 03 83938 /tmp/qb/qmp.sock
00000000e1aea586: 00000003 00000000 00000000 0001 02     0 /tmp/qb/qmp.sock
000000002bdb1eb5: 00000002 00000000 00010000 0001 01 83652 /tmp/qb/qmp.sock
0000000011111111: 00000002 00000000 00010000 0001 01 83653 /tmp/qb/other.sock
0000000022222222: 00000003 00000000 00000000 0001 03 83654 /tmp/qb/other.sock
0000000033333333: 00000003 00000000 00000000 0001 03 83655
`;

Deno.test("countConnections() counts accepted connections of one socket path, not its listener, queued ones or ones whose client left", () => {
  assert.equal(countConnections(PROC, "/tmp/qb/qmp.sock"), 1);
  assert.equal(countConnections(PROC, "/tmp/qb/other.sock"), 1);
  assert.equal(countConnections(PROC, "/tmp/qb/none.sock"), 0);
  // A socket bound by a relative path matches its absolute form.
  const relative = PROC.replaceAll("/tmp/qb/qmp.sock", "qmp.sock");
  assert.equal(countConnections(relative, `${Deno.cwd()}/qmp.sock`), 1);
});
