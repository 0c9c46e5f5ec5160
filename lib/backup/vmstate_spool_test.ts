/**
 * The spool's shell command run by /bin/sh as QEMU runs it (`exec:`): it
 * stores the stream, survives hostile directory names, and when the spool
 * cannot be written it still reads the whole stream (QEMU's background
 * snapshot must complete) and reports why.
 */
import assert from "node:assert/strict";
import { SpoolWriteError, VmstateSpool } from "./vmstate_spool.ts";

/** Runs the URI's command with `data` on stdin; resolves once all was read and sh exited. */
async function runUri(uri: string, data: Uint8Array): Promise<number> {
  assert.ok(uri.startsWith("exec:"));
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", uri.slice("exec:".length)],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(data); // rejects if the reader went away (QEMU: a failed migration)
  await w.close();
  return (await child.status).code;
}

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 12)) & 255;
  return out;
}

Deno.test("the spool stores the stream, whatever the directory is named", async () => {
  const top = await Deno.makeTempDir({ prefix: "vmabak-spool-" });
  try {
    const dir = `${top}/it's a $(touch pwned) dir`;
    await Deno.mkdir(dir);
    await Deno.mkdir(`${top}/private`);
    const spool = await VmstateSpool.create(
      `${dir}/vmabak-p1s1-vmstate.bin`,
      `${top}/private/vmstate.done`,
    );
    const data = bytes(300_000);
    assert.equal(await runUri(spool.uri, data), 0);
    assert.equal(await spool.waitWritten(5_000), data.length);
    assert.deepEqual(await Deno.readFile(spool.filePath), data);
    await assert.rejects(Deno.lstat(`${top}/pwned`));
    await assert.rejects(Deno.lstat("pwned"));
    await spool.remove();
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("a spool that runs out of space still takes the whole stream and says why, naming the directory", async () => {
  const top = await Deno.makeTempDir({ prefix: "vmabak-spool-" });
  try {
    await Deno.mkdir(`${top}/private`);
    const spool = await VmstateSpool.create(
      `${top}/vmabak-p1s1-vmstate.bin`,
      `${top}/private/vmstate.done`,
    );
    // A device that is always full (ENOSPC on every write).
    await Deno.remove(spool.filePath);
    await Deno.symlink("/dev/full", spool.filePath);
    const data = bytes(4 * 1024 * 1024);
    assert.equal(await runUri(spool.uri, data), 0, "all of the stream read");
    const error = await spool.waitWritten(5_000).catch((e) => e);
    assert.ok(error instanceof SpoolWriteError, String(error));
    assert.equal(error.dir, top);
    assert.equal(error.reason, "no space left on the device");
    assert.equal(
      error.message,
      `Cannot save the VM state: no space left on the device in ${top} (writing vmabak-p1s1-vmstate.bin); free space there or choose another directory with --fleecing-dir`,
    );
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("a spool that cannot be created is reported the same way, and the stream is still read", async () => {
  const top = await Deno.makeTempDir({ prefix: "vmabak-spool-" });
  try {
    await Deno.mkdir(`${top}/private`);
    await Deno.mkdir(`${top}/spool`);
    const spool = await VmstateSpool.create(
      `${top}/spool/vmabak-p1s1-vmstate.bin`,
      `${top}/private/vmstate.done`,
    );
    await Deno.remove(`${top}/spool`, { recursive: true });
    assert.equal(await runUri(spool.uri, bytes(1024 * 1024)), 0);
    const error = await spool.waitWritten(5_000).catch((e) => e);
    assert.ok(error instanceof SpoolWriteError, String(error));
    assert.match(
      error.message,
      /^Cannot save the VM state: .*(nonexistent|No such file)/i,
    );
    assert.match(error.message, new RegExp(`in ${top}/spool `));
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("abandon stops a spool writer that is stuck; the stream is then drained", async () => {
  const top = await Deno.makeTempDir({ prefix: "vmabak-spool-" });
  try {
    await Deno.mkdir(`${top}/private`);
    const spool = await VmstateSpool.create(
      `${top}/vmabak-p1s1-vmstate.bin`,
      `${top}/private/vmstate.done`,
    );
    // A spool that never takes anything: a FIFO nobody reads.
    await Deno.remove(spool.filePath);
    const fifo = await new Deno.Command("mkfifo", { args: [`${top}/fifo`] })
      .output();
    assert.ok(fifo.success);
    await Deno.symlink(`${top}/fifo`, spool.filePath);
    const ran = runUri(spool.uri, bytes(4 * 1024 * 1024));
    for (let i = 0; i < 200; i++) {
      const pids = await Deno.readTextFile(spool.pidPath).catch(() => "");
      if (pids.includes(" ")) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await spool.abandon(), true);
    assert.equal(await ran, 0, "all of the stream read");
    await assert.rejects(spool.waitWritten(5_000), SpoolWriteError);
    assert.equal(await spool.abandon(), false, "nothing left to stop");
    await spool.remove();
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});
