// deno-lint-ignore-file no-console -- tests print what they measured
/**
 * QEMU 7.2 wedges the guest when a background snapshot fails or is
 * cancelled mid-way (guest RAM stays write-protected by userfaultfd with
 * nobody serving the faults). `backup --vmstate` must never let that happen:
 * a spool directory that fills up, and a killed run's snapshot still being
 * written when the next run starts. Real QEMU, the counter guest; every
 * command to QEMU is bounded.
 */
import assert from "node:assert/strict";
import { haveQemu, migrationCapsOn, type TestVm } from "./helpers/qemu_vm.ts";
import { oneLine, spawnVmabak, vmabak } from "./helpers/run.ts";
import {
  assertVmClean,
  MiB,
  vmabakFiles,
  watchStderr,
} from "./helpers/backup_checks.ts";
import {
  assertGuestAlive,
  BOUNDED,
  startCounterVm,
} from "./helpers/counter_vm.ts";
import { CAN_MOUNT, mountTmpfs } from "./helpers/tmpfs.ts";

const HAVE = await haveQemu();
const SLOW_CAT = new URL("./helpers/slow_cat.ts", import.meta.url).pathname;

/** Files of an archive named `name` (published or temporary) in `dir`. */
function archiveFiles(dir: string, name: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith(name)
  );
}

/** Runs `fn` with a counter guest with 24 MiB of random RAM and its migration capabilities before; destroys it after. */
async function withCounterVm(
  fn: (vm: TestVm, caps: string[]) => Promise<void>,
): Promise<void> {
  const vm = await startCounterVm({ randomMiB: 24 });
  try {
    await fn(vm, await migrationCapsOn(vm.monitor));
  } finally {
    await vm.destroy();
  }
}

/** `vmabak backup --vmstate` arguments: spool in `dir`, archive `name` in the VM's directory. */
function vmstateBackup(vm: TestVm, dir: string, name: string): string[] {
  return [
    "backup",
    "--qmp",
    vm.qmpPath,
    "--vmstate",
    "--fleecing-dir",
    dir,
    "-o",
    `${vm.dir}/${name}`,
  ];
}

/** The error line of a failed backup, without its progress lines. */
function errorLine(stderr: string): string {
  return oneLine(
    stderr.split("\n").filter((l) => !l.startsWith("backup:")).join("\n"),
  );
}

/** After a failed --vmstate backup into `dir`: the snapshot completed, the guest runs, nothing of vmabak's is left. */
async function assertRecovered(
  vm: TestVm,
  dir: string,
  caps: string[],
): Promise<void> {
  const m = await vm.monitor.execute<{ status: string }>(
    "query-migrate",
    undefined,
    BOUNDED,
  );
  assert.equal(m.status, "completed");
  await assertGuestAlive(vm);
  assert.deepEqual(await migrationCapsOn(vm.monitor), caps);
  assert.deepEqual(vmabakFiles(dir), []);
  assert.deepEqual(archiveFiles(vm.dir, "b.vma"), []);
  await assertVmClean(vm);
}

Deno.test({
  name:
    "backup --vmstate whose spool directory fills up fails naming it, and the guest is not wedged (QEMU 7.2 failed background snapshot)",
  ignore: !HAVE || !CAN_MOUNT,
  async fn() {
    // 24 MiB of random RAM: a stream of about 26 MiB into a 4 MiB directory.
    await withCounterVm(async (vm, caps) => {
      const small = await mountTmpfs(`${vm.dir}/small`, "4M");
      try {
        const t0 = performance.now();
        const r = await vmabak(vmstateBackup(vm, small.path, "b.vma"));
        const seconds = (performance.now() - t0) / 1000;
        assert.equal(r.code, 1, r.stderr);
        const line = errorLine(r.stderr);
        console.log(`after ${seconds.toFixed(1)} s: ${line}`);
        assert.ok(
          line.startsWith(
            `vmabak backup: Cannot save the VM state: no space left on the device in ${small.path} `,
          ),
          line,
        );
        assert.match(line, /--fleecing-dir/);
        // QEMU's background snapshot completed (the spool drained the rest);
        // no archive, no spool left.
        await assertRecovered(vm, small.path, caps);
        // And the next --vmstate backup, into a roomy directory, works.
        const ok = await vmabak(vmstateBackup(vm, vm.dir, "ok.vma"));
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stderr, /VM state \d/);
        assert.equal((await vmabak(["verify", `${vm.dir}/ok.vma`])).code, 0);
        await assertGuestAlive(vm);
      } finally {
        await small.unmount();
      }
    });
  },
});

Deno.test({
  name:
    "a background snapshot a killed --vmstate run left running is waited for, never cancelled (QEMU 7.2 wedges the guest then)",
  ignore: !HAVE,
  async fn() {
    await withCounterVm(async (vm, caps) => {
      // What a SIGKILLed run leaves: its settings marker (a run that is
      // gone: the pid of a process that exited) and its background snapshot
      // still being written by QEMU's child, here at 8 MiB/s.
      const gone = new Deno.Command("true").spawn();
      await gone.status;
      const marker = `vmabak-p${gone.pid}s1-mig-bs0-ev0-bw134217728`;
      await vm.monitor.execute("object-add", {
        "qom-type": "secret",
        id: marker,
        data: "vmabak",
      }, BOUNDED);
      await vm.monitor.execute("migrate-set-capabilities", {
        capabilities: [
          { capability: "background-snapshot", state: true },
          { capability: "events", state: true },
        ],
      }, BOUNDED);
      await vm.monitor.execute("migrate-set-parameters", {
        "max-bandwidth": 100 * 1024 ** 3,
      }, BOUNDED);
      await vm.monitor.execute("migrate", {
        uri: `exec:${Deno.execPath()} run -A ${SLOW_CAT} ${8 * MiB} -`,
      }, BOUNDED);
      const t0 = performance.now();
      const r = await vmabak(vmstateBackup(vm, vm.dir, "b.vma"));
      const seconds = (performance.now() - t0) / 1000;
      console.log(
        `the next backup --vmstate took ${
          seconds.toFixed(1)
        } s (it waited for the killed run's snapshot)`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await vmabak(["verify", `${vm.dir}/b.vma`])).code, 0);
      const objects = await vm.monitor.execute<{ name: string }[]>(
        "qom-list",
        { path: "/objects" },
        BOUNDED,
      );
      assert.ok(!objects.some((o) => o.name === marker), "marker removed");
      await assertGuestAlive(vm);
      assert.deepEqual(await migrationCapsOn(vm.monitor), caps);
      await assertVmClean(vm);
    });
  },
});

/**
 * `backup --vmstate` of `vm` whose spool never takes anything (a hung
 * disk): once vmabak made the file, and before QEMU opens it, it becomes a
 * FIFO nobody reads. vmabak is stopped meanwhile, so the swap is never late.
 */
async function stuckSpoolBackup(vm: TestVm) {
  const dir = `${vm.dir}/fl`;
  await Deno.mkdir(dir);
  const fifo = `${vm.dir}/fifo`;
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(mk.success);
  const child = spawnVmabak(vmstateBackup(vm, dir, "b.vma"), {
    stderr: "piped",
  });
  const err = watchStderr(child.stderr);
  let swapped = false;
  for (let i = 0; i < 20_000 && !swapped; i++) {
    const spool = [...Deno.readDirSync(dir)].find((e) =>
      e.name.endsWith("-vmstate.bin")
    );
    if (spool !== undefined) {
      Deno.kill(child.pid, "SIGSTOP");
      await Deno.remove(`${dir}/${spool.name}`);
      await Deno.symlink(fifo, `${dir}/${spool.name}`);
      Deno.kill(child.pid, "SIGCONT");
      swapped = true;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  if (!swapped) child.kill("SIGKILL");
  assert.ok(swapped, "the spool appeared");
  return { child, stderr: err.text, dir };
}

Deno.test({
  name:
    "a --vmstate backup interrupted while its spool takes nothing ends at once, and the guest is not wedged",
  ignore: !HAVE,
  async fn() {
    await withCounterVm(async (vm, caps) => {
      const b = await stuckSpoolBackup(vm);
      // QEMU's main loop may wait on the stuck stream: vmabak may be waiting
      // on QEMU. SIGTERM must end both at once.
      await new Promise((r) => setTimeout(r, 2000));
      const t0 = performance.now();
      b.child.kill("SIGTERM");
      const status = await b.child.status;
      const seconds = (performance.now() - t0) / 1000;
      const stderr = await b.stderr;
      console.log(
        `vmabak ended ${seconds.toFixed(1)} s after SIGTERM: ${
          stderr.trim().split("\n").at(-1)
        }`,
      );
      assert.equal(status.code, 1, stderr);
      // Before: 2 x 60 s of waiting, migrate_cancel, and a wedged guest.
      assert.ok(seconds < 30, `${seconds} s`);
      await assertRecovered(vm, b.dir, caps);
    });
  },
});

Deno.test({
  name:
    "a --vmstate backup whose spool takes nothing fails by itself within a minute, naming the directory, and the guest is not wedged",
  ignore: !HAVE,
  async fn() {
    await withCounterVm(async (vm, caps) => {
      const t0 = performance.now();
      const b = await stuckSpoolBackup(vm);
      const status = await b.child.status;
      const seconds = (performance.now() - t0) / 1000;
      const stderr = await b.stderr;
      const line = errorLine(stderr);
      console.log(`after ${seconds.toFixed(1)} s: ${line}`);
      assert.equal(status.code, 1, stderr);
      assert.ok(
        line.startsWith(
          `vmabak backup: Cannot save the VM state: the spool took nothing for 30 s (its disk hangs or is far too slow) in ${b.dir} `,
        ),
        line,
      );
      assert.ok(seconds < 90, `${seconds} s`);
      await assertRecovered(vm, b.dir, caps);
    });
  },
});
