/**
 * `backup --qga`: fs-freeze around the instant, thaw on every path.
 *
 * A real qemu-ga (Debian's qemu-guest-agent) runs on this host only with
 * its freeze and thaw commands blocked (`--block-rpcs`): a real freeze here
 * would freeze the host's own file systems (the root is a block device).
 * So the real agent proves the protocol (sync, ping, info) and the
 * "cannot freeze" paths; FakeQga proves success, timeout and signals.
 */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { FakeQga } from "./helpers/fake_qga.ts";
import { startRealAgent } from "./helpers/real_qga.ts";
import { haveTool, oneLine, spawnVmabak, vmabak } from "./helpers/run.ts";
import { QgaClient } from "../lib/qga/client.ts";

const HAVE = await haveQemu();
const HAVE_QGA = await haveTool("qemu-ga", "--version");
const MiB = 1024 * 1024;

/** A VM with one 4 MiB raw disk to back up. */
function smallVm(): Promise<TestVm> {
  return TestVm.start({ disks: [{ format: "raw", size: 4 * MiB }] });
}

/** `backup` of the test VM with the agent at `qga` into `out`, `flags` added. */
function qgaBackup(
  vm: TestVm,
  qga: string,
  out: string,
  flags: string[] = [],
): string[] {
  return ["backup", "--qmp", vm.qmpPath, "--qga", qga, ...flags, "-o", out];
}

/** The agent takes the queued thaw once its slow freeze is done. */
async function waitForThaw(fake: FakeQga): Promise<void> {
  for (
    let i = 0;
    i < 100 && !fake.commands.includes("guest-fsfreeze-thaw");
    i++
  ) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function jobs(vm: TestVm): Promise<string[]> {
  const j = await vm.monitor.execute<{ id: string }[]>("query-jobs");
  return j.map((x) => x.id);
}

Deno.test({
  name:
    "QgaClient talks to a real qemu-ga: sync, guest-ping, guest-info; a blocked freeze is a command error",
  ignore: !HAVE_QGA,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "vmabak-qga-" });
    const agent = await startRealAgent(dir);
    try {
      const c = await QgaClient.connect(agent.path, 5000);
      assert.deepEqual(await c.execute("guest-ping", undefined, 5000), {});
      const info = await c.execute<{ version: string }>(
        "guest-info",
        undefined,
        5000,
      );
      assert.match(info.version, /^\d+\.\d+/);
      await assert.rejects(
        c.execute("guest-fsfreeze-freeze", undefined, 5000),
        /guest-fsfreeze-freeze has been disabled/,
      );
      await c.sync(5000);
      assert.equal(
        await c.execute("guest-fsfreeze-status", undefined, 5000),
        "thawed",
      );
      c.close();
    } finally {
      await agent.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "backup --qga with a real qemu-ga that cannot freeze: a warning and a crash-consistent backup; --qga-required fails",
  ignore: !HAVE || !HAVE_QGA,
  async fn() {
    const vm = await smallVm();
    const agent = await startRealAgent(vm.dir);
    try {
      const ok = await vmabak(qgaBackup(vm, agent.path, `${vm.dir}/a.vma`));
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(
        ok.stderr,
        /^backup: warning: Cannot run guest agent command guest-fsfreeze-freeze: .*disabled; the backup goes on crash-consistent$/m,
      );
      const req = await vmabak(
        qgaBackup(vm, agent.path, `${vm.dir}/b.vma`, ["--qga-required"]),
      );
      assert.equal(req.code, 1);
      assert.match(
        oneLine(req.stderr),
        /guest-fsfreeze-freeze.*\(--qga-required\)$/,
      );
      await assert.rejects(Deno.stat(`${vm.dir}/b.vma`));
      assert.deepEqual(await jobs(vm), []);
      assert.equal(await vm.status(), "running");
    } finally {
      await agent.stop();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --qga freezes before the instant and thaws right after it (fake agent)",
  ignore: !HAVE,
  async fn() {
    const vm = await smallVm();
    const seen: Record<string, string[]> = {};
    const fake = FakeQga.start(`${vm.dir}/fake.sock`, {
      freeze: "ok",
      onCommand: async (cmd) => {
        if (cmd.startsWith("guest-fsfreeze")) seen[cmd] = await jobs(vm);
      },
    });
    try {
      const r = await vmabak(qgaBackup(vm, fake.path, `${vm.dir}/a.vma`, [
        "--mode",
        "push", // its jobs start at the instant
      ]));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
      assert.deepEqual(
        seen["guest-fsfreeze-freeze"],
        [],
        "frozen before any job",
      );
      assert.ok(
        seen["guest-fsfreeze-thaw"]!.some((id) => id.startsWith("vmabak-")),
        `thawed once the instant is fixed: ${seen["guest-fsfreeze-thaw"]}`,
      );
      assert.match(r.stderr, /1 guest file systems frozen \d+\.\d ms/);
    } finally {
      await fake.stop();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --mode pull --qga: frozen before the guest is stopped for the instant, thawed after it runs again (fake agent)",
  ignore: !HAVE,
  async fn() {
    const vm = await smallVm();
    const events: string[] = [];
    const off = vm.monitor.onEvent((e) => {
      if (e.event === "STOP" || e.event === "RESUME") events.push(e.event);
    });
    const seen: Record<string, string[]> = {};
    const fake = FakeQga.start(`${vm.dir}/fake.sock`, {
      freeze: "ok",
      onCommand: (cmd) => {
        if (cmd.startsWith("guest-fsfreeze")) seen[cmd] = [...events];
      },
    });
    try {
      const r = await vmabak(
        qgaBackup(vm, fake.path, `${vm.dir}/a.vma`, ["--mode", "pull"]),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(seen["guest-fsfreeze-freeze"], []);
      assert.deepEqual(seen["guest-fsfreeze-thaw"], ["STOP", "RESUME"]);
      assert.match(r.stderr, /1 guest file systems frozen \d+\.\d ms/);
    } finally {
      off();
      await fake.stop();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --qga: a freeze slower than --qga-timeout is thawed once it completes; on with a warning, or fails with --qga-required",
  ignore: !HAVE,
  async fn() {
    const vm = await smallVm();
    const fake = FakeQga.start(`${vm.dir}/fake.sock`, {
      freeze: "slow",
      slowMs: 2500,
    });
    try {
      const r = await vmabak(
        qgaBackup(vm, fake.path, `${vm.dir}/a.vma`, ["--qga-timeout", "1"]),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /warning: Cannot run guest agent command guest-fsfreeze-freeze: no answer in 1 s; the backup goes on crash-consistent/,
      );
      await waitForThaw(fake);
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
      fake.commands.length = 0;
      const req = await vmabak(
        qgaBackup(vm, fake.path, `${vm.dir}/b.vma`, [
          "--qga-timeout",
          "1",
          "--qga-required",
        ]),
      );
      assert.equal(req.code, 1);
      assert.match(oneLine(req.stderr), /no answer in 1 s \(--qga-required\)$/);
      await waitForThaw(fake);
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
      assert.deepEqual(await jobs(vm), []);
    } finally {
      await fake.stop();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --qga: SIGINT while the guest is frozen still thaws it (fake agent)",
  ignore: !HAVE,
  async fn() {
    const vm = await smallVm();
    let child: Deno.ChildProcess | undefined;
    const fake = FakeQga.start(`${vm.dir}/fake.sock`, {
      freeze: "ok",
      onCommand: async (cmd) => {
        if (cmd === "guest-fsfreeze-freeze") {
          child!.kill("SIGINT");
          await new Promise((r) => setTimeout(r, 300));
        }
      },
    });
    try {
      child = spawnVmabak(qgaBackup(vm, fake.path, `${vm.dir}/a.vma`), {
        stderr: "piped",
      });
      const out = await child.output();
      assert.equal(out.code, 1);
      assert.match(
        oneLine(new TextDecoder().decode(out.stderr)),
        /interrupted by SIGINT/,
      );
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
      assert.deepEqual(await jobs(vm), []);
      assert.equal(await vm.status(), "running");
      await assert.rejects(Deno.stat(`${vm.dir}/a.vma`));
    } finally {
      await fake.stop();
      await vm.destroy();
    }
  },
});
