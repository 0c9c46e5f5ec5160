/**
 * The counter guest (boot_counter.S) with RAM that is not all zeros, and a
 * check that the guest is not stuck: for the tests of QEMU 7.2's
 * background-snapshot hazards. Every QMP command here is bounded.
 */
import assert from "node:assert/strict";
import { bootCounterSector, COUNTER_RAM_ADDRESS } from "./boot_sector.ts";
import { type DiskSpec, TestVm } from "./qemu_vm.ts";
import type { QmpClient } from "../../lib/qmp/client.ts";
import { sleep } from "./sleep.ts";

const MiB = 1024 * 1024;
/** Each test command gets this long (a wedged QEMU never answers). */
export const BOUNDED = { timeoutMs: 5_000 };

/** The guest's RAM counter (HMP `xp`), bounded. */
export async function ramCounter(qmp: QmpClient): Promise<number> {
  const out = await qmp.execute<string>("human-monitor-command", {
    "command-line": `xp /1wx ${COUNTER_RAM_ADDRESS}`,
  }, BOUNDED);
  return parseInt(out.split(":")[1]!.trim(), 16);
}

/** Waits (at most `ms`) until the RAM counter moves on; fails if it does not. */
export async function assertCounterAdvances(
  qmp: QmpClient,
  what: string,
  ms = 15_000,
): Promise<void> {
  const first = await ramCounter(qmp);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await sleep(100);
    if ((await ramCounter(qmp)) !== first) return;
  }
  assert.fail(`the guest's counter stayed at ${first} for ${ms} ms ${what}`);
}

/**
 * The counter VM, 128 MiB of RAM of which `randomMiB` at 16 MiB hold random
 * bytes (QEMU's `loader` device), so its migration stream is that large (a
 * zero page costs a few bytes); returns once the guest counts.
 */
export async function startCounterVm(
  options: { randomMiB: number; disks?: DiskSpec[] },
): Promise<TestVm> {
  const blobDir = await Deno.makeTempDir({ prefix: "vmabak-ram-" });
  try {
    const blob = `${blobDir}/ram.bin`;
    const bytes = new Uint8Array(options.randomMiB * MiB);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    await Deno.writeFile(blob, bytes);
    const vm = await TestVm.start({
      disks: options.disks ?? [{ format: "raw", size: 8 * MiB }],
      memoryMiB: 128,
      bootSector: bootCounterSector(),
      extraArgs: [
        "-device",
        `loader,file=${blob},addr=${16 * MiB},force-raw=on`,
      ],
    });
    try {
      await assertCounterAdvances(vm.monitor, "after boot", 30_000);
    } catch (error) {
      await vm.destroy();
      throw error;
    }
    return vm;
  } finally {
    await Deno.remove(blobDir, { recursive: true });
  }
}

/**
 * The guest is not wedged: `stop` and `cont` answer, the counter runs, and
 * a `system_reset` (QEMU's main loop rewrites ROMs into guest RAM, then the
 * BIOS writes fresh pages all over it) answers and the counter runs again.
 * After a QEMU 7.2 background snapshot that failed or was cancelled, guest
 * RAM stays write-protected and one of these blocks for good.
 */
export async function assertGuestAlive(vm: TestVm): Promise<void> {
  await vm.monitor.execute("stop", undefined, BOUNDED);
  await vm.monitor.execute("cont", undefined, BOUNDED);
  await assertCounterAdvances(vm.monitor, "after stop and cont");
  await vm.monitor.execute("system_reset", undefined, BOUNDED);
  await assertCounterAdvances(vm.monitor, "after system_reset", 30_000);
}
