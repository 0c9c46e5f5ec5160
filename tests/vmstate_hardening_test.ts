// deno-lint-ignore-file no-console -- tests print what they measured
/**
 * `backup --vmstate` when things go wrong: a slow consumer (the pause stays
 * short), a run killed mid-way (the next one works), a paused VM (stays
 * paused). Real QEMU 7.2.
 */
import assert from "node:assert/strict";
import { haveQemu, migrationCapsOn, TestVm } from "./helpers/qemu_vm.ts";
import { bootCounterSector } from "./helpers/boot_sector.ts";
import { vmabak } from "./helpers/run.ts";
import {
  assertVmClean,
  MiB,
  spawnSlowBackup,
  vmabakFiles,
} from "./helpers/backup_checks.ts";
import type { QmpClient } from "../lib/qmp/client.ts";
import { QmpTimeoutError } from "../lib/qmp/errors.ts";
import { sleep } from "./helpers/sleep.ts";

const HAVE = await haveQemu();

function counterVm(): Promise<TestVm> {
  return TestVm.start({
    disks: [
      { format: "raw", size: 8 * MiB },
      { format: "raw", size: 32 * MiB, fill: ["write -P 0x21 0 32M"] },
    ],
    memoryMiB: 128,
    bootSector: bootCounterSector(),
  });
}

/** `backup --vmstate` of the VM with its fleecing in the VM's directory, `flags` added; no `-o`. */
function vmstateBackup(vm: TestVm, flags: string[] = []): string[] {
  return [
    "backup",
    ...flags,
    "--qmp",
    vm.qmpPath,
    "--vmstate",
    "--fleecing-dir",
    vm.dir,
  ];
}

interface MigrationState {
  caps: string[];
  bandwidth: number;
}

async function migrationState(qmp: QmpClient): Promise<MigrationState> {
  const caps = await migrationCapsOn(qmp);
  const params = await qmp.execute<{ "max-bandwidth": number }>(
    "query-migrate-parameters",
  );
  return {
    caps,
    bandwidth: params["max-bandwidth"],
  };
}

for (const mode of ["pull", "push"]) {
  Deno.test({
    name:
      `backup --mode ${mode} --vmstate into a consumer reading 1 MiB/s pauses the guest briefly, not for the consumer`,
    ignore: !HAVE,
    async fn() {
      const vm = await counterVm();
      try {
        const b = spawnSlowBackup(
          vmstateBackup(vm, ["--mode", mode]),
          MiB,
          "-",
        );
        await b.started;
        await sleep(1000);
        // Meanwhile a second monitor is answered and the guest runs.
        const t = performance.now();
        assert.equal(await vm.status(), "running");
        const statusMs = performance.now() - t;
        b.child.kill("SIGTERM");
        const r = await b.done;
        const m = /guest paused (\d+\.\d) ms/.exec(r.stderr);
        // Interrupted (SIGTERM): the pause is in the JSON-less summary only on success,
        // so run once more to completion with the same slow consumer on a small VM.
        assert.equal(r.code, 1, r.stderr);
        assert.equal(m, null);
        const full = spawnSlowBackup(
          vmstateBackup(vm, ["--mode", mode, "--drive", "drive0"]),
          MiB,
          "-",
        );
        const done = await full.done;
        assert.equal(done.code, 0, done.stderr);
        const paused = Number(
          /guest paused (\d+\.\d) ms/.exec(done.stderr)?.[1],
        );
        console.log(
          `${mode}: guest paused ${paused} ms with the output drained at 1 MiB/s; query-status during the backup took ${
            statusMs.toFixed(1)
          } ms`,
        );
        // Milliseconds when idle; seconds on a host loaded by other jobs (1.5 s
        // seen in CI beside five busy processes). A pause that waited on the
        // 1 MiB/s consumer would take the whole backup's time.
        assert.ok(paused < 5000, `paused ${paused} ms`);
        // In push mode the guest's own writes wait on the consumer (that is
        // push's trade-off), and QEMU's main loop with them: only pull
        // promises a monitor that answers at once during the copy.
        if (mode === "pull") assert.ok(statusMs < 5000, `${statusMs} ms`);
        await assertVmClean(vm);
        assert.deepEqual(vmabakFiles(vm.dir), []);
      } finally {
        await vm.destroy();
      }
    },
  });
}

Deno.test({
  name:
    "after a SIGKILLed --vmstate backup the next one works and the migration settings are put back",
  ignore: !HAVE,
  async fn() {
    const vm = await counterVm();
    try {
      const before = await migrationState(vm.monitor);
      const args = vmstateBackup(vm);
      const b = spawnSlowBackup(args, MiB, "-");
      await b.started;
      await sleep(1000);
      b.child.kill("SIGKILL");
      await b.done;
      const left = await migrationState(vm.monitor);
      assert.ok(
        left.caps.includes("background-snapshot"),
        "the kill left it on",
      );
      const r = await vmabak([...args, "-o", `${vm.dir}/b.vma`]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /kernel/);
      assert.equal((await vmabak(["verify", `${vm.dir}/b.vma`])).code, 0);
      assert.deepEqual(await migrationState(vm.monitor), before);
      assert.deepEqual(vmabakFiles(vm.dir), []);
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --vmstate of a paused VM leaves it paused and prints no pause figure",
  ignore: !HAVE,
  async fn() {
    const vm = await counterVm();
    try {
      await vm.monitor.execute("stop");
      const r = await vmabak([
        ...vmstateBackup(vm),
        "-o",
        `${vm.dir}/b.vma`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /guest paused/);
      assert.match(r.stderr, /VM state/);
      await assertVmClean(vm, "paused");
      const x = await vmabak(["restore", `${vm.dir}/b.vma`, `${vm.dir}/r`]);
      assert.equal(x.code, 0, x.stderr);
    } finally {
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --vmstate after a background snapshot that QEMU itself lost says so and does not blame the kernel",
  ignore: !HAVE,
  async fn() {
    const vm = await counterVm();
    try {
      // A background snapshot whose reader went away: QEMU 7.2 keeps guest
      // RAM registered with userfaultfd and refuses the next one. It also
      // leaves that RAM write-protected with nobody to serve the faults: the
      // next write to it (the counter's vCPU, or QEMU's main loop completing
      // the counter's disk I/O) blocks for good, and then a `stop`, or the
      // whole monitor, never answers again. Which of these vmabak meets
      // depends on timing; whichever it is, vmabak must end, say so in one
      // line, and write nothing. The test's own commands are bounded alike.
      const bounded = { timeoutMs: 10_000 };
      let wedged = false;
      try {
        await vm.monitor.execute("migrate-set-capabilities", {
          capabilities: [{ capability: "background-snapshot", state: true }],
        }, bounded);
        await vm.monitor.execute("migrate", {
          uri: "exec:head -c 100000 >/dev/null",
        }, bounded);
        for (let i = 0; i < 100; i++) {
          const m = await vm.monitor.execute<{ status: string }>(
            "query-migrate",
            undefined,
            bounded,
          );
          if (m.status === "failed") break;
          await sleep(50);
        }
        await vm.monitor.execute("migrate-set-capabilities", {
          capabilities: [{ capability: "background-snapshot", state: false }],
        }, bounded);
      } catch (error) {
        if (!(error instanceof QmpTimeoutError)) throw error;
        wedged = true;
      }
      const t0 = performance.now();
      const r = await vmabak([
        ...vmstateBackup(vm),
        "-o",
        `${vm.dir}/b.vma`,
      ]);
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(r.code, 1);
      const line = r.stderr.trim();
      console.log(`after ${seconds.toFixed(1)} s: ${line}`);
      assert.equal(line.split("\n").length, 1);
      assert.ok(seconds < 120, `vmabak took ${seconds} s`);
      assert.doesNotMatch(line, /kernel/);
      assert.deepEqual(vmabakFiles(vm.dir), []);
      assert.deepEqual(
        [...Deno.readDirSync(vm.dir)].filter((e) => e.name.startsWith("b.vma")),
        [],
      );
      if (wedged || /did not stop its vCPUs|does not answer/.test(line)) {
        assert.match(line, /restart the VM|QEMU does not answer/);
        return; // QEMU's monitor is stuck: nothing more to ask it
      }
      assert.match(line, /interrupted \(migration failed\).*restarted/);
      assert.deepEqual(
        (await migrationState(vm.monitor)).caps,
        [],
      );
      await assertVmClean(vm);
    } finally {
      await vm.destroy();
    }
  },
});
