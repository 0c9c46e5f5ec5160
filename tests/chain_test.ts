/**
 * Incremental archives built offline (vmabak create for the full, the test
 * writer for incrementals): verify, list, chain extract and merge, checked
 * byte for byte and against Proxmox's own vma tool.
 */
import assert from "node:assert/strict";
import { writeIncremental } from "./helpers/incremental.ts";
import { assertImage, buildChain } from "./helpers/chain_fixture.ts";
import {
  havePveVma,
  oneLine,
  PVE_VMA,
  run,
  vmabak,
  withTempDir,
} from "./helpers/run.ts";

const HAVE_PVE = await havePveVma();

Deno.test("incremental archives: verify checks the recorded set, list shows the chain", async () => {
  await withTempDir(async (dir) => {
    const chain = await buildChain(dir);
    const [, inc1, inc2, inc3] = chain.archives;
    assert.deepEqual(chain.changed[0]!.drive0, [2, 11, 48]);
    for (const inc of [inc1!, inc2!, inc3!]) {
      const v = await vmabak(["verify", "-v", inc]);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stderr, /holds exactly its recorded clusters/);
    }
    const list = await vmabak(["list", inc2!]);
    assert.equal(list.code, 0, list.stderr);
    const full = JSON.parse(
      (await vmabak(["list", "--json", chain.archives[0]!])).text,
    );
    const one = JSON.parse((await vmabak(["list", "--json", inc1!])).text);
    assert.equal(full.incremental, null);
    assert.deepEqual(one.incremental, {
      index: 1,
      base: full.uuid,
      full: full.uuid,
    });
    const lines = list.text.trimEnd().split("\n");
    assert.match(
      lines.find((l) => l.startsWith("INCREMENTAL:"))!,
      new RegExp(`^INCREMENTAL: 2 of full ${full.uuid} base ${one.uuid} uuid `),
    );
    assert.ok(
      lines.includes("CHANGED: dev_id=1 clusters: 4 of 49 devname: drive0"),
    );
    assert.ok(
      lines.includes("CHANGED: dev_id=2 clusters: 0 of 32 devname: drive1"),
    );
    assert.match(lines.at(-1)!, /vmabak merge/);
    // The incremental after no writes holds no cluster.
    const three = JSON.parse((await vmabak(["list", "--json", inc3!])).text);
    assert.deepEqual(
      three.devices.map((d: { changedClusters: number }) => d.changedClusters),
      [0, 0],
    );
    if (HAVE_PVE) {
      // Proxmox's reader rejects an incremental (clusters missing).
      const x = await run(PVE_VMA, ["extract", inc1!, `${dir}/pve-inc`]);
      assert.notEqual(x.code, 0);
    }
    // A recorded cluster that is not stored fails verify.
    await writeIncremental(`${dir}/bad.vma`, {
      base: chain.archives[0]!,
      images: { drive0: chain.states[1]![0], drive1: chain.states[1]![1] },
      changed: chain.changed[0]!,
      omit: { drive0: [11] },
    });
    const bad = await vmabak(["verify", `${dir}/bad.vma`]);
    assert.equal(bad.code, 1);
    assert.match(oneLine(bad.stderr), /missing cluster 11 for stream drive0/);
  });
});

Deno.test("extract --base restores a chain at each instant, byte for byte", async () => {
  await withTempDir(async (dir) => {
    const chain = await buildChain(dir);
    const a = chain.archives;
    for (let n = 0; n < a.length; n++) {
      const bases = a.slice(0, n).reverse().flatMap((p) => ["--base", p]);
      const out = `${dir}/out${n}`;
      const x = await vmabak(["extract", a[n]!, ...bases, out]);
      assert.equal(x.code, 0, x.stderr);
      await assertImage(`${out}/disk-drive0.raw`, chain.states[n]![0]);
      await assertImage(`${out}/disk-drive1.raw`, chain.states[n]![1]);
      assert.equal(
        await Deno.readTextFile(`${out}/qemu-server.conf`),
        "name: chain\n",
      );
    }
  });
});

Deno.test("merge makes a full equal to the last instant that Proxmox's vma accepts, plain and zstd", async () => {
  await withTempDir(async (dir) => {
    const chain = await buildChain(dir);
    const m = await vmabak([
      "merge",
      ...chain.archives,
      "-o",
      `${dir}/m.vma`,
      "-v",
    ]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /merge: 0 clusters from .*inc3\.vma/);
    const list = JSON.parse(
      (await vmabak(["list", "--json", `${dir}/m.vma`])).text,
    );
    assert.equal(list.incremental, null);
    assert.equal((await vmabak(["verify", `${dir}/m.vma`])).code, 0);
    const last = chain.states.at(-1)!;
    const x = await vmabak(["extract", `${dir}/m.vma`, `${dir}/mx`]);
    assert.equal(x.code, 0, x.stderr);
    await assertImage(`${dir}/mx/disk-drive0.raw`, last[0]);
    await assertImage(`${dir}/mx/disk-drive1.raw`, last[1]);
    const z = await vmabak([
      "merge",
      ...chain.archives.slice(0, 3),
      "-o",
      `${dir}/m2.vma.zst`,
    ]);
    assert.equal(z.code, 0, z.stderr);
    if (HAVE_PVE) {
      const v = await run(PVE_VMA, ["verify", "-v", `${dir}/m.vma`]);
      assert.equal(v.code, 0, v.stderr);
      const e = await run(PVE_VMA, ["extract", `${dir}/m.vma`, `${dir}/pve`]);
      assert.equal(e.code, 0, e.stderr);
      // Proxmox's vma names extracted disks disk-NAME.raw.
      await assertImage(`${dir}/pve/disk-drive0.raw`, last[0]);
      await assertImage(`${dir}/pve/disk-drive1.raw`, last[1]);
      const zz = await run("bash", [
        "-o",
        "pipefail",
        "-c",
        `zstd -q -d -c ${dir}/m2.vma.zst | ${PVE_VMA} extract - ${dir}/pvez`,
      ]);
      assert.equal(zz.code, 0, zz.stderr);
      await assertImage(
        `${dir}/pvez/disk-drive0.raw`,
        chain.states[2]![0],
      );
    }
  });
});

Deno.test("bad chains: wrong order, a missing link, another VM, an incremental alone: one line, nothing written", async () => {
  await withTempDir(async (dir) => {
    const chain = await buildChain(dir);
    const [full, inc1, inc2] = chain.archives as [string, string, string];
    // Another VM: its own full and incremental.
    const other = `${dir}/other.vma`;
    assert.equal(
      (await vmabak([
        "create",
        other,
        `drive0=${chain.states[0]![0]}`,
        `drive1=${chain.states[0]![1]}`,
      ])).code,
      0,
    );
    await writeIncremental(`${dir}/other-inc1.vma`, {
      base: other,
      images: { drive0: chain.states[1]![0], drive1: chain.states[1]![1] },
      changed: chain.changed[0]!,
    });
    const cases: [string[], RegExp][] = [
      [["merge", inc1, full, inc2], /wrong order/],
      [["merge", full, inc2, inc1], /wrong order/],
      [["merge", full, inc2], /a link is missing/],
      [["merge", inc1, inc2], /its base is not given/],
      [["merge", other, inc1], /another VM or another chain/],
      [["merge", full, `${dir}/other-inc1.vma`], /another VM or another chain/],
      [["merge", full, full], /same archive/],
    ];
    for (const [args, re] of cases) {
      const r = await vmabak([...args, "-o", `${dir}/out.vma`]);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(oneLine(r.stderr), re);
    }
    const x = [
      await vmabak([
        "extract",
        inc2,
        "--base",
        full,
        "--base",
        inc1,
        `${dir}/t`,
      ]),
      await vmabak(["extract", inc2, "--base", full, `${dir}/t`]),
      await vmabak(["extract", inc1, `${dir}/t`]),
      await vmabak(["restore", inc2, `${dir}/t`]),
    ];
    for (const r of x) assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(x[0]!.stderr), /wrong order/);
    assert.match(oneLine(x[1]!.stderr), /a link is missing/);
    assert.match(
      oneLine(x[2]!.stderr),
      /it is incremental 1 of the chain of full .*--base/,
    );
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.ok(
      !left.some((n) => n.startsWith("out.vma") || n === "t"),
      left.join(" "),
    );
  });
});
