import assert from "node:assert/strict";
import {
  createExclusive,
  createPartial,
  FileError,
  makePrivateDir,
  makePrivateTempDir,
  writeAllTo,
} from "./safe_file.ts";

const enc = new TextEncoder();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createPartial() writes a private temporary file and publishes it once", async () => {
  await withDir(async (dir) => {
    const p = await createPartial(`${dir}/a.vma`, { what: "archive" });
    assert.match(p.partialPath, /\/a\.vma\.[0-9a-f]{12}\.partial$/);
    assert.equal((await Deno.stat(p.partialPath)).mode! & 0o777, 0o600);
    await writeAllTo(p.file, enc.encode("data"), p);
    await p.commit();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.vma"]);
    assert.equal(await Deno.readTextFile(`${dir}/a.vma`), "data");
    await assert.rejects(
      createPartial(`${dir}/a.vma`, { what: "archive" }),
      /Cannot write archive .*a\.vma: it already exists/,
    );
  });
});

Deno.test("createPartial() commit refuses to replace a file that appeared meanwhile, and keeps it", async () => {
  await withDir(async (dir) => {
    const a = await createPartial(`${dir}/x.vma`, { what: "archive" });
    const b = await createPartial(`${dir}/x.vma`, { what: "archive" });
    assert.notEqual(a.partialPath, b.partialPath);
    await writeAllTo(a.file, enc.encode("first"), a);
    await writeAllTo(b.file, enc.encode("second"), b);
    await b.commit();
    await assert.rejects(a.commit(), (e: unknown) => {
      assert.ok(e instanceof FileError);
      assert.match(e.message, /appeared while this run was writing/);
      return true;
    });
    assert.equal(await Deno.readTextFile(`${dir}/x.vma`), "second");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["x.vma"]);
  });
});

Deno.test("createExclusive() never follows a symlink, dangling or not", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/victim`, "precious");
    await Deno.symlink(`${dir}/victim`, `${dir}/link`);
    await Deno.symlink(`${dir}/nowhere`, `${dir}/dangling`);
    for (const name of ["link", "dangling"]) {
      await assert.rejects(
        createExclusive(`${dir}/${name}`, { what: "disk image" }),
        /Cannot create disk image .*: it already exists/,
      );
    }
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "precious");
    await assert.rejects(Deno.lstat(`${dir}/nowhere`));
  });
});

Deno.test("makePrivateTempDir() makes a fresh 0700 directory in $TMPDIR, even under umask 0", async () => {
  const old = Deno.umask(0);
  const dirs: string[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      dirs.push(await makePrivateTempDir("vmabak-priv-"));
    }
    assert.notEqual(dirs[0], dirs[1]);
    for (const d of dirs) {
      assert.equal((await Deno.stat(d)).mode! & 0o777, 0o700);
      assert.match(d, /\/vmabak-priv-[^/]+$/);
    }
  } finally {
    Deno.umask(old);
    for (const d of dirs) await Deno.remove(d);
  }
});

Deno.test("makePrivateDir() makes a new 0700 directory and refuses an existing one", async () => {
  await withDir(async (dir) => {
    await makePrivateDir(`${dir}/t`, "target directory");
    assert.equal((await Deno.stat(`${dir}/t`)).mode! & 0o777, 0o700);
    await assert.rejects(
      makePrivateDir(`${dir}/t`, "target directory"),
      /Cannot create target directory .*: it already exists/,
    );
  });
});
