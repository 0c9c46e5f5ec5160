/**
 * `backup --qga`: the generated qemu-server.conf's `ostype` comes from the
 * guest agent's `guest-get-osinfo`, on the same connection as the freeze.
 * The real qemu-ga runs on this (Linux) host, so it reports a Linux kernel.
 */
import assert from "node:assert/strict";
import { haveQemu, TestVm } from "./helpers/qemu_vm.ts";
import { FakeQga, type FakeQgaOptions } from "./helpers/fake_qga.ts";
import { startRealAgent } from "./helpers/real_qga.ts";
import { haveTool, vmabak } from "./helpers/run.ts";

const HAVE = await haveQemu();
const HAVE_QGA = await haveTool("qemu-ga", "--version");
const MiB = 1024 * 1024;

/** Backs the VM up into `out` (flags added) and returns the stored qemu-server.conf's lines and stderr. */
async function backupConf(vm: TestVm, out: string, flags: string[]) {
  const r = await vmabak(["backup", "--qmp", vm.qmpPath, ...flags, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const c = await vmabak(["config", out, "-c", "qemu-server.conf"]);
  assert.equal(c.code, 0, c.stderr);
  return { lines: c.text.split("\n"), stderr: r.stderr };
}

/** A throwaway VM with one 4 MiB raw disk. */
function startVm(): Promise<TestVm> {
  return TestVm.start({ disks: [{ format: "raw", size: 4 * MiB }] });
}

/** Runs `fn` with a VM and a fake agent answering as `options` say; stops both after. */
async function withFakeAgent(
  options: FakeQgaOptions,
  fn: (vm: TestVm, fake: FakeQga) => Promise<void>,
): Promise<void> {
  const vm = await startVm();
  const fake = FakeQga.start(`${vm.dir}/fake.sock`, options);
  try {
    await fn(vm, fake);
  } finally {
    await fake.stop();
    await vm.destroy();
  }
}

Deno.test({
  name:
    "backup --qga with a real qemu-ga: ostype l26 from guest-get-osinfo; without --qga no ostype; an agent refusing the command: a warning, no ostype",
  ignore: !HAVE || !HAVE_QGA,
  async fn() {
    const vm = await startVm();
    const agent = await startRealAgent(vm.dir);
    const dir2 = `${vm.dir}/blocked`;
    await Deno.mkdir(dir2);
    const blocked = await startRealAgent(dir2, ["guest-get-osinfo"]);
    try {
      const a = (n: string) => `${vm.dir}/${n}`;
      const withAgent = await backupConf(vm, a("a.vma"), ["--qga", agent.path]);
      assert.ok(
        withAgent.lines.includes("ostype: l26"),
        withAgent.lines.join("\n"),
      );
      assert.doesNotMatch(withAgent.stderr, /ostype/);

      const without = await backupConf(vm, a("b.vma"), []);
      assert.ok(!without.lines.some((l) => l.startsWith("ostype")));

      const refused = await backupConf(vm, a("c.vma"), ["--qga", blocked.path]);
      assert.ok(!refused.lines.some((l) => l.startsWith("ostype")));
      assert.match(
        refused.stderr,
        /^backup: warning: qemu-server\.conf: ostype: Cannot run guest agent command guest-get-osinfo: .*disabled.*, left out$/m,
      );
      // Everything but the ostype line is the same with and without the agent.
      assert.deepEqual(
        withAgent.lines.filter((l) => l !== "ostype: l26"),
        without.lines,
      );
    } finally {
      await blocked.stop();
      await agent.stop();
      await vm.destroy();
    }
  },
});

Deno.test({
  name:
    "backup --qga: a Windows Server 2022 agent gives ostype win11, asked once on the freeze's connection (fake agent)",
  ignore: !HAVE,
  async fn() {
    await withFakeAgent({
      freeze: "ok",
      // As qemu-ga 7.2's commands-win32.c builds it.
      osinfo: {
        "name": "Microsoft Windows",
        "kernel-release": "20348",
        "version": "Microsoft Windows Server 2022",
        "variant": "server",
        "pretty-name": "Windows Server 2022 Datacenter",
        "version-id": "2022",
        "variant-id": "server",
        "kernel-version": "10.0",
        "machine": "x86_64",
        "id": "mswindows",
      },
    }, async (vm, fake) => {
      const r = await backupConf(vm, `${vm.dir}/a.vma`, ["--qga", fake.path]);
      assert.ok(r.lines.includes("ostype: win11"), r.lines.join("\n"));
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
      // A user's config is stored as given: the agent is not asked.
      const conf = `${vm.dir}/qemu-server.conf`;
      await Deno.writeTextFile(
        conf,
        "virtio0: local:vm-1-disk-0\n#qmdump#map:virtio0:drive-virtio0::raw:\n",
      );
      fake.commands.length = 0;
      const user = await backupConf(vm, `${vm.dir}/b.vma`, [
        "--qga",
        fake.path,
        "-c",
        conf,
      ]);
      assert.deepEqual(user.lines, [
        "virtio0: local:vm-1-disk-0",
        "#qmdump#map:virtio0:drive-virtio0::raw:",
        "",
      ]);
      assert.ok(!fake.commands.includes("guest-get-osinfo"));
    });
  },
});

Deno.test({
  name:
    "backup --qga: an agent slower than --qga-timeout on guest-get-osinfo: no ostype, a warning, and the freeze still works on the re-synchronised connection (fake agent)",
  ignore: !HAVE,
  async fn() {
    await withFakeAgent({
      freeze: "ok",
      osinfoDelayMs: 1500,
    }, async (vm, fake) => {
      const r = await backupConf(vm, `${vm.dir}/a.vma`, [
        "--qga",
        fake.path,
        "--qga-timeout",
        "1",
      ]);
      assert.ok(!r.lines.some((l) => l.startsWith("ostype")));
      assert.match(
        r.stderr,
        /^backup: warning: qemu-server\.conf: ostype: Cannot run guest agent command guest-get-osinfo: no answer in 1 s, left out$/m,
      );
      assert.match(r.stderr, /1 guest file systems frozen \d+\.\d ms/);
      assert.deepEqual(fake.commands, [
        "guest-sync-delimited",
        "guest-get-osinfo",
        "guest-sync-delimited",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
      ]);
    });
  },
});
