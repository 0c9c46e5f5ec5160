import assert from "node:assert/strict";
import { VZDUMP_NAME_RE, vzdumpPaths } from "./vzdump_name.ts";

Deno.test("vzdumpPaths() names archive and log as vzdump does", () => {
  const date = new Date(2026, 10, 30, 12, 0, 5);
  const p = vzdumpPaths("/backups/", 120, date, true);
  assert.equal(
    p.archive,
    "/backups/vzdump-qemu-120-2026_11_30-12_00_05.vma.zst",
  );
  assert.equal(p.log, "/backups/vzdump-qemu-120-2026_11_30-12_00_05.log");
  const name = p.archive.split("/").pop()!;
  const m = VZDUMP_NAME_RE.exec(name);
  assert.ok(m);
  assert.equal(m[2], "120");
  // pve-storage archive_info: ^(vzdump-(lxc|openvz|qemu)-.+\.(tgz|(?:tar|vma)(?:\.(gz|lzo|zst|bz2))?))$
  assert.match(
    name,
    /^(vzdump-(lxc|openvz|qemu)-.+\.(tgz|(?:tar|vma)(?:\.(gz|lzo|zst|bz2))?))$/,
  );
  assert.ok(
    VZDUMP_NAME_RE.test(
      vzdumpPaths("d", 999999999, date, false).archive.slice(2),
    ),
  );
});
