import assert from "node:assert/strict";
import { QmpClient } from "../lib/qmp/client.ts";
import { QmpCommandError } from "../lib/qmp/errors.ts";
import { QmpLineParser } from "../lib/qmp/framing.ts";
import { socketInUse } from "../lib/qmp/socket_busy.ts";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";

const HAVE_QEMU = await haveQemu();

const enc = new TextEncoder();

Deno.test("QmpLineParser splits messages across chunks and rejects garbage", () => {
  const p = new QmpLineParser();
  assert.deepEqual(p.push(enc.encode('{"return": {}, "id": "a"}\n{"ev')), [{
    return: {},
    id: "a",
  }]);
  assert.deepEqual(p.push(enc.encode('ent": "STOP"}\r\n')), [{
    event: "STOP",
  }]);
  assert.throws(() => p.push(enc.encode("nonsense\n")), /not JSON/);
  assert.throws(
    () => new QmpLineParser().push(enc.encode("[1]\n")),
    /not an object/,
  );
});

/** A fake QMP server in-process, with scripted answers. */
async function fakeServer(
  script: (
    line: Record<string, unknown>,
    send: (o: unknown) => Promise<void>,
  ) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/q.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served = (async () => {
    const conn = await listener.accept();
    const send = async (o: unknown) => {
      await conn.write(enc.encode(JSON.stringify(o) + "\n"));
    };
    await send({
      QMP: {
        version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "" },
        capabilities: [],
      },
    });
    const parser = new QmpLineParser();
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        for (const m of parser.push(buf.subarray(0, n))) await script(m, send);
      }
    } finally {
      conn.close();
    }
  })().catch(() => {});
  return {
    path,
    async close() {
      listener.close();
      await served.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("QmpClient routes replies by id and keeps events that came before the reply", async () => {
  const server = await fakeServer(async (m, send) => {
    if (m.execute === "qmp_capabilities") {
      return await send({ return: {}, id: m.id });
    }
    if (m.execute === "go") {
      await send({
        event: "JOB_STATUS_CHANGE",
        data: { id: "j", status: "created" },
        timestamp: { seconds: 1, microseconds: 2 },
      });
      await send({ return: { ok: 1 }, id: m.id });
    }
    if (m.execute === "bad") {
      await send({ error: { class: "GenericError", desc: "nope" }, id: m.id });
    }
    if (m.execute === "quit") throw new Error("hang up");
  });
  const c = await QmpClient.connect(server.path);
  assert.equal(c.greeting.version.qemu.major, 7);
  assert.deepEqual(await c.execute("go"), { ok: 1 });
  const e = await c.waitEvent((e) => e.event === "JOB_STATUS_CHANGE");
  assert.deepEqual(e.data, { id: "j", status: "created" });
  assert.equal(e.timestampUs, 1_000_002);
  const err = await c.execute("bad").catch((x) => x);
  assert.ok(err instanceof QmpCommandError);
  assert.equal(err.desc, "nope");
  assert.match(err.message, /Cannot run QMP command bad: nope/);
  const pending = c.execute("quit");
  await assert.rejects(pending, /closed the QMP connection/);
  await assert.rejects(c.execute("go"), /closed/);
  await c.close();
  await server.close();
});

/** Runs `fn` with a paused throwaway VM (one 1 MiB raw disk); destroys it after. */
async function withPausedVm(fn: (vm: TestVm) => Promise<void>): Promise<void> {
  const vm = await TestVm.start({
    disks: [{ format: "raw", size: 1 << 20 }],
    paused: true,
  });
  try {
    await fn(vm);
  } finally {
    await vm.destroy();
  }
}

Deno.test({
  name: "QmpClient talks to a real QEMU: version, errors, events",
  ignore: !HAVE_QEMU,
  async fn() {
    await withPausedVm(async (vm) => {
      const c = await QmpClient.connect(vm.qmpPath);
      assert.equal(c.greeting.version.qemu.major >= 7, true);
      const err = await c.execute("blockdev-del", { "node-name": "nope" })
        .catch((x) => x);
      assert.ok(err instanceof QmpCommandError);
      assert.match(err.desc, /nope/);
      await c.execute("cont");
      const ev = await c.waitEvent((e) => e.event === "RESUME", {
        timeoutMs: 5000,
      });
      assert.equal(ev.event, "RESUME");
      vm.kill();
      await assert.rejects(
        c.waitEvent(() => false),
        /closed the QMP connection/,
      );
      await c.close();
    });
  },
});

Deno.test({
  name:
    "socketInUse: a connected QMP client holds the socket; one that just left does not, even while QEMU is frozen",
  ignore: !HAVE_QEMU,
  async fn() {
    await withPausedVm(async (vm) => {
      assert.equal(await socketInUse(vm.qmpPath), false);
      const client = await QmpClient.connect(vm.qmpPath);
      assert.equal(await socketInUse(vm.qmpPath), true);
      // QEMU frozen right after the client hung up has not closed its end yet.
      Deno.kill(vm.pid, "SIGSTOP");
      try {
        await client.close();
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(await socketInUse(vm.qmpPath), false);
      } finally {
        Deno.kill(vm.pid, "SIGCONT");
      }
      const again = await QmpClient.connect(vm.qmpPath);
      await again.close();
    });
  },
});
